// Decision policies: findings in, lockdown decisions out. Pure logic on event time (the daemon
// passes the wall clock to tick() so a lockdown that silenced the portal still expires).
//
// A policy matches findings (detector, severity, entity type, app, evidence values), counts them
// per scope within a window (optionally distinct entities), and when the count is reached puts a
// lockdown on the scope the findings point at: the whole portal, the application in the
// findings' evidence, the finding's account, or its source address. The lifecycle:
//   - a lockdown stays on until an operator releases it, unless the policy auto-releases it after
//     a quiet period (no matching finding) or gives it durations (ip and user blocks), which
//     escalate for a scope blocked again within the repeat memory;
//   - after a policy's lockdown ends, the same policy leaves that scope alone for its cooldown;
//   - an operator's release wins over the policy until the policy sees new evidence (findings
//     after the release);
//   - a dry-run policy (or everything, in global dry-run) decides and keeps state, marked
//     dry_run, and its decisions run no hooks.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "detectors/config_node.h"
#include "detectors/decision.h"
#include "detectors/finding.h"
#include "detectors/ip.h"

namespace portalwatch {

/// A condition on one evidence value of a finding: numeric bounds, or one of some words.
struct EvidenceCondition {
  std::string key;
  std::optional<double> min;
  std::optional<double> max;
  std::vector<std::string> any_of;
  bool matches(const Finding& f) const;
};

struct PolicyConfig {
  std::string name;
  bool dry_run = false;
  // Which findings count.
  std::vector<std::string> detectors;  ///< canonical names or instance names; empty: any
  Severity min_severity = Severity::kHigh;
  std::vector<EntityType> entity_types;  ///< empty: any
  std::vector<std::string> apps;         ///< the finding's evidence "app" is one of these; empty: any
  std::vector<EvidenceCondition> evidence;
  // How many.
  int count = 1;
  bool distinct_entities = false;  ///< count distinct finding entities, not findings
  TimeMs within_ms = 10 * kMinuteMs;
  // What to do.
  ScopeType scope = ScopeType::kGlobal;
  DecisionAction action = DecisionAction::kLockdown;
  /// Empty: on until released (or auto-released). Otherwise how long a lockdown lasts, the n-th
  /// element for the n-th lockdown of the same scope within repeat_memory_ms (the last repeats).
  std::vector<TimeMs> durations;
  TimeMs repeat_memory_ms = 7 * kDayMs;
  TimeMs auto_release_quiet_ms = 0;  ///< > 0: released after this long without a matching finding
  TimeMs cooldown_ms = 30 * kMinuteMs;
  std::size_t max_scopes = 100'000;  ///< scopes counted at once (ip/user policies under a flood)
};

/// Reads the `policies:` list. known_detectors are the configured canonical and instance names
/// (a policy naming something else is an error).
std::vector<PolicyConfig> read_policies(const ConfigNode& list, const std::vector<std::string>& known_detectors);

/// A lockdown in force (or, for dry-run, one that would be).
struct Lockdown {
  Decision decision;  ///< the "on" decision
  std::string policy;  ///< empty when an operator put it on
  TimeMs last_evidence = 0;
  std::uint32_t repeat = 0;  ///< 0 for the first lockdown of this scope within the repeat memory
  bool hooks_done = false;   ///< its "on" hooks have run (kept by the daemon across restarts)

  /// A compact, versioned binary form (the state store's value).
  std::string encode() const;
  static std::optional<Lockdown> decode(std::string_view bytes);
};

class DecisionSink {
 public:
  virtual ~DecisionSink() = default;
  virtual void decide(Decision&& d) = 0;
};

struct PolicyStats {
  std::uint64_t decisions = 0;
  std::uint64_t findings_matched = 0;
  std::uint64_t scopes_evicted = 0;  ///< scopes dropped because a policy counted max_scopes at once
  std::uint64_t unscoped = 0;        ///< matching findings that named no usable scope (e.g. no app)
};

class PolicyEngine {
 public:
  explicit PolicyEngine(std::vector<PolicyConfig> policies, bool dry_run = false);

  /// A finding (published) at its event time.
  void on_finding(const Finding& f, DecisionSink& out);
  /// Ends lockdowns whose time is up or whose policy has been quiet long enough.
  void tick(TimeMs now, DecisionSink& out);

  struct ManualResult {
    std::optional<Decision> decision;  ///< the decision made, or the one in force when unchanged
    bool changed = false;
    std::string error;  ///< set when refused
  };
  /// An operator puts a lockdown on or off. An "on" already in force is left as it is (unchanged);
  /// an "off" of nothing in force is refused. ttl 0: until released.
  ManualResult manual(const Scope& scope, DecisionAction action, bool on, const std::string& who,
                      const std::string& reason, TimeMs ttl, TimeMs now);

  /// Networks never locked down (operators' allowlist): an ip-scope decision for an address in one
  /// is not made. Does not lift a block already in force.
  struct Allowed {
    IpNetwork network;
    std::string comment;
    std::string by;
    TimeMs at = 0;
  };
  void allow(Allowed a);
  bool disallow(const IpNetwork& network);  ///< false if it was not there
  const std::vector<Allowed>& allowlist() const { return allowlist_; }

  /// A detector (canonical or instance name) silenced until a time: its findings lead to no
  /// decision until then. until 0 lifts it.
  struct Silence {
    std::string detector;
    TimeMs until = 0;
    std::string by;
    std::string reason;
  };
  void silence(Silence s);
  const std::vector<Silence>& silences() const { return silences_; }

  /// New policies (a reload): counting starts again; lockdowns in force stay, and a policy that
  /// keeps its name keeps managing its own (expiry, quiet release).
  void reconfigure(std::vector<PolicyConfig> policies, bool dry_run);

  /// Lockdowns in force, by "<action> <scope key>".
  const std::map<std::string, Lockdown>& active() const { return active_; }
  /// Puts back a lockdown read from the state store (no decision is made).
  void restore(Lockdown lockdown);
  /// The "on" hooks of the lockdown in force under key, made by decision_id, have all run (done
  /// false: are to run again, a takeover's); returns it (to be stored), or nullptr if it is no
  /// longer in force.
  const Lockdown* mark_hooks_done(const std::string& key, std::uint64_t decision_id, bool done = true);
  std::uint64_t next_decision_id() const { return next_id_; }
  void set_next_decision_id(std::uint64_t id) { next_id_ = id; }
  const std::vector<PolicyConfig>& policies() const { return policies_; }
  const PolicyStats& stats() const { return stats_; }
  static std::string key_of(DecisionAction action, const Scope& scope);

 private:
  struct Hit {
    TimeMs at;
    std::string entity;
    std::string finding;
  };
  struct ScopeState {
    std::deque<Hit> hits;
    TimeMs cooldown_until = 0;
    TimeMs released_at = 0;  ///< by an operator: only findings after it count
    std::uint32_t lockdowns = 0;  ///< within the repeat memory, for escalation
    TimeMs last_lockdown = 0;
  };
  struct PolicyState {
    std::unordered_map<std::string, ScopeState> scopes;  // by scope key
  };

  bool matches(const PolicyConfig& p, const Finding& f) const;
  std::optional<Scope> scope_of(const PolicyConfig& p, const Finding& f) const;
  void emit_on(std::size_t pi, const Scope& scope, ScopeState& st, TimeMs at, DecisionSink& out);
  void emit_off(Lockdown& l, TimeMs at, std::string by, std::string reason, DecisionSink& out);
  ScopeState& scope_state(std::size_t pi, const std::string& key);
  /// The policy of that name, or policies_.size() (a manual lockdown, a policy removed by reload).
  std::size_t policy_index(const std::string& name) const;
  /// The earliest time the lockdown can end (expiry, or its policy's quiet release after the
  /// evidence so far); max() when nothing ends it but an operator.
  TimeMs end_of(const Lockdown& l) const;
  void schedule_end(const std::string& key, const Lockdown& l);
  void reschedule_all();

  std::vector<PolicyConfig> policies_;
  std::vector<PolicyState> state_;
  bool dry_run_;
  std::map<std::string, Lockdown> active_;
  /// When tick() must look at which lockdown (by key), earliest first: each lockdown in force has
  /// an entry no later than its end (new evidence only moves an end later; tick() looks again then,
  /// and puts it back with its new end). Entries of lockdowns gone are dropped when they come up.
  /// Without it tick(), called for every event in replay, walked every lockdown every time: a
  /// flood that blocks tens of thousands of sources made replay quadratic.
  std::priority_queue<std::pair<TimeMs, std::string>, std::vector<std::pair<TimeMs, std::string>>,
                      std::greater<>>
      ends_;
  std::vector<Allowed> allowlist_;
  std::vector<Silence> silences_;
  std::uint64_t next_id_ = 1;
  PolicyStats stats_;
};

}  // namespace portalwatch
