// Event time and the injectable clock.
//
// All detector logic runs on event time (milliseconds since the Unix epoch, UTC). Wall time only
// enters through a Clock that the daemon injects, so replay, live Kafka and tests behave alike.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portalwatch {

/// Milliseconds since 1970-01-01T00:00:00Z.
using TimeMs = std::int64_t;

inline constexpr TimeMs kSecondMs = 1000;
inline constexpr TimeMs kMinuteMs = 60 * kSecondMs;
inline constexpr TimeMs kHourMs = 60 * kMinuteMs;
inline constexpr TimeMs kDayMs = 24 * kHourMs;

/// Parses an RFC 3339 timestamp ("2026-12-23T14:03:11.123Z", "...+02:00", fractions of any length,
/// truncated to milliseconds). Returns nullopt for anything that is not a valid instant.
std::optional<TimeMs> parse_rfc3339(std::string_view text) noexcept;

/// Formats as "YYYY-MM-DDTHH:MM:SS.mmmZ" (the contract's output form).
std::string format_rfc3339(TimeMs t);

/// Appends the formatted timestamp to out without allocating a temporary.
void append_rfc3339(std::string& out, TimeMs t);

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm), and back.
std::int64_t days_from_civil(std::int64_t year, unsigned month, unsigned day) noexcept;
void civil_from_days(std::int64_t days, int& year, unsigned& month, unsigned& day) noexcept;

/// Formats a duration for humans: "15m", "90s", "2h30m".
std::string format_duration(TimeMs d);

/// Source of wall time. Detectors never read the system clock; the engine asks this.
class Clock {
 public:
  virtual ~Clock() = default;
  /// Current wall time in milliseconds since the epoch.
  virtual TimeMs now() const = 0;
};

/// A clock that only moves when told to: for tests and deterministic replays.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeMs start = 0) : now_(start) {}
  TimeMs now() const override { return now_; }
  void set(TimeMs t) { now_ = t; }
  void advance(TimeMs d) { now_ += d; }

 private:
  TimeMs now_;
};

}  // namespace portalwatch
