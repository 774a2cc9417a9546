// mfa_fatigue: a burst of pushed prompts, the approval that ends it; a mistyped code is nothing.
#include "detectors/mfa_fatigue.h"

#include <doctest/doctest.h>

#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Collect;
using test::Ev;

namespace {

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");

Engine mfa_engine() {
  return test::engine_with(std::make_unique<MfaFatigueDetector>(MfaFatigueConfig{}, "mfa_fatigue"));
}

Ev mfa(TimeMs t, const std::string& user, const char* reason,
       const std::string& ip = "185.220.101.4") {
  Ev ev = Ev{}.at(t).as(user).from(ip);
  ev.action = "mfa";
  if (reason)
    ev.fail(reason);
  else
    ev.ok();
  return ev;
}

}  // namespace

TEST_CASE("mfa_fatigue: prompts pushed once a minute, then the employee approves") {
  Engine e = mfa_engine();
  Collect out;
  for (int i = 0; i < 12; ++i)
    test::feed(e, mfa(kT0 + i * 61 * kSecondMs, "JDoe42", i % 3 ? "mfa_timeout" : "mfa_denied"),
               out);
  REQUIRE(out.findings.size() == 2);  // medium at 5, high at 10
  CHECK(out.findings[0].entity == "jdoe42");
  CHECK(out.findings[0].severity == Severity::kMedium);
  CHECK(out.findings[0].at == kT0 + 4 * 61 * kSecondMs);
  CHECK(out.findings[1].severity == Severity::kHigh);
  test::feed(e, mfa(kT0 + 13 * kMinuteMs, "jdoe42", nullptr), out);
  REQUIRE(out.findings.size() == 3);
  const Finding& approved = out.findings[2];
  CHECK(approved.severity == Severity::kCritical);
  CHECK(*approved.evidence.get("approved") == "true");
  CHECK(*approved.evidence.get("approved_from") == "\"185.220.101.4\"");
  CHECK(approved.summary.find("then approved") != std::string::npos);
}

TEST_CASE("mfa_fatigue: what must not fire") {
  Engine e = mfa_engine();
  Collect out;
  SUBCASE("a user who mistypes an MFA code once, then gets it right") {
    test::feed(e, mfa(kT0, "jdoe42", "mfa_denied", "73.1.2.3"), out);
    test::feed(e, mfa(kT0 + 20 * kSecondMs, "jdoe42", nullptr, "73.1.2.3"), out);
  }
  SUBCASE("a few missed prompts spread over a day") {
    for (int i = 0; i < 8; ++i)
      test::feed(e, mfa(kT0 + i * 2 * kHourMs, "jdoe42", "mfa_timeout", "73.1.2.3"), out);
    test::feed(e, mfa(kT0 + 17 * kHourMs, "jdoe42", nullptr, "73.1.2.3"), out);
  }
  SUBCASE("many people each missing one prompt") {
    for (int i = 0; i < 500; ++i)
      test::feed(e,
                 mfa(kT0 + i * kSecondMs, "emp" + std::to_string(i), "mfa_timeout", "203.0.113.10"),
                 out);
  }
  SUBCASE("an approval after a burst that ended long ago") {
    for (int i = 0; i < 4; ++i)
      test::feed(e, mfa(kT0 + i * kMinuteMs, "jdoe42", "mfa_denied"), out);
    test::feed(e, mfa(kT0 + 2 * kHourMs, "jdoe42", nullptr), out);
  }
  CHECK(out.findings.empty());
}

}  // namespace portalwatch
