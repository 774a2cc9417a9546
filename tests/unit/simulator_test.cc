#include "daemon/simulator.h"

#include <doctest/doctest.h>
#include <simdjson.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "detectors/ip.h"
#include "detectors/time.h"

namespace portalwatch::sim {
namespace {

// What the tests look at in one event line.
struct Parsed {
  TimeMs time = 0;
  std::string action, outcome, reason;
  std::string user_name, user_id;
  std::string source_ip, session_id, user_agent, app, record_id;
  bool has_geo = false, has_as = false;
  std::string attack_id, attack;
};

std::string str(simdjson::simdjson_result<simdjson::dom::element> v) {
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) return {};
  return std::string(s);
}

/// Parses one line (the DOM parser validates all of it) as the contract's event; nullopt when it
/// is not valid JSON or lacks a required field.
std::optional<Parsed> parse_event(const std::string& line) {
  static simdjson::dom::parser parser;
  simdjson::dom::object root;
  if (parser.parse(line).get(root) != simdjson::SUCCESS) return std::nullopt;
  Parsed p;
  const auto t = parse_rfc3339(str(root["@timestamp"]));
  if (!t) return std::nullopt;
  p.time = *t;
  simdjson::dom::object ev;
  if (root["event"].get(ev) != simdjson::SUCCESS) return std::nullopt;
  std::string_view action, outcome;
  if (ev["action"].get(action) != simdjson::SUCCESS) return std::nullopt;
  if (ev["outcome"].get(outcome) != simdjson::SUCCESS) return std::nullopt;
  p.action = action;
  p.outcome = outcome;
  p.reason = str(ev["reason"]);
  p.user_name = str(root["user"]["name"]);
  p.user_id = str(root["user"]["id"]);
  simdjson::dom::object source;
  if (root["source"].get(source) != simdjson::SUCCESS) return std::nullopt;
  std::string_view ip;
  if (source["ip"].get(ip) != simdjson::SUCCESS) return std::nullopt;
  p.source_ip = ip;
  simdjson::dom::object geo;
  if (source["geo"].get(geo) == simdjson::SUCCESS) {
    double lat = 0, lon = 0;
    if (geo["location"]["lat"].get(lat) != simdjson::SUCCESS) return std::nullopt;
    if (geo["location"]["lon"].get(lon) != simdjson::SUCCESS) return std::nullopt;
    if (lat < -90 || lat > 90 || lon < -180 || lon > 180) return std::nullopt;
    if (str(geo["country_iso_code"]).size() != 2) return std::nullopt;
    p.has_geo = true;
  }
  std::uint64_t as_number = 0;
  if (source["as"]["number"].get(as_number) == simdjson::SUCCESS) {
    if (as_number == 0 || str(source["as"]["organization"]["name"]).empty()) return std::nullopt;
    p.has_as = true;
  }
  p.session_id = str(root["session"]["id"]);
  p.user_agent = str(root["user_agent"]["original"]);
  p.app = str(root["portal"]["app"]);
  p.record_id = str(root["portal"]["record"]["id"]);
  p.attack_id = str(root["labels"]["attack_id"]);
  p.attack = str(root["labels"]["attack"]);
  return p;
}

const std::set<std::string> kActions{"login", "mfa",      "logout", "password_reset",
                                     "view",  "download", "change"};
const std::set<std::string> kOutcomes{"success", "failure", "unknown"};

SimulatorOptions weekday_morning() {
  SimulatorOptions o;
  o.start = *parse_rfc3339("2026-12-09T15:00:00Z");  // Wednesday 9 a.m. Central
  return o;
}

std::uint64_t fnv1a(std::uint64_t h, const std::string& s) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace

TEST_CASE("simulator: attack kind names round-trip and map to contract detectors") {
  std::set<std::string> names;
  for (std::size_t i = 0; i < kAttackKindCount; ++i) {
    const auto kind = static_cast<AttackKind>(i);
    const std::string name(to_string(kind));
    CHECK(names.insert(name).second);
    REQUIRE(parse_attack_kind(name).has_value());
    CHECK(*parse_attack_kind(name) == kind);
    CHECK(default_attack_duration(kind) > 0);
  }
  CHECK(to_string(AttackKind::kLowAndSlowStuffing) == "credential_stuffing_low_and_slow");
  CHECK(expected_detector(AttackKind::kLowAndSlowStuffing) == "credential_stuffing");
  CHECK(expected_detector(AttackKind::kCredentialStuffing) == "credential_stuffing");
  CHECK(expected_detector(AttackKind::kMultiAccountSource) == "multi_account_source");
  CHECK_FALSE(parse_attack_kind("nope").has_value());
  const auto schedule = default_attack_schedule(1000, kHourMs);
  REQUIRE(schedule.size() == kAttackKindCount);
  CHECK(schedule[3].start == 1000 + 3 * kHourMs);
}

TEST_CASE("simulator: same options give identical output, another seed does not") {
  auto digest = [](std::uint64_t seed) {
    SimulatorOptions o = weekday_morning();
    o.seed = seed;
    o.employees = 5000;
    o.attacks = default_attack_schedule(o.start, 10 * kSecondMs);
    o.label_events = true;
    PortalSimulator sim(o);
    std::string line;
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 10000; ++i) {
      sim.next(line);
      h = fnv1a(h, line);
    }
    for (const auto& l : sim.attacks()) h = fnv1a(h, label_to_json(l));
    return h;
  };
  CHECK(digest(7) == digest(7));
  CHECK(digest(7) != digest(8));
}

TEST_CASE("simulator: every line is a contract event and time never goes back") {
  SimulatorOptions o = weekday_morning();
  o.attacks = default_attack_schedule(o.start + kMinuteMs, 30 * kSecondMs);
  o.label_events = true;
  PortalSimulator sim(o);
  std::string line;
  TimeMs last = o.start;
  std::size_t with_geo = 0, labelled = 0;
  std::map<std::string, std::uint64_t> per_label;
  // Counted, then checked once: a CHECK per event would dominate the run time.
  int bad_time = 0, bad_action = 0, bad_outcome = 0, bad_ip = 0, nameless = 0, no_as = 0;
  int failure_without_reason = 0, unknown_user_with_id = 0, bad_attack = 0;
  constexpr int kEvents = 40000;
  for (int i = 0; i < kEvents; ++i) {
    const TimeMs t = sim.next(line);
    const auto p = parse_event(line);
    REQUIRE_MESSAGE(p.has_value(), line);
    REQUIRE(t >= last);
    last = t;
    bad_time += p->time != t;
    bad_action += kActions.count(p->action) == 0;
    bad_outcome += kOutcomes.count(p->outcome) == 0;
    bad_ip += !IpAddress::parse(p->source_ip).has_value();
    nameless += p->user_name.empty();  // every simulated request is made as someone
    no_as += !p->has_as;
    failure_without_reason += p->outcome == "failure" && p->reason.empty();
    unknown_user_with_id += p->reason == "unknown_user" && !p->user_id.empty();
    with_geo += p->has_geo;
    if (!p->attack_id.empty()) {
      ++labelled;
      ++per_label[p->attack_id];
      bad_attack += !parse_attack_kind(p->attack).has_value();
    }
  }
  CHECK(bad_time == 0);
  CHECK(bad_action == 0);
  CHECK(bad_outcome == 0);
  CHECK(bad_ip == 0);
  CHECK(nameless == 0);
  CHECK(no_as == 0);
  CHECK(failure_without_reason == 0);
  CHECK(unknown_user_with_id == 0);
  CHECK(bad_attack == 0);
  CHECK(last > o.start);
  CHECK(with_geo > kEvents * 9 / 10);
  CHECK(labelled > 0);
  // The label counts agree with the labelled lines.
  for (const auto& l : sim.attacks()) CHECK(per_label[l.id] == l.events);
}

TEST_CASE("simulator: events_per_second holds without the diurnal shape") {
  SimulatorOptions o = weekday_morning();
  o.diurnal = false;
  o.paydays = false;
  o.events_per_second = 300;
  PortalSimulator sim(o);
  std::string line;
  std::uint64_t n = 0;
  while (sim.next(line) < o.start + 5 * kMinuteMs) ++n;
  const double rate = static_cast<double>(n) / 300.0;
  CHECK(rate > 300 * 0.85);
  CHECK(rate < 300 * 1.15);
  CHECK(sim.events_generated() == n + 1);
}

TEST_CASE("simulator: nights are quiet and the weekday morning is busy") {
  auto rate_at = [](const char* when) {
    SimulatorOptions o;
    o.start = *parse_rfc3339(when);
    o.employees = 5000;
    PortalSimulator sim(o);
    std::string line;
    TimeMs t = 0;
    for (int i = 0; i < 3000; ++i) t = sim.next(line);
    return 3000.0 / (static_cast<double>(t - o.start) / 1000.0);
  };
  const double night = rate_at("2026-12-09T09:00:00Z");    // 3 a.m. CST
  const double morning = rate_at("2026-12-09T14:00:00Z");  // 8 a.m. CST
  CHECK(morning > 150);
  CHECK(morning < 230);
  CHECK(night < morning / 10);
}

TEST_CASE("simulator: ground truth for each scheduled attack names the right entity") {
  SimulatorOptions o = weekday_morning();
  o.events_per_second = 0;  // attacks only
  o.label_events = true;
  o.attacks = default_attack_schedule(o.start, 10 * kMinuteMs);
  o.attacks.push_back({AttackKind::kPasswordSpray, o.start + kHourMs, 30 * kMinuteMs, 1.0, 1});
  o.attacks.push_back({AttackKind::kBruteForce, o.start, 10 * kMinuteMs, 2.0, 0});
  PortalSimulator sim(o);
  std::string line;
  std::map<std::string, std::vector<Parsed>> events;
  std::vector<Parsed> unlabelled;  // the genuine halves of impossible_travel and session_hijack
  TimeMs last = 0;
  while (true) {
    const TimeMs t = sim.next(line);
    if (t < 0) break;
    REQUIRE(t >= last);
    last = t;
    const auto p = parse_event(line);
    REQUIRE(p.has_value());
    if (!p->attack_id.empty()) {
      events[p->attack_id].push_back(*p);
    } else {
      unlabelled.push_back(*p);
    }
  }
  CHECK(sim.exhausted());
  CHECK(line.empty());

  std::set<std::size_t> specs_seen;
  for (const AttackLabel& l : sim.attacks()) {
    INFO(label_to_json(l));
    specs_seen.insert(l.spec_index);
    CHECK(l.kind == o.attacks[l.spec_index].kind);
    const auto& evs = events[l.id];
    REQUIRE(!evs.empty());
    CHECK(evs.size() == l.events);
    CHECK(evs.front().time == l.start);
    CHECK(evs.back().time == l.end);
    CHECK(l.start >= o.attacks[l.spec_index].start);
    for (const Parsed& p : evs) CHECK(p.attack == to_string(l.kind));
    if (l.entity_type == "user") {
      for (const Parsed& p : evs) CHECK(p.user_name == l.entity);
    } else if (l.entity_type == "ip") {
      if (l.entity.find('/') != std::string::npos) {
        const auto net = IpNetwork::parse(l.entity);
        REQUIRE(net.has_value());
        CHECK(net->prefix_len == 64);
        std::set<std::string> addresses;
        for (const Parsed& p : evs) {
          CHECK(net->contains(*IpAddress::parse(p.source_ip)));
          addresses.insert(p.source_ip);
        }
        CHECK(addresses.size() > 100);  // it rotates inside the /64
      } else {
        for (const Parsed& p : evs) CHECK(p.source_ip == l.entity);
      }
    } else if (l.entity_type == "session") {
      for (const Parsed& p : evs) CHECK(p.session_id == l.entity);
    } else {
      CHECK(l.entity_type == "global");
      CHECK(l.entity == "global");
    }
  }
  CHECK(specs_seen.size() == o.attacks.size());

  auto label_of = [&](std::size_t spec) -> const AttackLabel& {
    for (const AttackLabel& l : sim.attacks())
      if (l.spec_index == spec) return l;
    FAIL("no label for spec " << spec);
    return sim.attacks().front();
  };
  auto count = [](const std::vector<Parsed>& evs, auto pred) {
    std::size_t n = 0;
    for (const Parsed& p : evs) n += pred(p) ? 1 : 0;
    return n;
  };

  // brute_force: hundreds of bad passwords on one account from one or two addresses; intensity
  // doubles it.
  const auto& bf = events[label_of(0).id];
  CHECK(bf.size() == 300);
  CHECK(count(bf, [](const Parsed& p) { return p.reason == "bad_password"; }) == 300);
  CHECK(events[label_of(12).id].size() == 600);

  // password_spray: one source, many accounts, few tries each.
  const auto& spray = events[label_of(1).id];
  std::map<std::string, int> per_user;
  for (const Parsed& p : spray)
    if (p.action == "login") ++per_user[p.user_name];
  CHECK(per_user.size() >= 200);
  for (const auto& [user, n] : per_user) CHECK(n <= 2);

  // credential_stuffing: hundreds of sources, none loud, mostly unknown users, a few successes.
  for (std::size_t spec : {2u, 3u}) {
    const auto& st = events[label_of(spec).id];
    std::map<std::string, int> per_ip;
    for (const Parsed& p : st) ++per_ip[p.source_ip];
    CHECK(per_ip.size() >= 100);
    int loudest = 0;
    for (const auto& [ip, n] : per_ip) loudest = std::max(loudest, n);
    CHECK(loudest < 60);
    const auto unknown = count(st, [](const Parsed& p) { return p.reason == "unknown_user"; });
    CHECK(unknown > st.size() / 3);
  }
  CHECK(label_of(2).successful_logins > 0);

  // enumeration: one session walking sequential record ids.
  const auto& en = events[label_of(4).id];
  std::vector<int> records;
  for (const Parsed& p : en)
    if (!p.record_id.empty()) records.push_back(std::stoi(p.record_id.substr(1)));
  REQUIRE(records.size() > 500);
  for (std::size_t i = 1; i < records.size(); ++i) CHECK(records[i] == records[i - 1] + 1);
  CHECK(count(en, [&](const Parsed& p) { return p.session_id == en.front().session_id; }) ==
        en.size());

  // automation: a tool user agent on a metronome.
  const auto& au = events[label_of(5).id];
  const std::string tool = au.front().user_agent;
  CHECK(tool.find("Mozilla") == std::string::npos);
  std::vector<TimeMs> gaps;
  for (std::size_t i = 1; i < au.size(); ++i)
    if (au[i].action == "view" && au[i - 1].action == "view")
      gaps.push_back(au[i].time - au[i - 1].time);
  REQUIRE(gaps.size() > 100);
  for (TimeMs g : gaps) CHECK(std::abs(g - gaps.front()) <= 5);

  // account_takeover: one label per phished account, all from a few hosts of one provider, each
  // followed by a direct-deposit change or savings reads.
  std::set<std::string> ato_users, ato_ips;
  for (const AttackLabel& l : sim.attacks()) {
    if (l.kind != AttackKind::kAccountTakeover) continue;
    ato_users.insert(l.entity);
    const auto& evs = events[l.id];
    for (const Parsed& p : evs) ato_ips.insert(p.source_ip);
    CHECK(count(evs, [](const Parsed& p) {
            return p.action == "login" && p.outcome == "success";
          }) == 1);
    const auto sensitive = count(evs, [](const Parsed& p) {
      return (p.action == "change" && p.app == "direct_deposit") ||
             (p.action == "view" && (p.app == "hsa" || p.app == "deferred_comp"));
    });
    CHECK(sensitive > 0);
  }
  CHECK(ato_users.size() == 50);
  CHECK(ato_ips.size() <= 3);

  // impossible_travel: the labelled login is abroad, minutes after a Missouri login (unlabelled).
  CHECK(label_of(7).successful_logins == 1);
  {
    const AttackLabel& it = label_of(7);
    TimeMs home_login = -1;
    for (const Parsed& p : unlabelled)
      if (p.user_name == it.entity && p.action == "login" && p.outcome == "success")
        home_login = p.time;
    REQUIRE(home_login >= 0);
    CHECK(it.start - home_login < 30 * kMinuteMs);
    CHECK(it.start > home_login);
  }

  // mfa_fatigue: a burst of denied or timed-out challenges, then an approval.
  const auto& mf = events[label_of(8).id];
  CHECK(count(mf, [](const Parsed& p) { return p.action == "mfa" && p.outcome == "failure"; }) >=
        10);
  CHECK(count(mf, [](const Parsed& p) { return p.action == "mfa" && p.outcome == "success"; }) ==
        1);

  std::set<std::string> hijack_owner_ips, hijack_owner_uas;
  for (const Parsed& p : unlabelled) {
    if (p.session_id == label_of(9).entity) {
      hijack_owner_ips.insert(p.source_ip);
      hijack_owner_uas.insert(p.user_agent);
    }
  }
  // session_hijack: the labelled requests use another network and client than the session's owner.
  const auto& hj = events[label_of(9).id];
  CHECK(hj.size() >= 3);
  for (const Parsed& p : hj) {
    CHECK(p.session_id == hj.front().session_id);
    CHECK(p.source_ip == hj.front().source_ip);
  }
  CHECK(hijack_owner_ips.count(hj.front().source_ip) == 0);
  CHECK(hijack_owner_uas.count(hj.front().user_agent) == 0);
  CHECK_FALSE(hijack_owner_ips.empty());

  // multi_account_source: one address signing in as many accounts.
  const auto& ma = events[label_of(10).id];
  std::set<std::string> signed_in;
  for (const Parsed& p : ma)
    if (p.action == "login" && p.outcome == "success") signed_in.insert(p.user_name);
  CHECK(signed_in.size() >= 25);
}

TEST_CASE("simulator: benign traffic is the same with or without attacks") {
  SimulatorOptions plain = weekday_morning();
  plain.employees = 5000;
  SimulatorOptions attacked = plain;
  attacked.attacks = {{AttackKind::kCredentialStuffing, plain.start, 5 * kMinuteMs, 0.5, 0},
                      {AttackKind::kBruteForce, plain.start + kMinuteMs, 5 * kMinuteMs, 1.0, 0}};
  attacked.label_events = true;
  PortalSimulator a(plain), b(attacked);
  std::string la, lb;
  int differences = 0, skipped = 0;
  for (int i = 0; i < 20000; ++i) {
    a.next(la);
    do {
      b.next(lb);
      ++skipped;
    } while (lb.find("\"labels\"") != std::string::npos);
    differences += la != lb;
  }
  CHECK(differences == 0);
  CHECK(skipped > 20000 + 300);  // the attacks were there, interleaved
}

TEST_CASE("simulator: a flood takes its share of events, cycles through its keys and leaves the rest unchanged") {
  SimulatorOptions plain = weekday_morning();
  plain.employees = 2000;
  plain.attacks = {{AttackKind::kBruteForce, plain.start + kMinuteMs, 5 * kMinuteMs, 1.0, 0}};
  plain.label_events = true;
  SimulatorOptions flooded = plain;
  flooded.flood_share = 0.25;
  flooded.flood_sources = 3000;
  flooded.flood_accounts = 5000;
  PortalSimulator a(plain), b(flooded);
  std::string la, lb;
  std::set<std::string> sources, names, employees;
  std::size_t flood = 0, total = 0, successes = 0, unknown = 0, bad_json = 0, differences = 0;
  TimeMs last = flooded.start;
  int back_in_time = 0, not_login = 0, wrong_time = 0;
  for (int i = 0; i < 30000; ++i) {
    a.next(la);
    if (const auto p = parse_event(la)) employees.insert(p->user_name);
    for (;;) {
      const TimeMs t = b.next(lb);
      ++total;
      back_in_time += t < last;
      last = t;
      const auto p = parse_event(lb);
      if (!p) {
        ++bad_json;
        break;
      }
      if (p->attack_id != "flood") break;
      ++flood;
      sources.insert(p->source_ip);
      names.insert(p->user_name);
      not_login += p->action != "login";
      wrong_time += p->time != t;
      successes += p->outcome == "success";
      unknown += p->reason == "unknown_user";
    }
    differences += la != lb;
  }
  CHECK(bad_json == 0);
  CHECK(differences == 0);  // the benign and scheduled events, in the same order
  CHECK(back_in_time == 0);
  CHECK(not_login == 0);
  CHECK(wrong_time == 0);
  CHECK(static_cast<double>(flood) / static_cast<double>(total) == doctest::Approx(0.25).epsilon(0.05));
  CHECK(sources.size() == 3000);  // every source and every name came round (flood > 5000)
  CHECK(names.size() == 5000);
  CHECK(employees.size() <= 2000);
  CHECK(std::none_of(names.begin(), names.end(), [&](const std::string& n) { return employees.count(n) > 0; }));
  CHECK(unknown > flood / 2);
  CHECK(successes > 0);
  CHECK(successes < flood / 50);
  bool labelled = false;
  for (const auto& l : b.attacks())
    if (l.id == "flood") {
      labelled = true;
      CHECK(l.events == flood);
      CHECK(l.entity_type == "global");
      CHECK(l.spec_index == flooded.attacks.size());
    }
  CHECK(labelled);
}

TEST_CASE("simulator: a flood source tries another name each time round") {
  SimulatorOptions o = weekday_morning();
  o.employees = 100;
  o.flood_share = 0.5;
  o.flood_sources = 100;
  o.flood_accounts = 100;
  o.label_events = true;
  PortalSimulator sim(o);
  std::string line;
  std::map<std::string, std::set<std::string>> names_by_source;
  for (int i = 0; i < 4000; ++i) {
    sim.next(line);
    const auto p = parse_event(line);
    REQUIRE(p.has_value());
    if (p->attack_id == "flood") names_by_source[p->source_ip].insert(p->user_name);
  }
  REQUIRE(names_by_source.size() == 100);
  std::size_t fewest = SIZE_MAX;
  for (const auto& [source, names] : names_by_source) fewest = std::min(fewest, names.size());
  CHECK(fewest >= 15);  // about 20 rounds: a name each
}

TEST_CASE("simulator: a flood of millions of keys names each source and account once per cycle") {
  SimulatorOptions o = weekday_morning();
  o.employees = 100;
  o.flood_share = 0.95;
  o.flood_sources = kMaxFloodSources;
  o.flood_accounts = kMaxFloodAccounts;
  o.label_events = true;
  PortalSimulator sim(o);
  std::string line;
  std::unordered_set<std::string> sources, names;
  std::size_t flood = 0, bad_ip = 0;
  for (int i = 0; i < 200000; ++i) {
    sim.next(line);
    const auto p = parse_event(line);
    REQUIRE(p.has_value());
    if (p->attack_id != "flood") continue;
    ++flood;
    sources.insert(p->source_ip);
    names.insert(p->user_name);
    bad_ip += !IpAddress::parse(p->source_ip).has_value();
  }
  CHECK(bad_ip == 0);
  CHECK(flood > 180000);
  CHECK(sources.size() == flood);  // no address or name repeats within a cycle
  CHECK(names.size() == flood);
}

TEST_CASE("simulator: office NAT addresses carry many distinct employees") {
  SimulatorOptions o = weekday_morning();
  PortalSimulator sim(o);
  const auto nats = PortalSimulator::office_nat_ips();
  REQUIRE(nats.size() >= 3);
  std::unordered_map<std::string, std::unordered_set<std::string>> users;
  std::map<std::string, std::pair<int, int>> logins;  // failures, all
  std::string line;
  constexpr int kEvents = 90000;
  for (int i = 0; i < kEvents; ++i) {
    sim.next(line);
    const auto p = parse_event(line);
    REQUIRE(p.has_value());
    users[p->source_ip].insert(p->user_name);
    if (p->action == "login") {
      auto& [fail, all] = logins[p->source_ip];
      ++all;
      if (p->outcome == "failure") ++fail;
    }
  }
  for (const std::string& ip : nats) {
    INFO(ip);
    CHECK(users[ip].size() > 500);
    const auto [fail, all] = logins[ip];
    REQUIRE(all > 0);
    const double failure_share = static_cast<double>(fail) / all;
    CHECK(failure_share > 0.03);  // ordinary typos
    CHECK(failure_share < 0.15);
  }
  // Nobody else looks like that: the next busiest address has a handful of users (a household,
  // the corporate VPN).
  std::size_t busiest_other = 0;
  for (const auto& [ip, u] : users)
    if (std::find(nats.begin(), nats.end(), ip) == nats.end())
      busiest_other = std::max(busiest_other, u.size());
  CHECK(busiest_other < 200);
}

TEST_CASE("simulator: events are about 500 to 800 bytes") {
  SimulatorOptions o = weekday_morning();
  o.attacks = default_attack_schedule(o.start, 20 * kSecondMs);
  o.label_events = true;
  PortalSimulator sim(o);
  std::string line;
  double total = 0;
  int outside = 0;
  int newlines = 0;
  constexpr int kEvents = 30000;
  for (int i = 0; i < kEvents; ++i) {
    sim.next(line);
    total += static_cast<double>(line.size());
    if (line.size() < 450 || line.size() > 900) ++outside;
    newlines += line.find('\n') != std::string::npos;
  }
  CHECK(newlines == 0);
  const double mean = total / kEvents;
  CHECK(mean > 500);
  CHECK(mean < 800);
  CHECK(outside < kEvents / 100);
}

TEST_CASE("simulator: a password-expiry morning brings expired_password failures and resets") {
  auto count_expired = [](bool expiry_day) {
    SimulatorOptions o = weekday_morning();
    o.employees = 5000;
    if (expiry_day) o.password_expiry_days = {o.start};
    PortalSimulator sim(o);
    std::string line;
    int expired = 0, resets = 0;
    for (int i = 0; i < 20000; ++i) {
      sim.next(line);
      expired += line.find("\"expired_password\"") != std::string::npos;
      resets += line.find("\"password_reset\"") != std::string::npos;
    }
    return std::pair{expired, resets};
  };
  const auto [normal_expired, normal_resets] = count_expired(false);
  const auto [expiry_expired, expiry_resets] = count_expired(true);
  CHECK(expiry_expired > 10 * std::max(1, normal_expired));
  CHECK(expiry_resets > 5 * std::max(1, normal_resets));
}

TEST_CASE("simulator: a repeating schedule runs again with fresh labels") {
  SimulatorOptions o = weekday_morning();
  o.events_per_second = 0;
  o.attacks = {{AttackKind::kMfaFatigue, o.start, 10 * kMinuteMs, 1.0, 0}};
  o.repeat_attacks_every = kHourMs;
  PortalSimulator sim(o);
  std::string line;
  while (sim.next(line) < o.start + 3 * kHourMs) {
  }
  REQUIRE(sim.attacks().size() >= 3);
  CHECK(sim.attacks()[0].id == "atk00");
  CHECK(sim.attacks()[1].id == "atk00r1");
  CHECK(sim.attacks()[2].id == "atk00r2");
  CHECK(sim.attacks()[1].start >= o.start + kHourMs);
  CHECK(sim.attacks()[1].entity != sim.attacks()[0].entity);  // another victim each time
  CHECK_FALSE(sim.exhausted());
}

TEST_CASE("simulator: label_to_json is one valid JSON object") {
  AttackLabel l;
  l.id = "atk01";
  l.kind = AttackKind::kPasswordSpray;
  l.entity_type = "ip";
  l.entity = "203.0.113.9";
  l.alternates = {{"asn", "14061"}};
  const std::string json = label_to_json(l);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(json).get(doc) == simdjson::SUCCESS);
  CHECK(std::string_view(doc["detector"]) == "password_spray");
  CHECK(std::string_view(doc["entity"]["value"]) == "203.0.113.9");
}

}  // namespace portalwatch::sim
