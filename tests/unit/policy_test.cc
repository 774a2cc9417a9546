// Decision policies: counting per scope, the scope a finding points at, lockdown lifecycles
// (release, expiry with escalation, quiet auto-release, cooldown, operator release winning until
// new evidence), dry-run, and configuration errors. Event time only; no sleeping.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "detectors/policy.h"
#include "tests/unit/event_builder.h"

namespace portalwatch {

namespace {

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");

struct Made final : DecisionSink {
  std::vector<Decision> all;
  void decide(Decision&& d) override { all.push_back(std::move(d)); }
};

std::uint64_t g_id = 1;

Finding takeover(const std::string& user, const std::string& app, TimeMs at, Severity s = Severity::kCritical) {
  Finding f = make_finding("account_takeover", "account_takeover", s, EntityType::kUser, user, at, 2 * kHourMs);
  f.seq = g_id++;
  f.evidence.add("app", app);
  f.summary = user + " taken over";
  return f;
}

Finding stuffing(TimeMs at, Severity s, std::int64_t successes) {
  Finding f = make_finding("credential_stuffing", "credential_stuffing", s, EntityType::kGlobal, "global", at, kHourMs);
  f.seq = g_id++;
  f.evidence.add("successes", successes);
  f.summary = "wave";
  return f;
}

Finding spray(const std::string& ip, TimeMs at, Severity s = Severity::kHigh) {
  Finding f = make_finding("password_spray", "password_spray", s, EntityType::kIp, ip, at, 15 * kMinuteMs);
  f.seq = g_id++;
  f.summary = "spray";
  return f;
}

PolicyConfig savings() {
  PolicyConfig p;
  p.name = "savings";
  p.detectors = {"account_takeover"};
  p.apps = {"hsa", "deferred_comp"};
  p.count = 3;
  p.distinct_entities = true;
  p.within_ms = 10 * kMinuteMs;
  p.scope = ScopeType::kApp;
  return p;
}

std::vector<PolicyConfig> from_yaml(const std::string& yaml, std::string* errors = nullptr) {
  const ConfigResult r = load_config_text(yaml, "test.yaml");
  if (errors) *errors = r.errors;
  return r.config ? r.config->policies : std::vector<PolicyConfig>{};
}

}  // namespace

TEST_CASE("policy: three takeovers of distinct accounts on one savings app lock that app, not the portal") {
  PolicyEngine e({savings()});
  Made out;
  e.on_finding(takeover("ann", "hsa", kT0), out);
  e.on_finding(takeover("ann", "hsa", kT0 + kMinuteMs), out);  // the same account again: still one
  e.on_finding(takeover("bob", "paystub", kT0 + 2 * kMinuteMs), out);  // another app: not counted
  e.on_finding(takeover("bob", "hsa", kT0 + 3 * kMinuteMs), out);
  CHECK(out.all.empty());
  e.on_finding(takeover("cat", "hsa", kT0 + 4 * kMinuteMs), out);
  REQUIRE(out.all.size() == 1);
  const Decision& d = out.all[0];
  CHECK(d.on);
  CHECK(d.scope.key() == "app:hsa");
  CHECK(d.by == "policy:savings");
  CHECK(d.reason == "account_takeover x3 (distinct accounts) on hsa in 10m");
  CHECK(d.findings.size() == 4);
  CHECK(d.expires == 0);  // until an operator releases it
  CHECK(d.to_json().find("\"kind\":\"decision\",\"action\":\"lockdown\",\"state\":\"on\",\"scope\":{\"type\":\"app\",\"value\":\"hsa\"}") !=
        std::string::npos);
  // More takeovers while it is on make no new decision.
  e.on_finding(takeover("dan", "hsa", kT0 + 5 * kMinuteMs), out);
  CHECK(out.all.size() == 1);
  e.tick(kT0 + 30 * kDayMs, out);
  CHECK(out.all.size() == 1);
  CHECK(e.active().count("lockdown app:hsa"));
}

TEST_CASE("policy: findings spread wider than the window do not add up") {
  PolicyEngine e({savings()});
  Made out;
  e.on_finding(takeover("ann", "hsa", kT0), out);
  e.on_finding(takeover("bob", "hsa", kT0 + 6 * kMinuteMs), out);
  e.on_finding(takeover("cat", "hsa", kT0 + 12 * kMinuteMs), out);  // ann's has left the window
  CHECK(out.all.empty());
  e.on_finding(takeover("dan", "hsa", kT0 + 13 * kMinuteMs), out);
  CHECK(out.all.size() == 1);
}

TEST_CASE("policy: an evidence condition: a stuffing wave only when it gets in") {
  PolicyConfig p;
  p.name = "wave";
  p.detectors = {"credential_stuffing"};
  p.min_severity = Severity::kCritical;
  p.evidence = {{"successes", 1.0, std::nullopt, {}}};
  PolicyEngine e({p});
  Made out;
  e.on_finding(stuffing(kT0, Severity::kCritical, 0), out);
  e.on_finding(stuffing(kT0 + kMinuteMs, Severity::kHigh, 3), out);  // below the severity
  CHECK(out.all.empty());
  e.on_finding(stuffing(kT0 + 2 * kMinuteMs, Severity::kCritical, 2), out);
  REQUIRE(out.all.size() == 1);
  CHECK(out.all[0].scope.key() == "global");
  CHECK(out.all[0].reason == "credential_stuffing (critical): wave");
}

TEST_CASE("policy: ip blocks expire and escalate for a source that comes back; cooldown") {
  PolicyConfig p;
  p.name = "block";
  p.detectors = {"password_spray"};
  p.scope = ScopeType::kIp;
  p.durations = {15 * kMinuteMs, kHourMs, kDayMs};
  p.cooldown_ms = 5 * kMinuteMs;
  PolicyEngine e({p});
  Made out;
  e.on_finding(spray("203.0.113.9", kT0), out);
  REQUIRE(out.all.size() == 1);
  CHECK(out.all[0].expires == kT0 + 15 * kMinuteMs);
  e.tick(kT0 + 14 * kMinuteMs, out);
  CHECK(out.all.size() == 1);
  e.tick(kT0 + 15 * kMinuteMs, out);
  REQUIRE(out.all.size() == 2);
  CHECK_FALSE(out.all[1].on);
  CHECK(out.all[1].reason == "expired after 15m");
  CHECK(out.all[1].findings == std::vector<std::string>{out.all[0].id_string()});
  // Within the cooldown: nothing. After it: blocked again, for an hour, then a day.
  e.on_finding(spray("203.0.113.9", kT0 + 17 * kMinuteMs), out);
  CHECK(out.all.size() == 2);
  e.on_finding(spray("203.0.113.9", kT0 + 21 * kMinuteMs), out);
  REQUIRE(out.all.size() == 3);
  CHECK(out.all[2].expires == kT0 + 21 * kMinuteMs + kHourMs);
  e.tick(kT0 + 2 * kHourMs, out);
  e.on_finding(spray("203.0.113.9", kT0 + 3 * kHourMs), out);
  REQUIRE(out.all.size() == 5);
  CHECK(out.all[4].expires == kT0 + 3 * kHourMs + kDayMs);
  // Another source starts from the first step; an aggregate (/64) names no single address.
  e.on_finding(spray("198.51.100.7", kT0 + 3 * kHourMs), out);
  REQUIRE(out.all.size() == 6);
  CHECK(out.all[5].expires == kT0 + 3 * kHourMs + 15 * kMinuteMs);
  e.on_finding(spray("2001:db8:1:2::/64", kT0 + 3 * kHourMs), out);
  CHECK(out.all.size() == 6);
  CHECK(e.stats().unscoped == 1);
}

TEST_CASE("policy: a quiet period releases an auto-release lockdown; the cooldown follows") {
  PolicyConfig p = savings();
  p.auto_release_quiet_ms = 30 * kMinuteMs;
  p.cooldown_ms = 60 * kMinuteMs;
  PolicyEngine e({p});
  Made out;
  for (int i = 0; i < 3; ++i) e.on_finding(takeover("u" + std::to_string(i), "hsa", kT0 + i * kMinuteMs), out);
  REQUIRE(out.all.size() == 1);
  e.on_finding(takeover("u9", "hsa", kT0 + 20 * kMinuteMs), out);  // evidence keeps it on
  e.tick(kT0 + 45 * kMinuteMs, out);
  CHECK(out.all.size() == 1);
  e.tick(kT0 + 50 * kMinuteMs, out);
  REQUIRE(out.all.size() == 2);
  CHECK_FALSE(out.all[1].on);
  CHECK(out.all[1].reason == "no matching finding for 30m");
  for (int i = 0; i < 3; ++i) e.on_finding(takeover("v" + std::to_string(i), "hsa", kT0 + 60 * kMinuteMs + i), out);
  CHECK(out.all.size() == 2);  // cooldown until kT0 + 110m
}

TEST_CASE("policy: an operator's release wins until there is new evidence; manual lockdowns") {
  PolicyEngine e({savings()});
  Made out;
  for (int i = 0; i < 3; ++i) e.on_finding(takeover("u" + std::to_string(i), "hsa", kT0 + i * kMinuteMs), out);
  REQUIRE(out.all.size() == 1);
  const Scope hsa = *Scope::parse("app:hsa");
  auto off = e.manual(hsa, DecisionAction::kLockdown, false, "jsmith", "reset done", 0, kT0 + 5 * kMinuteMs);
  REQUIRE(off.changed);
  CHECK(off.decision->by == "operator:jsmith");
  CHECK_FALSE(off.decision->on);
  CHECK(e.active().empty());
  // A late finding from before the release does not bring it back; three new ones do.
  e.on_finding(takeover("u4", "hsa", kT0 + 4 * kMinuteMs), out);
  e.on_finding(takeover("u5", "hsa", kT0 + 6 * kMinuteMs), out);
  e.on_finding(takeover("u6", "hsa", kT0 + 7 * kMinuteMs), out);
  CHECK(out.all.size() == 1);
  e.on_finding(takeover("u7", "hsa", kT0 + 8 * kMinuteMs), out);
  CHECK(out.all.size() == 2);

  // Manual: on is idempotent, off of nothing is refused, a ttl expires it.
  const Scope global = *Scope::parse("global");
  auto on = e.manual(global, DecisionAction::kLockdown, true, "jsmith", "vendor report", kHourMs, kT0);
  REQUIRE(on.changed);
  CHECK(on.decision->expires == kT0 + kHourMs);
  auto again = e.manual(global, DecisionAction::kLockdown, true, "other", "again", 0, kT0 + 1);
  CHECK_FALSE(again.changed);
  CHECK(again.decision->id_string() == on.decision->id_string());
  auto nothing = e.manual(*Scope::parse("ip:203.0.113.1"), DecisionAction::kLockdown, false, "jsmith", "x", 0, kT0);
  CHECK_FALSE(nothing.changed);
  CHECK(nothing.error == "no lockdown is on for ip:203.0.113.1");
  CHECK_FALSE(e.manual(global, DecisionAction::kReauthenticate, true, "jsmith", "x", 0, kT0).error.empty());
  e.tick(kT0 + kHourMs, out);
  CHECK(out.all.back().reason == "expired after 1h");
  CHECK(out.all.back().scope.key() == "global");
}

TEST_CASE("policy: dry-run decides and keeps state, marked; a dry-run detector's findings are not acted on") {
  PolicyConfig p = savings();
  p.dry_run = true;
  PolicyEngine e({p});
  Made out;
  for (int i = 0; i < 4; ++i) e.on_finding(takeover("u" + std::to_string(i), "hsa", kT0 + i * kMinuteMs), out);
  REQUIRE(out.all.size() == 1);
  CHECK(out.all[0].dry_run);
  CHECK(out.all[0].to_json().find("\"dry_run\":true") != std::string::npos);
  PolicyEngine all_dry({savings()}, true);
  Made out2;
  for (int i = 0; i < 3; ++i) {
    Finding f = takeover("w" + std::to_string(i), "hsa", kT0 + i);
    all_dry.on_finding(f, out2);
  }
  REQUIRE(out2.all.size() == 1);
  CHECK(out2.all[0].dry_run);
  PolicyEngine e3({savings()});
  Made out3;
  for (int i = 0; i < 3; ++i) {
    Finding f = takeover("x" + std::to_string(i), "hsa", kT0 + i);
    f.dry_run = true;
    e3.on_finding(f, out3);
  }
  CHECK(out3.all.empty());
}

TEST_CASE("policy: scopes are bounded under a flood of distinct sources") {
  PolicyConfig p;
  p.name = "block";
  p.detectors = {"password_spray"};
  p.scope = ScopeType::kIp;
  p.count = 2;
  p.max_scopes = 64;
  PolicyEngine e({p});
  Made out;
  for (int i = 0; i < 5000; ++i)
    e.on_finding(spray("10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".1", kT0 + i), out);
  CHECK(out.all.empty());
  CHECK(e.stats().scopes_evicted > 0);
}

TEST_CASE("policy: the shipped policies read, and configuration errors name file, line and key") {
  const ConfigResult shipped = load_config(std::nullopt);
  REQUIRE_MESSAGE(shipped.config, shipped.errors);
  CHECK(shipped.config->policies.size() == 4);
  std::string errors;
  from_yaml(R"(
policies:
  - name: a
    when: {detectors: [no_such_detector], min_severity: severe}
    scope: app
  - name: a
    when: {detectors: [account_takeover], evidence: {successes: {}}}
    scope: ip
    action: reauthenticate
  - when: {}
    scope: somewhere
)", &errors);
  CHECK(errors.find("test.yaml:4:24: policies[0].when.detectors[0]: \"no_such_detector\" is not a configured detector") !=
        std::string::npos);
  CHECK(errors.find("policies[0].when.min_severity") != std::string::npos);
  CHECK(errors.find("policy name \"a\" is used twice") != std::string::npos);
  CHECK(errors.find("policies[1].when.evidence.successes: expected min, max or any_of") != std::string::npos);
  CHECK(errors.find("policies[1].action: reauthenticate applies to user scope only") != std::string::npos);
  CHECK(errors.find("missing key \"name\"") != std::string::npos);
  CHECK(errors.find("policies[2].scope") != std::string::npos);
}

}  // namespace portalwatch

namespace portalwatch {

TEST_CASE("policy: a lockdown's stored form round-trips and rejects damage; restore keeps it on") {
  Lockdown l;
  l.decision.seq = 42;
  l.decision.action = DecisionAction::kReauthenticate;
  l.decision.scope = *Scope::parse("user:o'brien;$(id)");
  l.decision.at = kT0;
  l.decision.expires = kT0 + kDayMs;
  l.decision.by = "policy:revoke";
  l.decision.reason = "account_takeover (critical): taken over";
  l.decision.findings = {"f-000000000007", "f-000000000009"};
  l.policy = "revoke";
  l.last_evidence = kT0 + kMinuteMs;
  l.repeat = 2;
  l.hooks_done = true;
  const std::string bytes = l.encode();
  const auto back = Lockdown::decode(bytes);
  REQUIRE(back);
  CHECK(back->encode() == bytes);
  CHECK(back->decision.to_json() == l.decision.to_json());
  CHECK(back->policy == "revoke");
  CHECK(back->hooks_done);
  CHECK(back->repeat == 2);
  CHECK_FALSE(Lockdown::decode(""));
  CHECK_FALSE(Lockdown::decode(bytes.substr(0, bytes.size() - 1)));
  CHECK_FALSE(Lockdown::decode(bytes + "x"));
  std::string bad = bytes;
  bad[3] = 9;  // no such scope type
  CHECK_FALSE(Lockdown::decode(bad));

  PolicyConfig p;
  p.name = "revoke";
  p.detectors = {"account_takeover"};
  p.scope = ScopeType::kUser;
  p.action = DecisionAction::kReauthenticate;
  p.durations = {kDayMs};
  PolicyEngine e({p});
  e.restore(*back);
  Made out;
  e.on_finding(takeover("o'brien;$(id)", "hsa", kT0 + 2 * kMinuteMs), out);
  CHECK(out.all.empty());  // on already: nothing new
  e.tick(kT0 + kDayMs, out);
  REQUIRE(out.all.size() == 1);
  CHECK_FALSE(out.all[0].on);
}

}  // namespace portalwatch

namespace portalwatch {

TEST_CASE("policy: an allowlisted network is never blocked; a silenced detector decides nothing until its time") {
  PolicyConfig p;
  p.name = "block";
  p.detectors = {"password_spray"};
  p.scope = ScopeType::kIp;
  PolicyEngine e({p});
  Made out;
  e.allow({*IpNetwork::parse("198.51.100.0/24"), "state office", "operator:jsmith", kT0});
  e.on_finding(spray("198.51.100.7", kT0), out);
  CHECK(out.all.empty());
  CHECK(e.disallow(*IpNetwork::parse("198.51.100.0/24")));
  CHECK_FALSE(e.disallow(*IpNetwork::parse("198.51.100.0/24")));
  e.on_finding(spray("198.51.100.7", kT0 + 1), out);
  CHECK(out.all.size() == 1);

  e.silence({"password_spray", kT0 + kHourMs, "operator:jsmith", "pen test"});
  REQUIRE(e.silences().size() == 1);
  e.on_finding(spray("203.0.113.5", kT0 + 30 * kMinuteMs), out);
  CHECK(out.all.size() == 1);
  e.on_finding(spray("203.0.113.5", kT0 + kHourMs), out);
  CHECK(out.all.size() == 2);
  e.silence({"password_spray", 0, "operator:jsmith", ""});
  CHECK(e.silences().empty());
}

TEST_CASE("policy: a reload keeps lockdowns in force and their expiry") {
  PolicyConfig p;
  p.name = "block";
  p.detectors = {"password_spray"};
  p.scope = ScopeType::kIp;
  p.durations = {15 * kMinuteMs};
  PolicyEngine e({p});
  Made out;
  e.on_finding(spray("203.0.113.9", kT0), out);
  REQUIRE(out.all.size() == 1);
  PolicyConfig q = p;
  q.count = 5;
  e.reconfigure({q}, false);
  CHECK(e.active().size() == 1);
  e.tick(kT0 + 15 * kMinuteMs, out);
  REQUIRE(out.all.size() == 2);
  CHECK_FALSE(out.all[1].on);
  for (int i = 0; i < 4; ++i) e.on_finding(spray("203.0.113.10", kT0 + kHourMs + i), out);
  CHECK(out.all.size() == 2);  // the new count (5) applies
  e.on_finding(spray("203.0.113.10", kT0 + kHourMs + 5), out);
  CHECK(out.all.size() == 3);
}

TEST_CASE("policy: thousands of lockdowns end each at the first tick it should, in key order") {
  // tick() looks only at the lockdowns whose end has come (a queue by end time); a model of every
  // lockdown in force says which must end at each tick: expired, or quiet for the policy's quiet
  // period since its last evidence. Ticks come every few seconds, findings between them.
  PolicyConfig p;
  p.name = "block";
  p.detectors = {"password_spray"};
  p.scope = ScopeType::kIp;
  p.durations = {20 * kMinuteMs, kHourMs};
  p.auto_release_quiet_ms = 10 * kMinuteMs;
  p.cooldown_ms = kMinuteMs;
  PolicyEngine e({p});
  struct Model {
    TimeMs expires;
    TimeMs last_evidence;
  };
  std::map<std::string, Model> in_force;  // by PolicyEngine::key_of
  test::TestRng r(5);
  Made out;
  TimeMs t = kT0;
  size_t ended = 0, checked_ticks = 0;
  for (int step = 0; step < 60000; ++step) {
    t += 1 + static_cast<TimeMs>(r.below(3000));
    if (step % 5 != 4) {
      const std::string ip = "198.51." + std::to_string(r.below(12)) + "." + std::to_string(r.below(250));
      const size_t before = out.all.size();
      e.on_finding(spray(ip, t), out);
      Scope scope;
      scope.type = ScopeType::kIp;
      scope.value = ip;
      const std::string key = PolicyEngine::key_of(DecisionAction::kLockdown, scope);
      if (out.all.size() > before) {
        REQUIRE(out.all.back().on);
        in_force[key] = Model{out.all.back().expires, t};
      } else if (auto it = in_force.find(key); it != in_force.end()) {
        it->second.last_evidence = std::max(it->second.last_evidence, t);
      }
      continue;
    }
    std::vector<std::string> due;
    std::map<std::string, TimeMs> ended_at;  // the lockdown's own end: its expiry, else the end of the quiet time
    for (const auto& [key, m] : in_force)
      if ((m.expires > 0 && t >= m.expires) || t - m.last_evidence >= p.auto_release_quiet_ms) {
        due.push_back(key);
        ended_at[key] = m.expires > 0 && t >= m.expires ? m.expires : m.last_evidence + p.auto_release_quiet_ms;
      }
    const size_t before = out.all.size();
    e.tick(t, out);
    REQUIRE(out.all.size() - before == due.size());
    for (size_t i = 0; i < due.size(); ++i) {
      const Decision& d = out.all[before + i];
      CHECK_FALSE(d.on);
      CHECK(d.at == ended_at[due[i]]);  // not the tick's time: the same whenever time got there
      CHECK(d.at <= t);
      CHECK(PolicyEngine::key_of(d.action, d.scope) == due[i]);  // in key order
      in_force.erase(due[i]);
    }
    ended += due.size();
    ++checked_ticks;
    CHECK(e.active().size() == in_force.size());
  }
  CHECK(ended > 2000);
  CHECK(checked_ticks == 12000);
}

}  // namespace portalwatch
