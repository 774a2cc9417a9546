// A decision: what portalwatch does about findings (or what an operator did), in the output
// contract of ../shared/event-schema.md, with compatible extensions (expires, dry_run).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detectors/time.h"

namespace portalwatch {

/// What a lockdown covers: the whole portal, one ESS application, one account, one source.
enum class ScopeType : std::uint8_t { kGlobal, kApp, kUser, kIp };
inline constexpr std::size_t kScopeTypeCount = 4;
std::string_view to_string(ScopeType t) noexcept;
std::optional<ScopeType> parse_scope_type(std::string_view s) noexcept;

struct Scope {
  ScopeType type = ScopeType::kGlobal;
  std::string value;  ///< empty for global; the app name, user name or IP address otherwise

  /// "global", "app:hsa", "user:jdoe42", "ip:203.0.113.9": the operator's spelling and the key
  /// lockdown state is kept under.
  std::string key() const;
  /// Parses key(); nullopt (with why) for anything else: an unknown type, an empty value, a
  /// value for global, an app name outside [a-z0-9_-], an IP that does not parse.
  static std::optional<Scope> parse(std::string_view text, std::string* why = nullptr);
  bool operator==(const Scope&) const = default;
};

/// The action a decision takes on its scope.
///   lockdown: global → the portal to maintenance mode; app → that application off; user → the
///             account locked; ip → the source blocked.
///   reauthenticate: user only → the account's sessions revoked, the next sign-in must pass MFA.
enum class DecisionAction : std::uint8_t { kLockdown, kReauthenticate };
std::string_view to_string(DecisionAction a) noexcept;
std::optional<DecisionAction> parse_decision_action(std::string_view s) noexcept;

struct Decision {
  /// The policy engine's running number: orders what waits to be delivered and the hooks'
  /// bookkeeping. Not printed; the id is id_string().
  std::uint64_t seq = 0;
  DecisionAction action = DecisionAction::kLockdown;
  bool on = true;        ///< "state": "on" | "off"
  Scope scope;
  TimeMs at = 0;         ///< event time (policy) or wall time (operator)
  std::string by;        ///< "policy:<name>" or "operator:<who>"
  std::string reason;
  std::vector<std::string> findings;  ///< finding ids ("f-...") that led to it
  TimeMs expires = 0;    ///< > 0: the "on" state ends by itself then (extension: "expires")
  bool dry_run = false;  ///< decided, not acted on: hooks are not run (extension: "dry_run")

  /// One JSON object, no trailing newline, in the contract's key order; extensions after.
  std::string to_json() const;
  /// "d-" and 20 digits derived from the action, state, scope, time and author (content_id):
  /// the same decision has the same id wherever it is made, so a consumer can drop repeats by id.
  std::string id_string() const;
};

}  // namespace portalwatch
