// Maps a count of evidence to a severity: "medium from 10, high from 30, critical from 100".
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "detectors/config_node.h"
#include "detectors/finding.h"

namespace portalwatch {

class SeverityLadder {
 public:
  SeverityLadder() = default;
  /// Steps by severity; a step of 0 means "never this severity".
  SeverityLadder(std::int64_t low, std::int64_t medium, std::int64_t high, std::int64_t critical)
      : steps_{0, low, medium, high, critical} {}

  /// The highest severity whose step count reaches, or nullopt below every step.
  std::optional<Severity> at(std::int64_t count) const {
    for (int s = static_cast<int>(kSeverityCount) - 1; s >= 1; --s)
      if (steps_[s] > 0 && count >= steps_[s]) return static_cast<Severity>(s);
    return std::nullopt;
  }
  /// The smallest count that yields any severity.
  std::int64_t lowest_step() const {
    for (size_t s = 1; s < kSeverityCount; ++s)
      if (steps_[s] > 0) return steps_[s];
    return 0;
  }

  /// Reads `key: {low: N, medium: N, high: N, critical: N}` (each optional; given steps must
  /// rise with severity). Missing keys keep this ladder's values.
  void read(MapReader& parent, std::string_view key) {
    const auto node = parent.child(key);
    if (!node.defined()) return;
    MapReader m(node);
    static constexpr const char* kNames[] = {"info", "low", "medium", "high", "critical"};
    for (size_t s = 1; s < kSeverityCount; ++s) steps_[s] = m.get_int(kNames[s], steps_[s], 0, 1'000'000'000);
    std::int64_t prev = 0;
    for (size_t s = 1; s < kSeverityCount; ++s) {
      if (steps_[s] == 0) continue;
      if (steps_[s] <= prev) {
        node.error(std::string("severity steps must rise: ") + kNames[s] + " must be above the level before it");
        break;
      }
      prev = steps_[s];
    }
    if (lowest_step() == 0) node.error("at least one severity step must be set");
  }

 private:
  std::array<std::int64_t, kSeverityCount> steps_{};
};

/// When a detector reports on one entity: at the first step, at each higher step as the evidence
/// grows, and again once per window while it lasts (a reminder, not a flood). 16 bytes.
class Episode {
 public:
  /// Whether a finding of severity s at time now is due; if so, records it.
  bool report(Severity s, TimeMs now, TimeMs window) {
    const bool escalated = escalates(s);
    const bool repeat = severity_ >= 0 && now - at_ >= window;
    if (!escalated && !repeat) return false;
    severity_ = static_cast<std::int8_t>(s);
    at_ = now;
    return true;
  }
  bool active() const { return severity_ >= 0; }
  bool escalates(Severity s) const { return static_cast<int>(s) > severity_; }
  /// The episode is over (a quiet window); the next finding starts a new one.
  void reset() { severity_ = -1; }
  TimeMs reported_at() const { return at_; }

 private:
  TimeMs at_ = 0;
  std::int8_t severity_ = -1;
};

}  // namespace portalwatch
