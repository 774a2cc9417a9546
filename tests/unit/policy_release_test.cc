// An operator's release given the lockdown's own scope, as a caller listing active() passes it
// (found by the ASan tree: the scenario suite's on-call release read the scope after the lockdown
// holding it was erased). Meaningful under AddressSanitizer; a plain build only checks the result.
#include <doctest/doctest.h>

#include "detectors/policy.h"

namespace portalwatch {

TEST_CASE("policy: releasing a lockdown by the scope active() lists for it") {
  const TimeMs t0 = *parse_rfc3339("2026-12-23T14:00:00Z");
  PolicyConfig p;
  p.name = "savings";
  p.detectors = {"account_takeover"};
  p.apps = {"hsa"};
  p.count = 3;
  p.within_ms = 10 * kMinuteMs;
  p.scope = ScopeType::kApp;
  PolicyEngine e({p});
  REQUIRE(e.manual(*Scope::parse("app:hsa"), DecisionAction::kLockdown, true, "jsmith", "incident", 0, t0).changed);
  REQUIRE(e.active().size() == 1);
  const Lockdown& on = e.active().begin()->second;
  const auto off = e.manual(on.decision.scope, on.decision.action, false, "oncall", "passwords reset", 0, t0 + kHourMs);
  CHECK(off.changed);
  REQUIRE(off.decision);
  CHECK(off.decision->scope.key() == "app:hsa");
  CHECK(e.active().empty());
}

}  // namespace portalwatch
