// A finding: what a detector concluded, in the output contract of ../shared/event-schema.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "detectors/time.h"

namespace portalwatch {

enum class Severity : std::uint8_t { kInfo, kLow, kMedium, kHigh, kCritical };
inline constexpr std::size_t kSeverityCount = 5;
std::string_view to_string(Severity s) noexcept;
std::optional<Severity> parse_severity(std::string_view s) noexcept;

enum class EntityType : std::uint8_t { kIp, kUser, kSession, kDevice, kAsn, kApp, kGlobal };
std::string_view to_string(EntityType t) noexcept;
std::optional<EntityType> parse_entity_type(std::string_view s) noexcept;

/// Ordered evidence: key → already-serialised JSON value. Order is the order of add() calls.
class Evidence {
 public:
  void add(std::string_view key, std::int64_t v);
  void add(std::string_view key, int v) { add(key, static_cast<std::int64_t>(v)); }
  void add(std::string_view key, std::uint64_t v) { add(key, static_cast<std::int64_t>(v)); }
  void add(std::string_view key, double v);
  void add(std::string_view key, bool v);
  void add(std::string_view key, std::string_view v);
  void add(std::string_view key, const char* v) { add(key, std::string_view(v)); }
  void add(std::string_view key, const std::vector<std::string>& list);
  /// The serialised JSON of a key, or nullptr.
  const std::string* get(std::string_view key) const;
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

struct Finding {
  std::uint64_t id = 0;         ///< assigned by the engine; printed as "f-%012d"
  std::string_view detector;    ///< canonical detector name (static storage)
  std::string name;             ///< configured instance name (may equal detector)
  Severity severity = Severity::kInfo;
  EntityType entity_type = EntityType::kGlobal;
  std::string entity;
  TimeMs at = 0;
  TimeMs window_start = 0;
  TimeMs window_end = 0;
  std::string summary;
  Evidence evidence;
  bool dry_run = false;  ///< from a detector in dry-run: recorded, never acted on

  /// One JSON object, no trailing newline, in the contract's key order.
  std::string to_json() const;
  /// "f-000000000042"
  std::string id_string() const;
};

/// A finding with what every detector sets; the window is the window_ms ending at `at`. The
/// caller adds the summary and the evidence.
Finding make_finding(std::string_view detector, const std::string& name, Severity severity, EntityType type,
                     std::string entity, TimeMs at, TimeMs window_ms);

/// Formats a sequential id with its prefix ("f-", "d-") and 12 digits.
std::string format_id(char prefix, std::uint64_t id);

}  // namespace portalwatch
