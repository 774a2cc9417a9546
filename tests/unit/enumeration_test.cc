// enumeration: scraping other people's records, sequential id walks; HR doing its job, office NATs
// and people reading their own records are not scraping.
#include "detectors/enumeration.h"

#include <doctest/doctest.h>

#include <cstdio>

#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Collect;
using test::Ev;

namespace {

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");

Engine enum_engine(EnumerationConfig c = {}) {
  return test::engine_with(std::make_unique<EnumerationDetector>(c, "enumeration"));
}

std::string record(std::uint64_t n) {
  char b[16];
  std::snprintf(b, sizeof b, "E%07llu", static_cast<unsigned long long>(n));
  return b;
}

EnumerationConfig daily() {
  EnumerationConfig c;
  c.window_ms = kDayMs;
  c.severity = SeverityLadder(0, 300, 1000, 5000);
  c.role_limits = {{"hr_admin", SeverityLadder(0, 2000, 5000, 20000)}};
  c.sequential_walks = false;
  return c;
}

}  // namespace

TEST_CASE(
    "enumeration: one session scraping random records is named by session, account and address") {
  Engine e = enum_engine();
  Collect out;
  test::TestRng r(1);
  Ev base = Ev{}.as("jdoe42").from("145.239.1.2");
  base.user_id = record(99);
  base.session = "s-1";
  test::feed(e, Ev(base).at(kT0).ok(), out);
  for (int i = 0; i < 200; ++i)
    test::feed(e, Ev(base).at(kT0 + (i + 1) * 2 * kSecondMs).view(record(r.below(60000))), out);
  REQUIRE(out.findings.size() >= 6);  // medium and high for each of the three readers
  CHECK(out.of(EntityType::kSession).front().entity == "s-1");
  CHECK(out.of(EntityType::kUser).front().entity == "jdoe42");
  CHECK(out.of(EntityType::kIp).front().entity == "145.239.1.2");
  CHECK(out.findings.front().severity == Severity::kMedium);
  CHECK(out.at_least(Severity::kHigh) == 3);
  const auto distinct = std::stoi(*out.findings.back().evidence.get("distinct_records"));
  CHECK(distinct >= 130);
  CHECK(distinct <= 200);
}

TEST_CASE("enumeration: a sequential walk is caught before the distinct count would be") {
  Engine e = enum_engine();
  Collect out;
  for (int i = 0; i < 30; ++i) {
    Ev ev = Ev{}.at(kT0 + i * 3 * kSecondMs)
                .as("")
                .from("45.77.1.1")
                .view(record(1000 + static_cast<unsigned>(i)), "lookup");
    ev.status = i % 3 ? 200 : 404;
    if (i % 3 == 0) ev.outcome = "failure";
    test::feed(e, ev, out);
  }
  const auto ip = out.of(EntityType::kIp);
  REQUIRE(ip.size() == 1);  // anonymous: no session or account to name
  CHECK(ip[0].severity == Severity::kMedium);
  CHECK(*ip[0].evidence.get("sequential_run") == "25");
  CHECK(std::stoi(*ip[0].evidence.get("not_found")) >= 8);
}

TEST_CASE("enumeration: HR staff reading 300 colleagues' records in a day raises nothing") {
  Collect out;
  test::TestRng r(2);
  for (const bool day_window : {false, true}) {
    Engine e = enum_engine(day_window ? daily() : EnumerationConfig{});
    // Five case-work sessions of 60 records, from home; roles appear only at sign-in.
    for (int s = 0; s < 5; ++s) {
      const TimeMs start = kT0 + s * 90 * kMinuteMs;
      Ev base = Ev{}.as("hrlee").from("73.12.9.4");
      base.user_id = record(5);
      base.session = "s-hr" + std::to_string(s);
      Ev login = Ev(base).at(start).ok();
      login.roles = {"employee", "hr_admin"};
      test::feed(e, login, out);
      for (int i = 0; i < 60; ++i)
        test::feed(e,
                   Ev(base).at(start + (i + 1) * 12 * kSecondMs).view(record(r.below(60000)), "hr"),
                   out);
    }
  }
  CHECK(out.findings.empty());
}

TEST_CASE("enumeration: a role's own limits are limits, not an exemption") {
  Engine e = enum_engine();
  Collect out;
  test::TestRng r(3);
  Ev base = Ev{}.as("hrlee").from("73.12.9.4");
  base.session = "s-hr";
  Ev login = Ev(base).at(kT0).ok();
  login.roles = {"hr_admin"};
  test::feed(e, login, out);
  for (int i = 0; i < 300; ++i)
    test::feed(e, Ev(base).at(kT0 + (i + 1) * 2 * kSecondMs).view(record(r.below(60000))), out);
  const auto user = out.of(EntityType::kUser);
  REQUIRE(user.size() == 1);
  CHECK(*user[0].evidence.get("role_limits") == "\"hr_admin\"");
  CHECK(std::stoi(*user[0].evidence.get("distinct_records")) >= 250);
  CHECK(out.of(EntityType::kIp).empty());  // judged on account and session, not the address
}

TEST_CASE("enumeration: what must not fire") {
  Collect out;
  test::TestRng r(4);
  SUBCASE("an office NAT where a hundred employees each look up a few colleagues") {
    Engine e = enum_engine();
    for (int i = 0; i < 300; ++i) {
      Ev ev = Ev{}.at(kT0 + i * 2 * kSecondMs)
                  .as("emp" + std::to_string(i % 100))
                  .from("203.0.113.10")
                  .view(record(r.below(60000)));
      ev.session = "s-" + std::to_string(i % 100);
      test::feed(e, ev, out);
    }
    CHECK(out.findings.empty());
  }
  SUBCASE("people reading their own records, however often") {
    Engine e = enum_engine();
    for (int i = 0; i < 500; ++i) {
      Ev ev = Ev{}.at(kT0 + i * kSecondMs).as("jdoe42").view(record(77), "paystub");
      ev.user_id = record(77);
      test::feed(e, ev, out);
    }
    CHECK(out.findings.empty());
  }
  SUBCASE("a refused request read nothing") {
    Engine e = enum_engine();
    for (int i = 0; i < 100; ++i) {
      Ev ev = Ev{}.at(kT0 + i * kSecondMs).as("jdoe42").view(record(r.below(60000)));
      ev.outcome = "failure";
      ev.reason = "forbidden";
      ev.status = 403;
      test::feed(e, ev, out);
    }
    CHECK(out.findings.empty());
  }
}

TEST_CASE("enumeration: configuration") {
  Diagnostics d("test.yaml");
  ConfigNode node(YAML::Load("{role_limits: [hr_admin], entities: [ip, device]}"), "detectors[2]",
                  d);
  {
    MapReader m(node);
    read_enumeration_config(m);
  }
  const std::string text = d.format();
  CHECK(text.find("role_limits") != std::string::npos);
  CHECK(text.find("unknown entity \"device\"") != std::string::npos);

  Diagnostics ok("ok.yaml");
  ConfigNode good(YAML::Load("{role_limits: {auditor: {high: 900}}, entities: [user]}"),
                  "detectors[2]", ok);
  EnumerationConfig c;
  {
    MapReader m(good);
    c = read_enumeration_config(m);
  }
  CHECK(ok.ok());
  REQUIRE(c.role_limits.size() == 1);
  CHECK(c.role_limits[0].role == "auditor");
  CHECK(c.role_limits[0].severity.lowest_step() == 900);
  CHECK(!c.by_ip);
  CHECK(c.by_user);
}

}  // namespace portalwatch
