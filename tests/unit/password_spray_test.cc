// password_spray: one source, few tries each across many accounts; not an office NAT, not a
// brute force, not a household.
#include <doctest/doctest.h>

#include "detectors/engine.h"
#include "detectors/password_spray.h"

namespace portalwatch {

namespace {

struct Collect final : FindingSink {
  std::vector<Finding> findings;
  void emit(Finding&& f) override { findings.push_back(std::move(f)); }
};

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");

std::string login(TimeMs t, const std::string& user, bool ok, const std::string& ip, int asn = 0,
                  const char* reason = "bad_password") {
  std::string j = R"({"@timestamp":")" + format_rfc3339(t) + R"(","event":{"action":"login","outcome":")" +
                  (ok ? "success\"" : std::string("failure\",\"reason\":\"") + reason + "\"") + R"(},"user":{"name":")" +
                  user + R"("},"source":{"ip":")" + ip + "\"";
  if (asn) j += R"(,"as":{"number":)" + std::to_string(asn) + "}";
  return j + "}}";
}

Engine spray_engine(const std::string& trusted_cidr = "") {
  EngineOptions o;
  o.time.reference = TimeOptions::Reference::kStream;
  if (!trusted_cidr.empty()) o.sources.trusted_networks.push_back({"offices", {*IpNetwork::parse(trusted_cidr)}, 20});
  std::vector<DetectorInstance> d;
  d.push_back({DetectorCommon{"password_spray", "password_spray"},
               std::make_unique<PasswordSprayDetector>(PasswordSprayConfig{}, "password_spray")});
  return Engine(o, std::move(d), nullptr);
}

}  // namespace

TEST_CASE("password_spray: one IP trying one password on many accounts") {
  Engine e = spray_engine();
  Collect out;
  for (int i = 0; i < 19; ++i) e.process(login(kT0 + i * 2 * kSecondMs, "acct" + std::to_string(i), false, "45.32.9.47", 20473), false, out);
  CHECK(out.findings.empty());
  for (int i = 19; i < 80; ++i) e.process(login(kT0 + i * 2 * kSecondMs, "acct" + std::to_string(i), false, "45.32.9.47", 20473), false, out);
  REQUIRE(out.findings.size() == 2);  // medium at ~20 accounts, high at ~50 (estimated)
  const Finding& f = out.findings[0];
  CHECK(f.detector == "password_spray");
  CHECK(f.entity_type == EntityType::kIp);
  CHECK(f.entity == "45.32.9.47");
  CHECK(f.severity == Severity::kMedium);
  CHECK(f.evidence.get("sample_accounts")->find(R"(["acct0",)") == 0);
  CHECK(out.findings[1].severity == Severity::kHigh);
  // The HyperLogLog estimate is close to the truth.
  const auto distinct = std::stoi(*out.findings[1].evidence.get("distinct_accounts"));
  CHECK(distinct >= 45);
  CHECK(distinct <= 80);
}

TEST_CASE("password_spray: an IPv6 client rotating inside its /64 is one source") {
  Engine e = spray_engine();
  Collect out;
  for (int i = 0; i < 30; ++i) {
    char ip[64];
    std::snprintf(ip, sizeof ip, "2a01:4f8:10:20:%x::1", i + 1);
    e.process(login(kT0 + i * kSecondMs, "acct" + std::to_string(i), false, ip), false, out);
  }
  REQUIRE(out.findings.size() == 1);
  CHECK(out.findings[0].entity == "2a01:4f8:10:20::/64");
}

TEST_CASE("password_spray: what must not fire") {
  Collect out;
  SUBCASE("a 5,000-employee office NAT with 6% typos, trusted by configuration") {
    Engine e = spray_engine("198.51.100.0/29");
    for (int i = 0; i < 5000; ++i) {
      const std::string u = "emp" + std::to_string(i);
      if (i % 16 == 0) e.process(login(kT0 + i * 200, u, false, "198.51.100.3"), false, out);
      e.process(login(kT0 + i * 200 + 100, u, true, "198.51.100.3"), false, out);
    }
    CHECK(out.findings.empty());
  }
  SUBCASE("the same NAT untrusted: its successes show it is people") {
    Engine e = spray_engine();
    for (int i = 0; i < 5000; ++i) {
      const std::string u = "emp" + std::to_string(i);
      if (i % 16 == 0) e.process(login(kT0 + i * 200, u, false, "198.51.100.3"), false, out);
      e.process(login(kT0 + i * 200 + 100, u, true, "198.51.100.3"), false, out);
    }
    CHECK(out.findings.empty());
  }
  SUBCASE("a brute force on one account is not a spray") {
    Engine e = spray_engine();
    for (int i = 0; i < 300; ++i) e.process(login(kT0 + i * kSecondMs, "victim", false, "45.32.9.47"), false, out);
    CHECK(out.findings.empty());
  }
  SUBCASE("a slow trickle wider than the window") {
    Engine e = spray_engine();
    for (int i = 0; i < 100; ++i) e.process(login(kT0 + i * 2 * kMinuteMs, "a" + std::to_string(i), false, "45.32.9.47"), false, out);
    CHECK(out.findings.empty());
  }
}

TEST_CASE("password_spray: addresses rotating inside one provider are caught by ASN") {
  Engine e = spray_engine();
  Collect out;
  for (int i = 0; i < 150; ++i)
    e.process(login(kT0 + i * 3 * kSecondMs, "acct" + std::to_string(i), false, "45.32." + std::to_string(i % 250) + ".7", 20473), false, out);
  REQUIRE_FALSE(out.findings.empty());
  bool by_asn = false;
  for (const auto& f : out.findings) by_asn |= f.entity_type == EntityType::kAsn && f.entity == "20473";
  CHECK(by_asn);
}

TEST_CASE("password_spray: memory stays under max_sources with a flood of sources") {
  PasswordSprayConfig cfg;
  cfg.max_sources = 5000;
  EngineOptions o;
  o.time.reference = TimeOptions::Reference::kStream;
  std::vector<DetectorInstance> d;
  d.push_back({DetectorCommon{"password_spray", "password_spray"}, std::make_unique<PasswordSprayDetector>(cfg, "password_spray")});
  Engine e(o, std::move(d), nullptr);
  Collect out;
  for (int i = 0; i < 100000; ++i) {
    const std::string ip = "10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." + std::to_string(i & 255);
    e.process(login(kT0 + i, "u", false, ip), false, out);
  }
  const auto t = e.detectors()[0].detector->tables();
  CHECK(t[0].keys <= 5000);
  CHECK(t[0].evictions > 0);
  CHECK(t[0].bytes_per_key <= 300);
}

}  // namespace portalwatch
