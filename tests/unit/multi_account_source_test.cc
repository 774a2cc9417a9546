// multi_account_source: one source signing in as many accounts, beyond its own history; an office
// NAT, a household and a kiosk's usual day are not that.
#include "detectors/multi_account_source.h"

#include <doctest/doctest.h>

#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Collect;
using test::Ev;

namespace {

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");

Engine mas_engine(MultiAccountSourceConfig c = {}) {
  return test::engine_with(std::make_unique<MultiAccountSourceDetector>(c, "multi_account_source"));
}

}  // namespace

TEST_CASE("multi_account_source: one client signing in as twenty people in an hour") {
  Engine e = mas_engine();
  Collect out;
  for (int i = 0; i < 20; ++i) {
    Ev ev =
        Ev{}.at(kT0 + i * 3 * kMinuteMs).as("victim" + std::to_string(i)).from("86.125.9.8").ok();
    ev.device = "d-0badc0de";
    ev.asn = 6830;
    test::feed(e, ev, out);
  }
  const auto ip = out.of(EntityType::kIp);
  const auto device = out.of(EntityType::kDevice);
  REQUIRE(ip.size() == 2);  // medium at 6, high at 15
  REQUIRE(device.size() == 2);
  CHECK(ip[0].entity == "86.125.9.8");
  CHECK(ip[0].severity == Severity::kMedium);
  CHECK(ip[1].severity == Severity::kHigh);
  CHECK(device[0].entity == "d-0badc0de");
  CHECK(*ip[0].evidence.get("history_periods") == "0");
  CHECK(ip[0].summary.find("no history") != std::string::npos);
  CHECK(out.of(EntityType::kAsn).empty());
}

TEST_CASE("multi_account_source: what must not fire") {
  Collect out;
  SUBCASE("a household: three people on one laptop") {
    Engine e = mas_engine();
    for (int day = 0; day < 3; ++day)
      for (int i = 0; i < 9; ++i) {
        Ev ev = Ev{}.at(kT0 + day * kDayMs + i * 5 * kMinuteMs)
                    .as("family" + std::to_string(i % 3))
                    .from("73.4.5.6")
                    .ok();
        ev.device = "d-laptop";
        test::feed(e, ev, out);
      }
    CHECK(out.findings.empty());
  }
  SUBCASE("an office NAT on its first day: everyone brings their own device") {
    Engine e = mas_engine();
    for (int i = 0; i < 600; ++i) {
      Ev ev =
          Ev{}.at(kT0 + i * 5 * kSecondMs).as("emp" + std::to_string(i)).from("203.0.113.10").ok();
      ev.device = "d-" + std::to_string(i);
      ev.asn = 64500;
      test::feed(e, ev, out);
    }
    CHECK(out.findings.empty());
  }
  SUBCASE("a kiosk that signs in a dozen people an hour every day") {
    Engine e = mas_engine();
    for (int day = 0; day < 3; ++day)
      for (int i = 0; i < 12; ++i) {
        Ev ev = Ev{}.at(kT0 + day * kDayMs + i * 4 * kMinuteMs)
                    .as("worker" + std::to_string(i + day * 12))
                    .from("198.51.100.77")
                    .ok();
        ev.device = "d-kiosk";
        test::feed(e, ev, out);
      }
    // The first day is new (a finding, honestly marked as without history); after that it is usual.
    for (const auto& f : out.findings) CHECK(f.at < kT0 + kDayMs);
    CHECK(!out.findings.empty());
  }
}

TEST_CASE("multi_account_source: a source with history is judged against it") {
  Engine e = mas_engine();
  Collect out;
  auto sign_in = [&](TimeMs t, const std::string& user, const std::string& device) {
    Ev ev = Ev{}.at(t).as(user).from("198.51.100.77").ok();
    ev.device = device;
    test::feed(e, ev, out);
  };
  // Day 1: a shared workstation, two people an hour for eight hours: below every step (and too
  // few accounts a day to be learned as shared egress by sources:).
  for (int h = 0; h < 8; ++h)
    for (int i = 0; i < 2; ++i)
      sign_in(kT0 + h * kHourMs + i * 30 * kMinuteMs, "worker" + std::to_string(h * 2 + i), "d-ws");
  REQUIRE(out.findings.empty());
  // Day 2: a busier hour of eight is within three times its usual (the busiest window of day 1).
  for (int i = 0; i < 8; ++i)
    sign_in(kT0 + kDayMs + i * 7 * kMinuteMs, "worker" + std::to_string(100 + i), "d-ws");
  CHECK(out.findings.empty());
  // Later that day: forty accounts in an hour, each from a fresh browser profile.
  for (int i = 0; i < 40; ++i)
    sign_in(kT0 + kDayMs + 3 * kHourMs + i * 90 * kSecondMs, "victim" + std::to_string(i),
            "d-" + std::to_string(i));
  const auto ip = out.of(EntityType::kIp);
  REQUIRE(!ip.empty());
  const int usual = std::stoi(*ip[0].evidence.get("usual_max_accounts"));
  CHECK(usual >= 3);
  CHECK(usual <= 4);
  CHECK(*ip[0].evidence.get("history_periods") == "1");
  CHECK(std::stoi(*ip[0].evidence.get("distinct_accounts")) > 3 * usual);
  CHECK(ip[0].summary.find("usually at most " + std::to_string(usual)) != std::string::npos);
}

TEST_CASE("multi_account_source: failed sign-ins do not count") {
  Engine e = mas_engine();
  Collect out;
  for (int i = 0; i < 50; ++i)
    test::feed(e, Ev{}.at(kT0 + i * kSecondMs).as("u" + std::to_string(i)).from("45.1.1.1").fail(),
               out);
  CHECK(out.findings.empty());
}

}  // namespace portalwatch
