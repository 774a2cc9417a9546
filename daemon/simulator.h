// Synthetic employee self-service portal traffic with labelled attacks.
//
// One contract event (../shared/event-schema.md) per call, in non-decreasing event time: benign
// sessions of a simulated workforce (office NATs, home ISPs, mobile carriers, travel, hr/payroll
// admins, paydays, password-expiry mornings) interleaved with scheduled attacks whose ground truth
// is exact. Used by `portalwatchd demo` (live), `portalwatchd simulate` (JSONL for replay and
// benchmarks) and the scenario suite that scores detectors.
//
// Deterministic: the same options give byte-identical output. Benign traffic and each attack draw
// from separate random streams, so adding or removing an attack leaves the benign events unchanged.
// No I/O, no wall clock: the caller paces and writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detectors/time.h"

namespace portalwatch::sim {

enum class AttackKind : std::uint8_t {
  kBruteForce,
  kPasswordSpray,
  kCredentialStuffing,
  kLowAndSlowStuffing,
  kEnumeration,
  kAutomation,
  kAccountTakeover,
  kImpossibleTravel,
  kMfaFatigue,
  kSessionHijack,
  kMultiAccountSource,
};
inline constexpr std::size_t kAttackKindCount = 11;

/// "brute_force", "credential_stuffing_low_and_slow", ...
std::string_view to_string(AttackKind kind);
/// Canonical detector name from the contract that should catch it ("credential_stuffing" for both
/// stuffing kinds).
std::string_view expected_detector(AttackKind kind);
/// Inverse of to_string.
std::optional<AttackKind> parse_attack_kind(std::string_view text);
/// How long an attack of this kind runs when its spec gives no duration.
TimeMs default_attack_duration(AttackKind kind);

struct AttackSpec {
  AttackKind kind = AttackKind::kBruteForce;
  TimeMs start = 0;
  TimeMs duration = 0;     ///< 0: default_attack_duration(kind)
  double intensity = 1.0;  ///< scales attack volume (attempts, accounts, victims, requests)
  /// Kind-specific variation. password_spray: 0 = one IPv4 address, 1 = addresses rotating
  /// inside one IPv6 /64 (the label then names the /64, "2a01:4f8:…::/64").
  int variant = 0;
};

/// Another (type, value) a detector may legitimately name for the same attack.
struct EntityRef {
  std::string type;
  std::string value;
};

/// Ground truth of one attacked entity. An attack that hits many entities of the kind its detector
/// names (account_takeover: one per victim account; impossible_travel with intensity > 1) gets one
/// label per entity, all with the same spec_index.
struct AttackLabel {
  std::string id;  ///< "atk03", or "atk06-017" for the 17th entity of a multi-entity attack
  AttackKind kind = AttackKind::kBruteForce;
  TimeMs start = 0;  ///< event time of the first labelled event
  TimeMs end = 0;    ///< event time of the last labelled event emitted so far
  /// What a detector should name: "user", "ip", "session", "asn" or "global".
  std::string entity_type;
  /// User name, IP text (or IPv6 "/64" prefix), session id, AS number as text, or "global".
  std::string entity;
  std::uint64_t events = 0;             ///< labelled events emitted so far
  std::uint64_t successful_logins = 0;  ///< of those, login successes
  std::size_t spec_index = 0;           ///< which AttackSpec (in schedule order) produced it
  std::vector<EntityRef> alternates;    ///< other entities of the same attack (source IPs, ...)
};

/// One label as a JSON object on one line (id, attack, detector, entity, start, end, events,
/// successful_logins, alternates) for ground-truth files.
std::string label_to_json(const AttackLabel& label);

struct SimulatorOptions {
  std::uint64_t seed = 42;
  TimeMs start = 0;  ///< event time of the first event
  std::size_t employees = 54000;  ///< the workforce: 1 to kMaxEmployees
  /// Mean benign event rate in event time; with diurnal=true, the rate at the weekday 8 a.m. peak
  /// (a whole weekday then averages about 40% of it, a weekend day about 12%).
  double events_per_second = 200;
  /// Weekday/weekend and hour-of-day shape in US Central time (8 a.m. login peak, lunch bump,
  /// quiet nights). Office/home/mobile networks follow local time either way.
  bool diurnal = true;
  std::vector<AttackSpec> attacks;  ///< explicit schedule; empty = none
  /// Attack events carry an extra top-level "labels": {"attack_id": "...", "attack": "<kind>"}.
  bool label_events = false;

  /// Semi-monthly paydays (the 15th and the last day of the month, the Friday before when those
  /// fall on a weekend): about 30% more sessions, many more paystub and direct-deposit views.
  bool paydays = true;
  /// Any instant inside each Central-time day that has a password-expiry morning: from 6 a.m. to
  /// noon about 30% of logins fail with expired_password and go through a reset.
  std::vector<TimeMs> password_expiry_days;
  /// When > 0, the whole attack schedule repeats with this period (for an endless demo).
  TimeMs repeat_attacks_every = 0;
  /// Start with the sessions already in progress at `start` (30 minutes of history whose earlier
  /// events are not emitted), so the rate is steady from the first event.
  bool prefill_sessions = true;

  /// A credential-stuffing flood through the whole stream, for growth benchmarks: each event is,
  /// with this probability (0 to 0.95), a login attempt from a botnet of residential addresses
  /// instead of the next benign or scheduled event, stamped with the stream's current time. The
  /// flood cycles through `flood_sources` distinct IPv4 addresses and, independently,
  /// `flood_accounts` distinct combo-list names ("james.smith12@gmail.com"; never an employee's
  /// name), so after max(flood_sources, flood_accounts) flood events every one has appeared; each
  /// round of the sources is shifted by one, so a source does not meet the same name again. Of
  /// its attempts 65% fail as unknown_user, 34% as bad_password and 1% succeed. Each source keeps
  /// one session id and user agent, half of them one device id. It draws from its own random stream: the rest of the
  /// traffic is the same events in the same order, with flood events between them. Its ground
  /// truth is one label, id "flood", kind credential_stuffing, entity global, spec_index
  /// attacks.size(). Needs events_per_second > 0 (the flood rides on the benign stream's time).
  double flood_share = 0;
  std::size_t flood_sources = 100000;   ///< 1 to kMaxFloodSources
  std::size_t flood_accounts = 100000;  ///< 1 to kMaxFloodAccounts
};
/// Distinct flood source addresses available (eight /12 blocks of US residential ISPs).
inline constexpr std::size_t kMaxFloodSources = std::size_t{1} << 23;
/// Distinct flood account names available.
inline constexpr std::size_t kMaxFloodAccounts = std::size_t{1} << 24;
/// The largest workforce whose employee numbers ("E1234567") stay seven digits.
inline constexpr std::size_t kMaxEmployees = 4'000'000;

/// A default schedule: every AttackKind once, spaced `spacing` apart starting at `first`, each with
/// its default duration and intensity 1.
std::vector<AttackSpec> default_attack_schedule(TimeMs first, TimeMs spacing);

class PortalSimulator {
 public:
  explicit PortalSimulator(SimulatorOptions options);
  ~PortalSimulator();
  PortalSimulator(PortalSimulator&&) noexcept;
  PortalSimulator& operator=(PortalSimulator&&) noexcept;
  PortalSimulator(const PortalSimulator&) = delete;
  PortalSimulator& operator=(const PortalSimulator&) = delete;

  /// Writes the next event (one JSON object, no newline) into line (cleared first); returns its
  /// event time. Event times are non-decreasing. When nothing is left (only possible with
  /// events_per_second <= 0 once every attack has ended), line is left empty and -1 is returned.
  TimeMs next(std::string& line);
  /// The user name of the event next() wrote last, as written (empty when it has none): the
  /// message key a producer should use, so one account's events stay in one partition, in order.
  std::string_view last_user() const;
  /// Labels of attacks started so far (updated as they progress), in order of first event.
  const std::vector<AttackLabel>& attacks() const;
  std::uint64_t events_generated() const;
  /// Whether next() has nothing more to give.
  bool exhausted() const;
  const SimulatorOptions& options() const;
  /// The state office NAT addresses (for allow-lists in demo configurations and for tests).
  static std::vector<std::string> office_nat_ips();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portalwatch::sim
