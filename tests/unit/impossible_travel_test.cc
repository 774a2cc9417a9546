// impossible_travel: Jefferson City then Kyiv within the hour; a flight to Denver, a phone placed
// at Dallas by its carrier, a VPN exit and the state network's egress are not travel.
#include "detectors/impossible_travel.h"

#include <doctest/doctest.h>

#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Collect;
using test::Ev;

namespace {

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");
constexpr double kJeffersonCity[] = {38.5767, -92.1735};
constexpr double kDenver[] = {39.7392, -104.9903};
constexpr double kDallas[] = {32.7767, -96.7970};
constexpr double kKyiv[] = {50.4501, 30.5234};

Engine travel_engine(ImpossibleTravelConfig c = {}) {
  return test::engine_with(std::make_unique<ImpossibleTravelDetector>(c, "impossible_travel"));
}

Ev sign_in(TimeMs t, const std::string& ip, const double* place, const char* country = "US",
           int asn = 7018, const char* org = "AT&T") {
  Ev ev = Ev{}.at(t).as("jdoe42").from(ip).ok().at_place(place[0], place[1], country);
  ev.asn = asn;
  ev.as_org = org;
  return ev;
}

}  // namespace

TEST_CASE("great-circle distances") {
  CHECK(great_circle_km(kJeffersonCity[0], kJeffersonCity[1], kDenver[0], kDenver[1]) ==
        doctest::Approx(1112).epsilon(0.02));
  CHECK(great_circle_km(kJeffersonCity[0], kJeffersonCity[1], kKyiv[0], kKyiv[1]) ==
        doctest::Approx(8500).epsilon(0.03));
  CHECK(great_circle_km(0, 0, 0, 0) == 0);
  CHECK(great_circle_km(0, 0, 0, 180) == doctest::Approx(20015).epsilon(0.01));
}

TEST_CASE("impossible_travel: Jefferson City, then Kyiv forty minutes later") {
  Engine e = travel_engine();
  Collect out;
  test::feed(e, sign_in(kT0, "107.207.21.240", kJeffersonCity), out);
  test::feed(e, sign_in(kT0 + 40 * kMinuteMs, "46.211.11.1", kKyiv, "UA", 15895, "Kyivstar"), out);
  REQUIRE(out.findings.size() == 1);
  const Finding& f = out.findings[0];
  CHECK(f.entity == "jdoe42");
  CHECK(f.severity == Severity::kHigh);
  CHECK(*f.evidence.get("from_country") == "\"US\"");
  CHECK(*f.evidence.get("country") == "\"UA\"");
  CHECK(std::stod(*f.evidence.get("speed_kmh")) > 10000);
  CHECK(f.window_start == kT0);
}

TEST_CASE("impossible_travel: what is not travel") {
  Engine e = travel_engine();
  Collect out;
  SUBCASE("a traveller who flies to Denver") {
    test::feed(e, sign_in(kT0, "107.207.21.240", kJeffersonCity), out);
    test::advance(e, kT0 + 4 * kHourMs, out);
    test::feed(e, sign_in(kT0 + 4 * kHourMs, "73.95.1.2", kDenver, "US", 7922, "Comcast"), out);
  }
  SUBCASE("a phone whose carrier gateway is in Dallas, minutes after home Wi-Fi") {
    test::feed(e, sign_in(kT0, "107.207.21.240", kJeffersonCity), out);
    test::feed(
        e, sign_in(kT0 + 5 * kMinuteMs, "174.243.10.2", kDallas, "US", 22394, "Verizon Wireless"),
        out);
  }
  SUBCASE("a commercial VPN exit abroad") {
    test::feed(e, sign_in(kT0, "107.207.21.240", kJeffersonCity), out);
    test::feed(e, sign_in(kT0 + 5 * kMinuteMs, "146.70.1.2", kKyiv, "UA", 9009, "M247 Europe SRL"),
               out);
  }
  SUBCASE("a sign-in without coordinates says nothing") {
    test::feed(e, sign_in(kT0, "107.207.21.240", kJeffersonCity), out);
    Ev unplaced = Ev{}.at(kT0 + 5 * kMinuteMs).as("jdoe42").from("46.211.11.1").ok();
    test::feed(e, unplaced, out);
  }
  CHECK(out.findings.empty());
}

TEST_CASE("impossible_travel: configured VPN and corporate egress ranges are not travel") {
  ImpossibleTravelConfig c;
  c.vpn_networks.push_back(*IpNetwork::parse("198.51.100.0/24"));
  Engine e = travel_engine(c);
  Collect out;
  test::feed(e, sign_in(kT0, "107.207.21.240", kJeffersonCity), out);
  test::feed(e, sign_in(kT0 + 5 * kMinuteMs, "198.51.100.9", kKyiv, "UA", 64500, "State VPN"), out);
  CHECK(out.findings.empty());
  // ...and do not become the origin of the next comparison either.
  test::feed(e, sign_in(kT0 + 10 * kMinuteMs, "107.207.21.240", kJeffersonCity), out);
  CHECK(out.findings.empty());
}

}  // namespace portalwatch
