// automation: tool user agents and non-human cadence; people and office NATs are not scripts.
#include "detectors/automation.h"

#include <doctest/doctest.h>

#include <cmath>

#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Collect;
using test::Ev;

namespace {

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");

Engine automation_engine(AutomationConfig c = {}) {
  return test::engine_with(std::make_unique<AutomationDetector>(c, "automation"));
}

// A person: think times log-normal around 15 s.
TimeMs think(test::TestRng& r) {
  const double u1 = std::max(1e-9, r.uniform()), u2 = r.uniform();
  const double normal = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  return std::clamp<TimeMs>(static_cast<TimeMs>(15'000 * std::exp(0.9 * normal)), 1'000, 600'000);
}

}  // namespace

TEST_CASE("automation: tool user agents, matched without regard to case") {
  AutomationDetector d(AutomationConfig{}, "automation");
  CHECK(d.is_tool("curl/8.4.0"));
  CHECK(d.is_tool("python-requests/2.31.0"));
  CHECK(d.is_tool("Go-http-client/1.1"));
  CHECK(
      d.is_tool("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "HeadlessChrome/120.0 Safari/537.36"));
  CHECK(d.is_tool(""));  // no user agent at all
  CHECK(!d.is_tool(
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"));
  CHECK(!d.is_tool("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Mobile/15E148"));
  CHECK(d.is_tool("CURL/7.1"));  // cached answers stay right
  CHECK(!d.is_tool(
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"));
}

TEST_CASE("automation: a script with a tool user agent") {
  Engine e = automation_engine();
  Collect out;
  test::TestRng r(1);
  for (int i = 0; i < 40; ++i) {
    Ev ev = Ev{}.at(kT0 + i * 7 * kSecondMs + static_cast<TimeMs>(r.below(5000)))
                .as("jdoe42")
                .from("3.91.1.2")
                .view("E0000042", "paystub");
    ev.ua = "python-requests/2.31.0";
    test::feed(e, ev, out);
  }
  REQUIRE(out.findings.size() == 1);
  const Finding& f = out.findings[0];
  CHECK(f.entity_type == EntityType::kIp);
  CHECK(f.entity == "3.91.1.2");
  CHECK(f.severity == Severity::kMedium);
  CHECK(*f.evidence.get("tool") == "\"python-requests\"");
  CHECK(f.summary.find("tool user agent") != std::string::npos);
}

TEST_CASE("automation: a browser user agent polling every three seconds") {
  Engine e = automation_engine();
  Collect out;
  for (int i = 0; i < 60; ++i)
    test::feed(e,
               Ev{}.at(kT0 + i * 3000 + (i % 3) - 1)
                   .as("jdoe42")
                   .from("45.32.9.9")
                   .view("E0000042", "hsa"),
               out);
  REQUIRE(!out.findings.empty());
  CHECK(out.findings[0].summary.find("regular cadence") != std::string::npos);
  CHECK(std::stoi(*out.findings[0].evidence.get("regular_intervals")) >= 25);
}

TEST_CASE("automation: faster than a person can click") {
  Engine e = automation_engine();
  Collect out;
  test::TestRng r(2);
  TimeMs t = kT0;
  for (int i = 0; i < 50; ++i) {
    t += 40 + static_cast<TimeMs>(r.below(150));
    test::feed(e, Ev{}.at(t).as("").from("45.32.9.10").view("E" + std::to_string(i), "lookup"),
               out);
  }
  REQUIRE(!out.findings.empty());
  CHECK(out.findings[0].summary.find("faster than a person") != std::string::npos);
}

TEST_CASE("automation: what must not fire") {
  Collect out;
  test::TestRng r(3);
  SUBCASE("a person reading pages for an hour") {
    Engine e = automation_engine();
    TimeMs t = kT0;
    for (int i = 0; i < 200; ++i) {
      t += think(r);
      test::feed(e, Ev{}.at(t).as("jdoe42").from("73.1.2.3").view("E0000042", "paystub"), out);
    }
    CHECK(out.findings.empty());
  }
  SUBCASE("an office NAT: a thousand people interleaved, many requests a second") {
    Engine e = automation_engine();
    for (int i = 0; i < 20000; ++i)
      test::feed(e,
                 Ev{}.at(kT0 + i * 60 + static_cast<TimeMs>(r.below(40)))
                     .as("emp" + std::to_string(r.below(1000)))
                     .from("203.0.113.10")
                     .view("E1", "paystub"),
                 out);
    CHECK(out.findings.empty());
  }
}

TEST_CASE("automation: configuration") {
  Diagnostics d("test.yaml");
  ConfigNode node(YAML::Load("{tool_user_agents: [curl/, ''], regular_share: 2}"), "detectors[4]",
                  d);
  {
    MapReader m(node);
    read_automation_config(m);
  }
  const std::string text = d.format();
  CHECK(text.find("empty pattern") != std::string::npos);
  CHECK(text.find("regular_share") != std::string::npos);
}

}  // namespace portalwatch
