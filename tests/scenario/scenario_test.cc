// The scenario suite: days of simulated portal traffic with labelled attacks of every kind, run
// through the shipped default configuration. For each attack kind whose detector is configured,
// every attack must be found on its entity within a stated time, and benign traffic must raise
// no medium-or-higher finding. Prints recall, false alerts per simulated day and time to detect.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "daemon/config.h"
#include "daemon/pipeline.h"
#include "daemon/simulator.h"
#include "detectors/engine.h"

namespace portalwatch {

namespace {

using sim::AttackKind;

/// How soon after an attack's first event its finding must appear.
TimeMs max_time_to_detect(AttackKind kind) {
  switch (kind) {
    case AttackKind::kLowAndSlowStuffing:
      return 3 * kHourMs;
    case AttackKind::kCredentialStuffing:
    case AttackKind::kMultiAccountSource:
    case AttackKind::kAccountTakeover:
      return 30 * kMinuteMs;
    default:
      return 15 * kMinuteMs;
  }
}

// What the daemon's pipeline publishes: every finding and decision, in order. With an on-call
// operator (`operator_release`) who releases a whole-portal or application lockdown two hours
// after it went on (the portal team has reset what leaked).
struct Collect final : FindingOutput, DecisionSink {
  std::vector<Finding> findings;
  std::vector<Decision> decisions;
  PolicyEngine* policies = nullptr;
  bool operator_release = false;
  void publish(const Finding& f, const std::string&, const std::string&) override {
    findings.push_back(f);
    if (!operator_release) return;
    for (const auto& [key, l] : policies->active())
      if ((l.decision.scope.type == ScopeType::kGlobal || l.decision.scope.type == ScopeType::kApp) &&
          f.at >= l.decision.at + 2 * kHourMs) {
        const auto r = policies->manual(l.decision.scope, l.decision.action, false, "oncall", "passwords reset", 0, f.at);
        decide(Decision(*r.decision));
        break;
      }
  }
  void decide(Decision&& d) override { decisions.push_back(std::move(d)); }
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool names(const Finding& f, const sim::AttackLabel& l) {
  const std::string type(to_string(f.entity_type));
  auto same = [&](const std::string& t, const std::string& v) {
    return t == type && lower(v) == lower(f.entity);
  };
  if (same(l.entity_type, l.entity)) return true;
  for (const auto& a : l.alternates)
    if (same(a.type, a.value)) return true;
  return false;
}

/// Detectors that must find an attack of this kind: its canonical one, and failure_spike for the
/// stuffing wave (the one attack that moves the portal-wide failure ratio on its own).
std::vector<std::string> expected_detectors(AttackKind kind) {
  std::vector<std::string> out{std::string(sim::expected_detector(kind))};
  if (kind == AttackKind::kCredentialStuffing) out.emplace_back("failure_spike");
  return out;
}

/// Attacks whose failed sign-ins can move portal-wide figures, and so explain a global finding.
bool moves_failures(AttackKind kind) {
  return kind == AttackKind::kBruteForce || kind == AttackKind::kPasswordSpray ||
         kind == AttackKind::kCredentialStuffing || kind == AttackKind::kLowAndSlowStuffing;
}

TimeMs median(const std::vector<TimeMs>& sorted) {
  const size_t n = sorted.size();
  return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

struct KindScore {
  int attacks = 0;
  int found = 0;
  std::vector<TimeMs> ttd;
};

}  // namespace

TEST_CASE("scenario: three simulated days, every attack kind, the default configuration") {
  const TimeMs start = *parse_rfc3339("2026-12-14T06:00:00Z");  // a Monday morning, Central time
  const TimeMs days = 3;
  sim::SimulatorOptions so;
  so.seed = 2026;
  so.start = start;
  so.events_per_second =
      20;  // at the weekday peak: ~0.7 M events a day, realistic per-user volumes
  so.password_expiry_days = {start + kDayMs + 6 * kHourMs};  // a password-expiry morning on day 2
  so.label_events =
      true;  // attack events name their attack, so findings on attack sources are explained
  // Every kind twice: once on day 1, again on day 2 at another hour.
  so.attacks = sim::default_attack_schedule(start + 2 * kHourMs, 90 * kMinuteMs);
  for (auto spec : sim::default_attack_schedule(start + kDayMs + 9 * kHourMs, 80 * kMinuteMs))
    so.attacks.push_back(spec);
  sim::PortalSimulator simulator(so);

  ConfigResult loaded = load_config(std::nullopt);
  REQUIRE_MESSAGE(loaded.config, loaded.errors);
  Config config = std::move(*loaded.config);
  config.engine.time.reference = TimeOptions::Reference::kStream;
  std::set<std::string> configured;
  for (const auto& d : config.detectors) configured.emplace(d.detector->detector());
  Engine engine(config.engine, std::move(config.detectors), nullptr);
  PolicyEngine decide(std::move(config.policies));
  FindingLedger ledger;
  Collect out;
  out.policies = &decide;
  out.operator_release = true;
  Pipeline pipeline(engine, decide, ledger, out, out);
  std::string line;
  const TimeMs end = start + days * kDayMs;
  // Which attack each attacker-controlled entity (source, provider, account) took part in.
  std::map<std::string, std::set<std::string>> attack_entities;
  std::map<std::string, TimeMs> compromised;  // account → when an attack last signed into it
  std::map<std::string, bool> located;  // account → its latest genuine sign-in had coordinates
  std::set<std::string>
      unlocatable;  // impossible_travel attacks whose victim's last sign-in had none
  EventDecoder label_decoder;
  Event attack_event;
  while (true) {
    const TimeMs t = simulator.next(line);
    if (t < 0 || t >= end) break;
    pipeline.process(line, false);
    const auto at = line.find("\"attack_id\":\"");
    if (at == std::string::npos) {
      // Whether each employee's latest genuine sign-in carried coordinates (some home ISPs are
      // not enriched upstream; without a GeoIP database nothing can place them).
      if (line.find("\"action\":\"login\",\"outcome\":\"success\"") != std::string::npos &&
          label_decoder.decode(line, false, attack_event).ok)
        located[lower(std::string(attack_event.user_name))] = attack_event.has_geo_location;
      continue;
    }
    if (!label_decoder.decode(line, false, attack_event).ok) continue;
    const std::string id = line.substr(at + 13, line.find('"', at + 13) - at - 13);
    if (line.find("\"attack\":\"impossible_travel\"") != std::string::npos &&
        !attack_entities.count("travel:" + id)) {
      attack_entities["travel:" + id].insert(id);
      const auto l = located.find(lower(std::string(attack_event.user_name)));
      if (l != located.end() && !l->second) unlocatable.insert(id);
    }
    attack_entities["ip:" + attack_event.source_ip.to_string()].insert(id);
    attack_entities["ip:" + attack_event.source_ip.masked(64).to_string() + "/64"].insert(id);
    if (attack_event.as_number)
      attack_entities["asn:" + std::to_string(attack_event.as_number)].insert(id);
    if (!attack_event.user_name.empty())
      attack_entities["user:" + lower(std::string(attack_event.user_name))].insert(id);
    if (!attack_event.session_id.empty())
      attack_entities["session:" + std::string(attack_event.session_id)].insert(id);
    if (!attack_event.device_id.empty())
      attack_entities["device:" + std::string(attack_event.device_id)].insert(id);
    // An account an attack signed into is compromised: what its owner does next (signing in from
    // home an hour after the attacker did from abroad) is the attack's consequence, for a day.
    if (attack_event.action == Action::kLogin && attack_event.outcome == Outcome::kSuccess &&
        !attack_event.user_name.empty())
      compromised["user:" + lower(std::string(attack_event.user_name))] = attack_event.time;
  }
  REQUIRE(engine.stats().rejected_total() == 0);

  // Score.
  std::map<std::pair<AttackKind, std::string>, KindScore> by_kind;
  std::vector<bool> explained(out.findings.size(), false);
  std::map<std::string, const sim::AttackLabel*> label_by_id;
  for (const auto& label : simulator.attacks()) label_by_id[label.id] = &label;
  for (size_t i = 0; i < out.findings.size(); ++i) {
    // A finding on an entity an attack used, while it ran (and a window after), is the attack's.
    const Finding& f = out.findings[i];
    const auto it =
        attack_entities.find(std::string(to_string(f.entity_type)) + ":" + lower(f.entity));
    if (f.entity_type == EntityType::kGlobal) {
      for (const auto& label : simulator.attacks())
        explained[i] = explained[i] || (moves_failures(label.kind) && f.at >= label.start &&
                                        f.at <= label.end + 30 * kMinuteMs);
    }
    const auto c = compromised.find(std::string(to_string(f.entity_type)) + ":" + lower(f.entity));
    if (c != compromised.end() && f.at >= c->second && f.at <= c->second + kDayMs)
      explained[i] = true;
    if (it == attack_entities.end()) continue;
    for (const auto& id : it->second) {
      auto l = label_by_id.find(id);
      if (l == label_by_id.end())
        l = label_by_id.find(id.substr(0, id.find('-')));  // a multi-entity attack
      REQUIRE_MESSAGE(l != label_by_id.end(), "event labelled with unknown attack " << id);
      if (f.at >= l->second->start - kMinuteMs && f.at <= l->second->end + 30 * kMinuteMs)
        explained[i] = true;
    }
  }
  for (const auto& label : simulator.attacks()) {
    for (size_t i = 0; i < out.findings.size(); ++i) {
      const Finding& f = out.findings[i];
      if (names(f, label) && f.at >= label.start - kMinuteMs && f.at <= label.end + 30 * kMinuteMs)
        explained[i] = true;
    }
    if (unlocatable.count(label.id)) {
      // Distance needs two positions: the victim's previous sign-in came from an address its
      // portal did not enrich. Only a local GeoIP database (issue 4) can place it. Said, not
      // scored.
      std::printf(
          "not scored: %s (impossible_travel on %s): the victim's previous sign-in has no "
          "coordinates\n",
          label.id.c_str(), label.entity.c_str());
      continue;
    }
    for (const std::string& detector : expected_detectors(label.kind)) {
      if (!configured.count(detector)) continue;
      KindScore& ks = by_kind[{label.kind, detector}];
      ++ks.attacks;
      TimeMs first = -1;
      for (const auto& f : out.findings)
        if (f.detector == detector && (names(f, label) || f.entity_type == EntityType::kGlobal) &&
            f.at >= label.start && f.at <= label.end + 30 * kMinuteMs &&
            f.severity >= Severity::kMedium)
          if (first < 0 || f.at < first) first = f.at;
      if (first >= 0 && first - label.start <= max_time_to_detect(label.kind)) {
        ++ks.found;
        ks.ttd.push_back(first - label.start);
      } else {
        FAIL_CHECK("attack " << label.id << " (" << sim::to_string(label.kind) << " on "
                             << label.entity_type << " " << label.entity << ") not found by "
                             << detector << " within "
                             << format_duration(max_time_to_detect(label.kind)));
      }
    }
  }
  // SCENARIO_SHOW=<detector> prints every finding of that detector, for tuning.
  if (const char* show = std::getenv("SCENARIO_SHOW"))
    for (const auto& f : out.findings)
      if (f.detector == show) std::printf("%s\n", f.to_json().c_str());
  std::map<std::string, int> false_alerts;
  int false_total = 0;
  for (size_t i = 0; i < out.findings.size(); ++i) {
    const Finding& f = out.findings[i];
    if (explained[i] || f.severity < Severity::kMedium) continue;
    ++false_alerts[std::string(f.detector) + "/" + std::string(to_string(f.entity_type))];
    ++false_total;
    if (false_total <= 10 || std::getenv("SCENARIO_SHOW_ALL"))
      MESSAGE("false alert: " << f.to_json());
  }

  std::printf("\nscenario: %lld simulated days, %llu events, %zu attacks labelled, %zu findings\n",
              static_cast<long long>(days),
              static_cast<unsigned long long>(engine.stats().received), simulator.attacks().size(),
              out.findings.size());
  std::printf("%-34s %8s %8s %12s %12s\n", "attack kind (detector)", "attacks", "found",
              "median TTD", "max TTD");
  int attacks = 0, found = 0;
  for (auto& [key, ks] : by_kind) {
    std::sort(ks.ttd.begin(), ks.ttd.end());
    const std::string name = std::string(sim::to_string(key.first)) + " (" + key.second + ")";
    std::printf("%-34s %8d %8d %12s %12s\n", name.c_str(), ks.attacks, ks.found,
                ks.ttd.empty() ? "-" : format_duration(median(ks.ttd)).c_str(),
                ks.ttd.empty() ? "-" : format_duration(ks.ttd.back()).c_str());
    attacks += ks.attacks;
    found += ks.found;
  }
  std::printf(
      "recall %d/%d = %.1f%%; false alerts (medium or higher): %d in %lld days = %.2f per day",
      found, attacks, attacks ? 100.0 * found / attacks : 0.0, false_total,
      static_cast<long long>(days), static_cast<double>(false_total) / static_cast<double>(days));
  for (const auto& [d, n] : false_alerts) std::printf(" [%s %d]", d.c_str(), n);
  std::printf("\n\n");
  CHECK(attacks > 0);
  CHECK(false_total == 0);

  // Decisions: the shipped policies, made by the pipeline as the findings came, with the on-call
  // operator's releases (Collect).
  pipeline.advance_to(end);
  const Collect& made = out;
  std::map<std::string, size_t> finding_index;
  for (size_t i = 0; i < out.findings.size(); ++i) finding_index[out.findings[i].id_string()] = i;
  std::map<std::string, int> by_policy;
  for (const auto& d : made.decisions) {
    if (!d.on) continue;
    ++by_policy[d.by];
    // Every finding a decision rests on belongs to an attack.
    for (const auto& id : d.findings)
      CHECK_MESSAGE(explained[finding_index.at(id)], "decision " << d.to_json() << " rests on a false alert " << id);
  }
  std::printf("decisions: %zu (", made.decisions.size());
  for (const auto& [by, n] : by_policy) std::printf(" %s %d", by.c_str(), n);
  std::printf(" )\n");
  // Each credential-stuffing wave puts the portal into maintenance within minutes; each takeover
  // campaign takes its money application down.
  for (const auto& label : simulator.attacks()) {
    if (label.kind == AttackKind::kCredentialStuffing) {
      TimeMs first = -1;
      for (const auto& d : made.decisions)
        if (d.on && d.scope.type == ScopeType::kGlobal && d.at >= label.start && (first < 0 || d.at < first)) first = d.at;
      std::printf("  %s (credential stuffing wave): whole-portal lockdown %s after it began\n", label.id.c_str(),
                  first < 0 ? "never" : format_duration(first - label.start).c_str());
      CHECK_MESSAGE((first >= 0 && first - label.start <= 15 * kMinuteMs), label.id << ": no lockdown within 15m");
    }
  }
  std::map<std::size_t, TimeMs> campaign_start;
  for (const auto& label : simulator.attacks())
    if (label.kind == AttackKind::kAccountTakeover &&
        (!campaign_start.count(label.spec_index) || label.start < campaign_start[label.spec_index]))
      campaign_start[label.spec_index] = label.start;
  for (const auto& [spec, began] : campaign_start) {
    TimeMs first = -1;
    std::string app;
    for (const auto& d : made.decisions)
      if (d.on && d.scope.type == ScopeType::kApp && d.at >= began && d.at <= began + 2 * kHourMs &&
          (first < 0 || d.at < first)) {
        first = d.at;
        app = d.scope.value;
      }
    std::printf("  takeover campaign %zu: %s locked down %s after it began\n", spec, app.c_str(),
                first < 0 ? "never" : format_duration(first - began).c_str());
    CHECK_MESSAGE((first >= 0 && first - began <= 30 * kMinuteMs), "takeover campaign " << spec << ": no app lockdown");
  }
  std::printf("\n");
}

TEST_CASE("scenario: three benign simulated days make no decision") {
  const TimeMs start = *parse_rfc3339("2026-12-14T06:00:00Z");
  sim::SimulatorOptions so;
  so.seed = 7;
  so.start = start;
  so.events_per_second = 20;
  so.password_expiry_days = {start + kDayMs + 6 * kHourMs};
  sim::PortalSimulator simulator(so);
  ConfigResult loaded = load_config(std::nullopt);
  REQUIRE_MESSAGE(loaded.config, loaded.errors);
  Config config = std::move(*loaded.config);
  config.engine.time.reference = TimeOptions::Reference::kStream;
  Engine engine(config.engine, std::move(config.detectors), nullptr);
  PolicyEngine decide(std::move(config.policies));
  FindingLedger ledger;
  Collect out;
  Pipeline pipeline(engine, decide, ledger, out, out);
  std::string line;
  while (true) {
    const TimeMs t = simulator.next(line);
    if (t < 0 || t >= start + 3 * kDayMs) break;
    pipeline.process(line, false);
  }
  std::printf("benign: %llu events, %zu findings, %zu decisions\n",
              static_cast<unsigned long long>(engine.stats().received), out.findings.size(), out.decisions.size());
  for (const auto& d : out.decisions) MESSAGE("decision on benign traffic: " << d.to_json());
  CHECK(out.decisions.empty());
}

}  // namespace portalwatch
