// One decoded portal event (the input contract of ../shared/event-schema.md).
//
// String fields are views into the decoder's buffers: valid until the next event is decoded
// (or into a buffer of the holder's own after keep_strings()). A detector that keeps a value
// copies it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "detectors/ip.h"
#include "detectors/time.h"

namespace portalwatch {

enum class Action : std::uint8_t { kOther, kLogin, kMfa, kLogout, kPasswordReset, kView, kDownload, kChange };
enum class Outcome : std::uint8_t { kUnknown, kSuccess, kFailure };
enum class Reason : std::uint8_t {
  kNone,
  kOther,
  kBadPassword,
  kUnknownUser,
  kLocked,
  kExpiredPassword,
  kMfaDenied,
  kMfaTimeout,
  kForbidden,
};

Action parse_action(std::string_view s) noexcept;
Outcome parse_outcome(std::string_view s) noexcept;
Reason parse_reason(std::string_view s) noexcept;
std::string_view to_string(Action a) noexcept;

/// Lower-cases ASCII letters of a login name (into buf when it has capitals), so "JDoe" and
/// "jdoe" are one account.
std::string_view normalize_user(std::string_view name, std::string& buf);

/// Every field the contract names. The decoder's field map is indexed by this.
enum class Field : std::uint8_t {
  kTimestamp,
  kEventAction,
  kEventOutcome,
  kEventReason,
  kUserName,
  kUserId,
  kUserRoles,
  kSourceIp,
  kGeoCountry,
  kGeoRegion,
  kGeoCity,
  kGeoLat,
  kGeoLon,
  kAsNumber,
  kAsOrgName,
  kUserAgent,
  kDeviceId,
  kSessionId,
  kUrlPath,
  kHttpMethod,
  kHttpStatus,
  kPortalApp,
  kPortalRecordId,
  kCount,
};
inline constexpr std::size_t kFieldCount = static_cast<std::size_t>(Field::kCount);

/// A set of fields, one bit per Field.
using FieldSet = std::uint32_t;
static_assert(kFieldCount <= 32);
constexpr FieldSet field_bit(Field f) { return FieldSet{1} << static_cast<unsigned>(f); }
inline constexpr FieldSet kAllFields = (FieldSet{1} << kFieldCount) - 1;
/// Always decoded: the contract's required fields, and the reason (which decides whether an auth
/// event must name its user).
inline constexpr FieldSet kAlwaysDecodedFields = field_bit(Field::kTimestamp) | field_bit(Field::kEventAction) |
                                                 field_bit(Field::kEventOutcome) | field_bit(Field::kEventReason) |
                                                 field_bit(Field::kUserName) | field_bit(Field::kSourceIp);

/// The contract's dotted name of each field ("source.ip"), as used in `input.fields:` mappings.
std::string_view field_name(Field f) noexcept;

/// What a successful sign-in was new in for its account (set by the engine from the account's
/// profile when a detector uses profiles).
struct Novelty {
  bool device = false;   ///< device id never seen for this account (false when the event has none)
  bool network = false;  ///< neither its AS nor its /24 (/48) seen before
  bool country = false;  ///< country never seen (false when the event or the profile has none)
  bool client = false;   ///< browser and system family never seen
  bool hour = false;     ///< fewer than 2% of the account's sign-ins were at this hour (with ≥50 sign-ins)
};

struct Event {
  static constexpr std::size_t kMaxRoles = 8;

  TimeMs timestamp = 0;  ///< as written in the event
  TimeMs time = 0;       ///< event time the detectors use (after lateness/future clamping)

  Action action = Action::kOther;
  std::string_view action_text;  ///< the raw word, kept for unknown actions
  Outcome outcome = Outcome::kUnknown;
  Reason reason = Reason::kNone;
  std::string_view reason_text;

  std::string_view user_name;
  /// user_name case-folded (normalize_user), set by the engine once for all detectors; events
  /// built without the engine leave it unset and folded_user() folds on demand.
  std::string_view user_folded;
  bool user_folded_set = false;
  std::string_view user_id;
  std::array<std::string_view, kMaxRoles> roles{};
  std::uint8_t role_count = 0;

  std::string_view source_ip_text;
  IpAddress source_ip;
  // Set by the engine (SourceClassifier) before detectors see the event:
  IpAddress source_key;                    ///< source_ip aggregated (IPv6 by its /64 by default)
  std::uint8_t source_key_prefix = 32;     ///< the prefix length source_key was aggregated to
  double source_threshold_multiplier = 1;  ///< > 1 for trusted or learned shared egress
  std::string_view source_class;           ///< "", a trusted network's name, or "learned_shared"

  std::string_view geo_country;
  std::string_view geo_region;
  std::string_view geo_city;
  double geo_lat = 0;
  double geo_lon = 0;
  bool has_geo_location = false;
  /// How far off the position may be, in km, when its source says so (a GeoIP record's
  /// accuracy_radius: a country-level record is its country's centre, good to 1000 km); 0 when
  /// unsaid.
  float geo_accuracy_km = 0;
  std::uint32_t as_number = 0;  ///< 0 when absent
  std::string_view as_org;

  std::string_view user_agent;
  std::string_view device_id;
  std::string_view session_id;
  std::string_view url_path;
  std::string_view http_method;
  int http_status = 0;  ///< 0 when absent
  std::string_view app;
  std::string_view record_id;

  // Set by the engine on successful sign-ins when a detector uses profiles:
  bool profiled = false;           ///< novelty and prior_sign_ins below are meaningful
  std::uint32_t prior_sign_ins = 0;  ///< the account's sign-ins before this one (its history)
  Novelty novelty;

  bool has_role(std::string_view role) const noexcept {
    for (std::uint8_t i = 0; i < role_count; ++i)
      if (roles[i] == role) return true;
    return false;
  }
  /// The aggregated source as text: "192.0.2.1", or "2001:db8:1:2::/64" for a prefix.
  std::string source_key_text() const {
    const bool host = source_key_prefix == (source_key.v4 ? 32 : 128);
    return host ? source_key.to_string() : source_key.to_string() + "/" + std::to_string(source_key_prefix);
  }
  /// The account name case-folded: the engine's copy, or folded into buf.
  std::string_view folded_user(std::string& buf) const {
    return user_folded_set ? user_folded : normalize_user(user_name, buf);
  }
  bool is_auth() const noexcept { return action == Action::kLogin || action == Action::kMfa; }
};

/// Copies the text each field of `ev` points at into `store` and points the fields there, so that
/// the event outlives the buffers it was decoded from (a decoder's, a message's): the event-time
/// merge holds one decoded event per partition while a single decoder reads them all.
void keep_strings(Event& ev, std::string& store);

}  // namespace portalwatch
