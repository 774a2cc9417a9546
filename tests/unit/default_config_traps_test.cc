// The traps of the rate detectors against the whole shipped default configuration at once: what a
// state portal sees on an ordinary day must raise nothing of medium or higher, from any detector.
#include <doctest/doctest.h>

#include "daemon/config.h"
#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Collect;
using test::Ev;

namespace {

Engine default_engine() {
  ConfigResult loaded = load_config(std::nullopt);
  REQUIRE_MESSAGE(loaded.config, loaded.errors);
  Config config = std::move(*loaded.config);
  config.engine.time.reference = TimeOptions::Reference::kStream;
  return Engine(config.engine, std::move(config.detectors), nullptr);
}

std::string employee_id(int n) {
  char b[16];
  std::snprintf(b, sizeof b, "E%07d", n);
  return b;
}

}  // namespace

TEST_CASE("default configuration: an office NAT of 5,000 employees with 6% typos, two days") {
  Engine e = default_engine();
  Collect out;
  test::TestRng r(2026);
  const TimeMs day0 = *parse_rfc3339("2026-12-14T13:00:00Z");  // 7 a.m. Central, a Monday
  for (int day = 0; day < 2; ++day) {
    // Everyone signs in between 7 and 9 a.m. through one of three NAT addresses, each on their own
    // device; 6% mistype (names or passwords) first. Then paystub, and a directory lookup or two.
    for (int i = 0; i < 5000; ++i) {
      TimeMs t = day0 + day * kDayMs + static_cast<TimeMs>(i) * 2 * kHourMs / 5000;
      Ev base = Ev{}.as("emp" + std::to_string(i)).from("203.0.113." + std::to_string(10 + i % 3));
      base.user_id = employee_id(i);
      base.device = "d-" + std::to_string(i);
      base.session = "s-" + std::to_string(day) + "-" + std::to_string(i);
      base.asn = 64500;
      if (r.chance(0.06)) {
        Ev typo = Ev(base).at(t);
        if (r.chance(0.5))
          typo.as("emp" + std::to_string(i) + "x").fail("unknown_user");
        else
          typo.fail();
        test::feed(e, typo, out);
        t += 8 * kSecondMs;
      }
      Ev login = Ev(base).at(t).ok();
      login.roles = {"employee"};
      test::feed(e, login, out);
      test::feed(e, Ev(base).at(t + 20 * kSecondMs).view(employee_id(i), "paystub"), out);
      for (int k = 0, n = static_cast<int>(r.below(3)); k < n; ++k)
        test::feed(e,
                   Ev(base)
                       .at(t + (30 + 20 * k) * kSecondMs)
                       .view(employee_id(static_cast<int>(r.below(5000)))),
                   out);
    }
  }
  for (const auto& f : out.findings)
    if (f.severity >= Severity::kMedium) MESSAGE("unexpected: " << f.to_json());
  CHECK(out.at_least(Severity::kMedium) == 0);
}

TEST_CASE("default configuration: HR staff reading 300 colleagues' records in a day") {
  Engine e = default_engine();
  Collect out;
  test::TestRng r(7);
  const TimeMs day0 = *parse_rfc3339("2026-12-14T14:00:00Z");
  for (int s = 0; s < 5; ++s) {
    const TimeMs start = day0 + s * 90 * kMinuteMs;
    Ev base = Ev{}.as("hrlee").from("73.12.9.4");
    base.user_id = employee_id(5);
    base.device = "d-hr";
    base.session = "s-hr" + std::to_string(s);
    Ev login = Ev(base).at(start).ok();
    login.roles = {"employee", "hr_admin"};
    test::feed(e, login, out);
    TimeMs t = start;
    for (int i = 0; i < 60; ++i) {
      t += 5 * kSecondMs + static_cast<TimeMs>(r.below(15'000));
      test::feed(e, Ev(base).at(t).view(employee_id(static_cast<int>(r.below(54000))), "hr"), out);
    }
  }
  for (const auto& f : out.findings)
    if (f.severity >= Severity::kMedium) MESSAGE("unexpected: " << f.to_json());
  CHECK(out.at_least(Severity::kMedium) == 0);
  // Not a blanket exemption: the same reading without the role is a scraper.
  Engine plain = default_engine();
  Collect scraped;
  for (int i = 0; i < 300; ++i) {
    Ev ev = Ev{}.at(day0 + i * 3 * kSecondMs)
                .as("jdoe42")
                .from("73.12.9.5")
                .view(employee_id(static_cast<int>(r.below(54000))));
    ev.user_id = employee_id(6);
    ev.session = "s-x";
    test::feed(plain, ev, scraped);
  }
  CHECK(scraped.at_least(Severity::kHigh) >= 1);
}

}  // namespace portalwatch
