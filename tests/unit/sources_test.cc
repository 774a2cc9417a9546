// Shared egress: configured trusted networks and sources learned from successful sign-ins.
#include <doctest/doctest.h>

#include "detectors/sources.h"

namespace portalwatch {

namespace {

const TimeMs kDay0 = *parse_rfc3339("2026-12-21T00:00:00Z");

Event login(TimeMs t, std::string_view user, const char* ip, Outcome outcome = Outcome::kSuccess) {
  Event ev;
  ev.time = ev.timestamp = t;
  ev.action = Action::kLogin;
  ev.outcome = outcome;
  ev.user_name = user;
  ev.source_ip = *IpAddress::parse(ip);
  return ev;
}

}  // namespace

TEST_CASE("sources: IPv6 sources aggregate by /64, IPv4 by address") {
  SourceClassifier c{SourcesConfig{}};
  Event a = login(kDay0, "u", "2001:db8:1:2::10");
  Event b = login(kDay0, "u", "2001:db8:1:2:ffff::1");
  Event d = login(kDay0, "u", "2001:db8:1:3::10");
  c.observe(a, true);
  c.observe(b, true);
  c.observe(d, true);
  CHECK(a.source_key == b.source_key);
  CHECK_FALSE(a.source_key == d.source_key);
  Event v4 = login(kDay0, "u", "192.0.2.55");
  c.observe(v4, true);
  CHECK(v4.source_key.to_string() == "192.0.2.55");
}

TEST_CASE("sources: a configured trusted network carries its name and multiplier") {
  SourcesConfig cfg;
  cfg.trusted_networks.push_back({"state-offices", {*IpNetwork::parse("203.0.113.0/28")}, 20});
  SourceClassifier c{cfg};
  Event in = login(kDay0, "u", "203.0.113.5");
  Event out = login(kDay0, "u", "203.0.113.17");
  c.observe(in, true);
  c.observe(out, true);
  CHECK(in.source_class == "state-offices");
  CHECK(in.source_threshold_multiplier == 20);
  CHECK(out.source_class.empty());
  CHECK(out.source_threshold_multiplier == 1);
}

TEST_CASE("sources: a NAT is learned as shared from one day's sign-ins; a burst never trusts itself") {
  SourcesConfig cfg;
  cfg.shared_min_accounts = 25;
  SourceClassifier c{cfg};
  // Day 0: 200 employees sign in through the office NAT; a phisher signs into 40 accounts.
  for (int i = 0; i < 200; ++i) {
    Event ev = login(kDay0 + 8 * kHourMs + i * kMinuteMs, "emp" + std::to_string(i), "198.51.100.10");
    const std::string name = "emp" + std::to_string(i);
    ev.user_name = name;
    c.observe(ev, true);
    CHECK(ev.source_class.empty());  // not yet: only completed periods count
  }
  for (int i = 0; i < 40; ++i) {
    const std::string name = "victim" + std::to_string(i);
    Event ev = login(kDay0 + 20 * kHourMs + i * kSecondMs, name, "45.32.9.47");
    c.observe(ev, true);
    CHECK(ev.source_class.empty());
  }
  // Day 1: the NAT is shared egress. The phisher's host also learned, which is why it counts
  // only for the next period and why multi_account_source compares against history.
  Event nat = login(kDay0 + kDayMs + 9 * kHourMs, "x", "198.51.100.10", Outcome::kFailure);
  c.observe(nat, true);
  CHECK(nat.source_class == "learned_shared");
  CHECK(nat.source_threshold_multiplier == 10);
  Event home = login(kDay0 + kDayMs + 9 * kHourMs, "y", "192.0.2.200", Outcome::kFailure);
  c.observe(home, true);
  CHECK(home.source_class.empty());
  // Day 3 with no sign-ins on day 2: the NAT's evidence is stale and it is no longer shared.
  Event later = login(kDay0 + 3 * kDayMs + 9 * kHourMs, "x", "198.51.100.10", Outcome::kFailure);
  c.observe(later, true);
  CHECK(later.source_class.empty());
}

TEST_CASE("sources: configuration is validated") {
  Diagnostics d("s.yaml", "");
  const YAML::Node n = YAML::Load("trusted_networks:\n  - name: x\n    cidrs: [10.0.0.0/99]\nlearn_shared: {min_accounts: 1}\n");
  MapReader m(ConfigNode(n, "sources", d));
  read_sources_config(m);
  m.finish();
  const std::string e = d.format();
  CHECK(e.find("sources.trusted_networks[0].cidrs[0]: \"10.0.0.0/99\" is not an address or CIDR network") != std::string::npos);
  CHECK(e.find("sources.learn_shared.min_accounts: value 1 is out of range") != std::string::npos);
}

}  // namespace portalwatch
