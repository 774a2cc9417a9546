// account_takeover: a sign-in unlike the owner, then money or savings; the owner changing their
// own direct deposit from their usual laptop is not that, and neither is a brand-new account.
#include "detectors/account_takeover.h"

#include <doctest/doctest.h>

#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Collect;
using test::Ev;

namespace {

const TimeMs kT0 = *parse_rfc3339("2026-12-01T14:00:00Z");

Engine ato_engine() {
  return test::engine_with(
      std::make_unique<AccountTakeoverDetector>(AccountTakeoverConfig{}, "account_takeover"));
}

Ev usual(TimeMs t, const std::string& session = "s-own") {
  Ev e = Ev{}.at(t).as("jdoe42").from("73.12.9.4").ok().at_place(38.57, -92.17, "US");
  e.asn = 7922;
  e.as_org = "Comcast Cable Communications";
  e.device = "d-laptop";
  e.session = session;
  e.user_id = "E0000042";
  return e;
}

Ev elsewhere(TimeMs t, int asn, const std::string& org, const std::string& ip,
             const std::string& session = "s-other") {
  Ev e = Ev{}.at(t).as("jdoe42").from(ip).ok();
  e.asn = asn;
  e.as_org = org;
  e.device = "d-" + session;
  e.session = session;
  e.user_id = "E0000042";
  return e;
}

Ev act(Ev e, TimeMs t, const char* action, const char* app) {
  e.at(t);
  e.action = action;
  e.app = app;
  e.record = "E0000042";
  return e;
}

// Two weeks of ordinary sign-ins from the usual laptop and home network.
void history(Engine& e, Collect& out, int days = 14) {
  for (int d = 0; d < days; ++d) {
    test::advance(e, kT0 + d * kDayMs, out);
    test::feed(e, usual(kT0 + d * kDayMs, "s-day" + std::to_string(d)), out);
  }
}

// After two weeks of history, someone signs in from elsewhere and reads the HSA; returns when.
TimeMs sign_in_then_read_hsa(Engine& e, Collect& out, const Ev& who) {
  history(e, out);
  const TimeMs t = kT0 + 15 * kDayMs;
  test::advance(e, t, out);
  test::feed(e, Ev(who).at(t), out);
  test::feed(e, act(who, t + kMinuteMs, "view", "hsa"), out);
  return t;
}

}  // namespace

TEST_CASE("account_takeover: phished credentials used from a hosting provider to move money") {
  Engine e = ato_engine();
  Collect out;
  const Ev thief = elsewhere(0, 14061, "DigitalOcean, LLC", "159.203.9.9");
  const TimeMs t = sign_in_then_read_hsa(e, out, thief);
  REQUIRE(out.findings.size() == 1);
  CHECK(out.findings[0].severity == Severity::kHigh);
  test::feed(e, act(thief, t + 2 * kMinuteMs, "change", "direct_deposit"), out);
  REQUIRE(out.findings.size() == 2);
  const Finding& f = out.findings[1];
  CHECK(f.detector == "account_takeover");
  CHECK(f.entity == "jdoe42");
  CHECK(f.severity == Severity::kCritical);
  CHECK(*f.evidence.get("reasons") == R"(["new_device_and_network","hosting_network"])");
  CHECK(*f.evidence.get("prior_sign_ins") == "14");
  CHECK(*f.evidence.get("money_could_move") == "true");
}

TEST_CASE("account_takeover: a new device on a new network, then a money change, is high") {
  Engine e = ato_engine();
  Collect out;
  const Ev other = elsewhere(0, 7018, "AT&T", "107.207.21.240");
  const TimeMs t = sign_in_then_read_hsa(e, out, other);
  CHECK(out.findings.empty());  // a weak sign: reading savings from a new phone is ordinary
  test::feed(e, act(other, t + 2 * kMinuteMs, "change", "direct_deposit"), out);
  REQUIRE(out.findings.size() == 1);
  CHECK(out.findings[0].severity == Severity::kHigh);
}

TEST_CASE("account_takeover: a success after a burst of failed passwords, then savings") {
  Engine e = ato_engine();
  Collect out;
  const TimeMs t = kT0;
  for (int i = 0; i < 12; ++i)
    test::feed(e, Ev{}.at(t + i * 10 * kSecondMs).as("jdoe42").from("45.1.2.3").fail(), out);
  const Ev thief = elsewhere(t + 3 * kMinuteMs, 3320, "Deutsche Telekom AG", "79.200.1.1");
  test::feed(e, thief, out);
  test::feed(e, act(thief, t + 4 * kMinuteMs, "view", "retirement"), out);
  REQUIRE(out.findings.size() == 1);
  CHECK(out.findings[0].severity == Severity::kHigh);
  CHECK(*out.findings[0].evidence.get("failed_passwords_before") == "12");
  CHECK(*out.findings[0].evidence.get("prior_sign_ins") == "0");  // no history needed for this sign
}

TEST_CASE("account_takeover: what must not fire") {
  Engine e = ato_engine();
  Collect out;
  SUBCASE("a user who changes direct deposit from their usual device and network") {
    history(e, out);
    const TimeMs t = kT0 + 15 * kDayMs;
    test::advance(e, t, out);
    test::feed(e, usual(t, "s-pay"), out);
    test::feed(e, act(usual(t, "s-pay"), t + kMinuteMs, "change", "direct_deposit"), out);
  }
  SUBCASE("a brand-new account is not suspicious for being new") {
    const Ev first = elsewhere(kT0, 7018, "AT&T", "107.207.21.240");
    test::feed(e, first, out);
    test::feed(e, act(first, kT0 + kMinuteMs, "change", "direct_deposit"), out);
  }
  SUBCASE("the owner's own session while someone else's sign-in is pending") {
    history(e, out);
    const TimeMs t = kT0 + 15 * kDayMs;
    test::advance(e, t, out);
    test::feed(e, elsewhere(t, 14061, "DigitalOcean, LLC", "159.203.9.9", "s-thief"), out);
    test::feed(e, usual(t + kMinuteMs, "s-own"), out);
    test::feed(e, act(usual(t, "s-own"), t + 2 * kMinuteMs, "change", "direct_deposit"), out);
  }
  SUBCASE("a savings read long after the suspicious sign-in") {
    history(e, out);
    const TimeMs t = kT0 + 15 * kDayMs;
    test::advance(e, t, out);
    const Ev thief = elsewhere(t, 14061, "DigitalOcean, LLC", "159.203.9.9");
    test::feed(e, thief, out);
    test::advance(e, t + 3 * kHourMs, out);
    test::feed(e, act(thief, t + 3 * kHourMs, "view", "hsa"), out);
  }
  SUBCASE("a privacy-minded employee on their usual commercial VPN") {
    for (int d = 0; d < 14; ++d) {
      test::advance(e, kT0 + d * kDayMs, out);
      test::feed(e,
                 elsewhere(kT0 + d * kDayMs, 9009, "M247 Europe SRL", "146.70.1.2",
                           "s-vpn" + std::to_string(d)),
                 out);
    }
    const TimeMs t = kT0 + 15 * kDayMs;
    test::advance(e, t, out);
    const Ev vpn = elsewhere(t, 9009, "M247 Europe SRL", "146.70.1.2", "s-vpn-today");
    test::feed(e, vpn, out);
    test::feed(e, act(vpn, t + kMinuteMs, "change", "direct_deposit"), out);
  }
  CHECK(out.findings.empty());
}

}  // namespace portalwatch
