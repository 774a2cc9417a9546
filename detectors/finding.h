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
  /// The engine's running number (1, 2, ...): orders what waits to be delivered. Not printed and
  /// not unique across processes; the id is id_string().
  std::uint64_t seq = 0;
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
  /// The finding's id, "f-" and 20 digits, derived from what identifies it (see content_id): the
  /// same finding has the same id wherever and whenever it is made (replay, any member of a group,
  /// a process sending it again after a crash), different findings different ids.
  std::string id_string() const;
};

/// A finding with what every detector sets; the window is the window_ms ending at `at`. The
/// caller adds the summary and the evidence.
Finding make_finding(std::string_view detector, const std::string& name, Severity severity, EntityType type,
                     std::string entity, TimeMs at, TimeMs window_ms);

/// Builds a content-derived id: `prefix`, '-', and 20 decimal digits of the first 64 bits of the
/// SHA-256 of `fields`, each length-prefixed (so that no choice of field values makes two field
/// lists alike, and a collision is as hard to make on purpose as SHA-256's). 64 bits: among a
/// million ids, two alike with a chance of about 3 in 10^8.
std::string content_id(char prefix, const std::vector<std::string_view>& fields);

}  // namespace portalwatch
