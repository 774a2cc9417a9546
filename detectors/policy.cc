#include "detectors/policy.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <set>

#include "detectors/ip.h"

namespace portalwatch {

namespace {

// An evidence value is serialised JSON: a string loses its quotes (values compared here are
// plain words: app names, sources' classes), a number stays as it is.
std::string_view unquote(std::string_view json) {
  if (json.size() >= 2 && json.front() == '"' && json.back() == '"') return json.substr(1, json.size() - 2);
  return json;
}

std::optional<double> number(std::string_view json) {
  if (json.empty() || json.front() == '"') return std::nullopt;
  const std::string text(json);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return std::nullopt;
  return v;
}

template <typename T>
bool contains(const std::vector<T>& list, const T& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

std::string plural_entity(EntityType t) {
  switch (t) {
    case EntityType::kIp: return "addresses";
    case EntityType::kUser: return "accounts";
    case EntityType::kSession: return "sessions";
    case EntityType::kDevice: return "devices";
    case EntityType::kAsn: return "networks";
    case EntityType::kApp: return "applications";
    case EntityType::kGlobal: break;
  }
  return "entities";
}

}  // namespace

bool EvidenceCondition::matches(const Finding& f) const {
  const std::string* v = f.evidence.get(key);
  if (!v) return false;
  if (min || max) {
    const auto n = number(*v);
    if (!n || (min && *n < *min) || (max && *n > *max)) return false;
  }
  if (!any_of.empty() && !contains(any_of, std::string(unquote(*v)))) return false;
  return true;
}

// ---- configuration -----------------------------------------------------------------------------

std::vector<PolicyConfig> read_policies(const ConfigNode& list, const std::vector<std::string>& known_detectors) {
  std::vector<PolicyConfig> out;
  std::set<std::string, std::less<>> names;
  for (const ConfigNode& item : list.elements()) {
    MapReader m(item);
    if (!item.is_map()) {
      item.error("expected a policy (a mapping with name, when, scope...)");
      continue;
    }
    PolicyConfig p;
    p.name = m.get_string("name", "");
    if (p.name.empty()) item.error("missing key \"name\" (used in decisions as policy:<name>)");
    else if (!names.insert(p.name).second) m.child("name").error("policy name \"" + p.name + "\" is used twice");
    p.dry_run = m.get_bool("dry_run", false);
    {
      const ConfigNode when_node = m.child("when");
      if (!when_node.defined()) item.error("missing key \"when\" (which findings count)");
      MapReader w(when_node);
      const ConfigNode det = w.child("detectors");
      p.detectors = w.get_string_list("detectors", {});
      if (det.is_sequence())
        for (const ConfigNode& d : det.elements())
          if (auto name = d.as_string(); name && !contains(known_detectors, *name))
            d.error("\"" + *name + "\" is not a configured detector (type or name)");
      const std::string sev = w.get_enum("min_severity", "high", {"info", "low", "medium", "high", "critical"});
      p.min_severity = parse_severity(sev).value_or(Severity::kHigh);
      const ConfigNode et = w.child("entity_types");
      for (const auto& t : w.get_string_list("entity_types", {})) {
        if (auto e = parse_entity_type(t)) p.entity_types.push_back(*e);
        else et.error("unknown entity type \"" + t + "\" (ip, user, session, device, asn, app, global)");
      }
      p.apps = w.get_string_list("apps", {});
      const ConfigNode ev = w.child("evidence");
      MapReader evm(ev);
      evm.accept_all_keys();
      if (ev.is_map()) {
        for (const auto& kv : ev.yaml()) {
          EvidenceCondition c;
          c.key = kv.first.Scalar();
          const ConfigNode cond(kv.second, ev.path() + "." + c.key, ev.diags());
          MapReader cm(cond);
          if (cm.has("min")) c.min = cm.get_double("min", 0, -1e18, 1e18);
          if (cm.has("max")) c.max = cm.get_double("max", 0, -1e18, 1e18);
          c.any_of = cm.get_string_list("any_of", {});
          if (!c.min && !c.max && c.any_of.empty()) cond.error("expected min, max or any_of");
          p.evidence.push_back(std::move(c));
        }
      } else if (ev.defined()) {
        ev.error("expected a mapping of evidence keys to conditions, e.g. {successes: {min: 1}}");
      }
    }
    p.count = static_cast<int>(m.get_int("count", p.count, 1, 100'000));
    p.distinct_entities = m.get_bool("distinct_entities", p.distinct_entities);
    p.within_ms = m.get_int("within_seconds", p.within_ms / kSecondMs, 1, 7 * 86400) * kSecondMs;
    const ConfigNode scope_node = m.child("scope");
    p.scope = parse_scope_type(m.get_enum("scope", "global", {"global", "app", "user", "ip"})).value_or(ScopeType::kGlobal);
    if (!scope_node.defined()) item.error("missing key \"scope\" (global, app, user or ip)");
    const ConfigNode action_node = m.child("action");
    p.action = parse_decision_action(m.get_enum("action", "lockdown", {"lockdown", "reauthenticate"}))
                   .value_or(DecisionAction::kLockdown);
    if (p.action == DecisionAction::kReauthenticate && p.scope != ScopeType::kUser)
      action_node.error("reauthenticate applies to user scope only");
    const ConfigNode durations = m.child("durations_seconds");
    for (const ConfigNode& d : durations.elements())
      if (auto s = d.as_int(60, 365LL * 86400)) p.durations.push_back(*s * kSecondMs);
    p.repeat_memory_ms = m.get_int("repeat_memory_hours", p.repeat_memory_ms / kHourMs, 1, 24 * 365) * kHourMs;
    p.auto_release_quiet_ms = m.get_int("auto_release_quiet_seconds", 0, 0, 30 * 86400) * kSecondMs;
    if (p.auto_release_quiet_ms > 0 && !p.durations.empty())
      m.child("auto_release_quiet_seconds").error("give either durations_seconds or auto_release_quiet_seconds, not both");
    p.cooldown_ms = m.get_int("cooldown_seconds", p.cooldown_ms / kSecondMs, 0, 30 * 86400) * kSecondMs;
    p.max_scopes = static_cast<std::size_t>(m.get_int("max_scopes", static_cast<std::int64_t>(p.max_scopes), 16, 10'000'000));
    out.push_back(std::move(p));
  }
  return out;
}

// ---- stored form -------------------------------------------------------------------------------

namespace {

constexpr std::uint8_t kLockdownFormat = 1;

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_str(std::string& out, std::string_view s) {
  put_u64(out, s.size());
  out.append(s);
}

struct Reader {
  std::string_view in;
  bool ok = true;
  std::uint64_t u64() {
    if (in.size() < 8) return ok = false, 0;
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(in[i])) << (8 * i);
    in.remove_prefix(8);
    return v;
  }
  std::uint8_t u8() {
    if (in.empty()) return ok = false, 0;
    const auto v = static_cast<std::uint8_t>(in[0]);
    in.remove_prefix(1);
    return v;
  }
  std::string str() {
    const std::uint64_t n = u64();
    if (!ok || n > in.size()) return ok = false, std::string();
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
};

}  // namespace

std::string Lockdown::encode() const {
  std::string out;
  out.push_back(static_cast<char>(kLockdownFormat));
  out.push_back(static_cast<char>(decision.action));
  out.push_back(static_cast<char>(decision.on));
  out.push_back(static_cast<char>(decision.scope.type));
  out.push_back(static_cast<char>(decision.dry_run));
  out.push_back(static_cast<char>(hooks_done));
  put_u64(out, decision.seq);
  put_u64(out, static_cast<std::uint64_t>(decision.at));
  put_u64(out, static_cast<std::uint64_t>(decision.expires));
  put_u64(out, static_cast<std::uint64_t>(last_evidence));
  put_u64(out, repeat);
  put_str(out, decision.scope.value);
  put_str(out, decision.by);
  put_str(out, decision.reason);
  put_str(out, policy);
  put_u64(out, decision.findings.size());
  for (const auto& f : decision.findings) put_str(out, f);
  return out;
}

std::optional<Lockdown> Lockdown::decode(std::string_view bytes) {
  Reader r{bytes};
  if (r.u8() != kLockdownFormat) return std::nullopt;
  Lockdown l;
  const std::uint8_t action = r.u8(), on = r.u8(), scope = r.u8(), dry = r.u8(), done = r.u8();
  if (!r.ok || action > 1 || on > 1 || scope >= kScopeTypeCount || dry > 1 || done > 1) return std::nullopt;
  l.decision.action = static_cast<DecisionAction>(action);
  l.decision.on = on;
  l.decision.scope.type = static_cast<ScopeType>(scope);
  l.decision.dry_run = dry;
  l.hooks_done = done;
  l.decision.seq = r.u64();
  l.decision.at = static_cast<TimeMs>(r.u64());
  l.decision.expires = static_cast<TimeMs>(r.u64());
  l.last_evidence = static_cast<TimeMs>(r.u64());
  l.repeat = static_cast<std::uint32_t>(r.u64());
  l.decision.scope.value = r.str();
  l.decision.by = r.str();
  l.decision.reason = r.str();
  l.policy = r.str();
  const std::uint64_t n = r.u64();
  if (!r.ok || n > 1000) return std::nullopt;
  for (std::uint64_t i = 0; i < n && r.ok; ++i) l.decision.findings.push_back(r.str());
  if (!r.ok || !r.in.empty()) return std::nullopt;
  return l;
}

// ---- engine ------------------------------------------------------------------------------------

PolicyEngine::PolicyEngine(std::vector<PolicyConfig> policies, bool dry_run)
    : policies_(std::move(policies)), state_(policies_.size()), dry_run_(dry_run) {}

std::string PolicyEngine::key_of(DecisionAction action, const Scope& scope) {
  return std::string(to_string(action)) + " " + scope.key();
}

bool PolicyEngine::matches(const PolicyConfig& p, const Finding& f) const {
  if (f.severity < p.min_severity) return false;
  if (!p.detectors.empty() && !contains(p.detectors, std::string(f.detector)) && !contains(p.detectors, f.name))
    return false;
  if (!p.entity_types.empty() && !contains(p.entity_types, f.entity_type)) return false;
  if (!p.apps.empty()) {
    const std::string* app = f.evidence.get("app");
    if (!app || !contains(p.apps, std::string(unquote(*app)))) return false;
  }
  for (const auto& c : p.evidence)
    if (!c.matches(f)) return false;
  return true;
}

std::optional<Scope> PolicyEngine::scope_of(const PolicyConfig& p, const Finding& f) const {
  switch (p.scope) {
    case ScopeType::kGlobal:
      return Scope{};
    case ScopeType::kApp:
      if (f.entity_type == EntityType::kApp) return Scope::parse("app:" + f.entity);
      if (const std::string* app = f.evidence.get("app")) return Scope::parse("app:" + std::string(unquote(*app)));
      return std::nullopt;
    case ScopeType::kUser:
      if (f.entity_type == EntityType::kUser) return Scope::parse("user:" + f.entity);
      return std::nullopt;
    case ScopeType::kIp:
      if (f.entity_type == EntityType::kIp) return Scope::parse("ip:" + f.entity);  // not a /64 aggregate
      return std::nullopt;
  }
  return std::nullopt;
}

PolicyEngine::ScopeState& PolicyEngine::scope_state(std::size_t pi, const std::string& key) {
  auto& scopes = state_[pi].scopes;
  auto it = scopes.find(key);
  if (it != scopes.end()) return it->second;
  if (scopes.size() >= policies_[pi].max_scopes) {
    // Full (a flood of distinct sources): forget the eighth whose latest finding is oldest.
    // Scopes with a lockdown in force keep theirs in active_.
    std::vector<TimeMs> latest;
    latest.reserve(scopes.size());
    for (const auto& [k, s] : scopes) latest.push_back(s.hits.empty() ? s.last_lockdown : s.hits.back().at);
    const std::size_t n = std::max<std::size_t>(1, latest.size() / 8);
    std::nth_element(latest.begin(), latest.begin() + static_cast<std::ptrdiff_t>(n - 1), latest.end());
    const TimeMs cutoff = latest[n - 1];
    for (auto i = scopes.begin(); i != scopes.end();) {
      const TimeMs t = i->second.hits.empty() ? i->second.last_lockdown : i->second.hits.back().at;
      if (t <= cutoff) {
        i = scopes.erase(i);
        ++stats_.scopes_evicted;
      } else {
        ++i;
      }
    }
  }
  return scopes[key];
}

void PolicyEngine::allow(Allowed a) {
  disallow(a.network);
  allowlist_.push_back(std::move(a));
}

bool PolicyEngine::disallow(const IpNetwork& network) {
  const auto it = std::find_if(allowlist_.begin(), allowlist_.end(), [&](const Allowed& a) {
    return a.network.to_string() == network.to_string();
  });
  if (it == allowlist_.end()) return false;
  allowlist_.erase(it);
  return true;
}

void PolicyEngine::silence(Silence s) {
  std::erase_if(silences_, [&](const Silence& x) { return x.detector == s.detector; });
  if (s.until > 0) silences_.push_back(std::move(s));
}

void PolicyEngine::reconfigure(std::vector<PolicyConfig> policies, bool dry_run) {
  policies_ = std::move(policies);
  state_.assign(policies_.size(), PolicyState{});
  dry_run_ = dry_run;
  reschedule_all();  // quiet periods may have changed, even shortened
}

std::size_t PolicyEngine::policy_index(const std::string& name) const {
  std::size_t pi = 0;
  while (pi < policies_.size() && policies_[pi].name != name) ++pi;
  return pi;
}

TimeMs PolicyEngine::end_of(const Lockdown& l) const {
  TimeMs end = l.decision.expires > 0 ? l.decision.expires : std::numeric_limits<TimeMs>::max();
  const std::size_t pi = policy_index(l.policy);
  if (pi < policies_.size() && policies_[pi].auto_release_quiet_ms > 0)
    end = std::min(end, l.last_evidence + policies_[pi].auto_release_quiet_ms);
  return end;
}

void PolicyEngine::schedule_end(const std::string& key, const Lockdown& l) {
  const TimeMs end = end_of(l);
  if (end != std::numeric_limits<TimeMs>::max()) ends_.emplace(end, key);
}

void PolicyEngine::reschedule_all() {
  ends_ = {};
  for (const auto& [key, l] : active_) schedule_end(key, l);
}

void PolicyEngine::on_finding(const Finding& f, DecisionSink& out) {
  if (f.dry_run) return;  // a dry-run detector's findings are recorded, never acted on
  for (const Silence& s : silences_)
    if ((s.detector == f.detector || s.detector == f.name) && f.at < s.until) return;
  for (std::size_t pi = 0; pi < policies_.size(); ++pi) {
    const PolicyConfig& p = policies_[pi];
    if (!matches(p, f)) continue;
    ++stats_.findings_matched;
    const auto scope = scope_of(p, f);
    if (!scope) {
      ++stats_.unscoped;
      continue;
    }
    if (scope->type == ScopeType::kIp) {
      const auto ip = IpAddress::parse(scope->value);
      bool allowed = false;
      for (const Allowed& a : allowlist_) allowed |= ip && a.network.contains(*ip);
      if (allowed) continue;
    }
    const std::string key = scope->key();
    ScopeState& st = scope_state(pi, key);
    if (f.at <= st.released_at) continue;  // the operator released it after this evidence
    auto active = active_.find(key_of(p.action, *scope));
    if (active != active_.end()) {
      // Already on: the finding only keeps it from being quiet.
      active->second.last_evidence = std::max(active->second.last_evidence, f.at);
      continue;
    }
    if (f.at < st.cooldown_until) continue;
    st.hits.push_back({f.at, f.entity, f.id_string()});
    while (!st.hits.empty() && st.hits.front().at < f.at - p.within_ms) st.hits.pop_front();
    std::size_t count = st.hits.size();
    if (p.distinct_entities) {
      std::set<std::string_view> entities;
      for (const Hit& h : st.hits) entities.insert(h.entity);
      count = entities.size();
    }
    if (count < static_cast<std::size_t>(p.count)) continue;

    std::string reason;
    if (p.count == 1) {
      reason = std::string(f.detector) + " (" + std::string(to_string(f.severity)) + "): " + f.summary;
    } else {
      reason = std::string(f.detector) + " x" + std::to_string(count);
      if (p.distinct_entities) reason += " (distinct " + plural_entity(f.entity_type) + ")";
      if (scope->type == ScopeType::kApp) reason += " on " + scope->value;
      reason += " in " + format_duration(p.within_ms);
    }
    Decision d;
    d.seq = next_id_++;
    d.action = p.action;
    d.on = true;
    d.scope = *scope;
    d.at = f.at;
    d.by = "policy:" + p.name;
    d.reason = std::move(reason);
    const std::size_t first = st.hits.size() > 10 ? st.hits.size() - 10 : 0;
    for (std::size_t i = first; i < st.hits.size(); ++i) d.findings.push_back(st.hits[i].finding);
    st.lockdowns = st.last_lockdown > 0 && f.at - st.last_lockdown <= p.repeat_memory_ms ? st.lockdowns + 1 : 0;
    st.last_lockdown = f.at;
    if (!p.durations.empty()) d.expires = f.at + p.durations[std::min<std::size_t>(st.lockdowns, p.durations.size() - 1)];
    d.dry_run = p.dry_run || dry_run_;
    st.hits.clear();
    const std::string active_key = key_of(p.action, *scope);
    schedule_end(active_key, active_[active_key] = Lockdown{d, p.name, f.at, st.lockdowns});
    ++stats_.decisions;
    out.decide(std::move(d));
  }
}

void PolicyEngine::emit_off(Lockdown& l, TimeMs at, std::string by, std::string reason, DecisionSink& out) {
  Decision d;
  d.seq = next_id_++;
  d.action = l.decision.action;
  d.on = false;
  d.scope = l.decision.scope;
  d.at = at;
  d.by = std::move(by);
  d.reason = std::move(reason);
  d.findings = {l.decision.id_string()};
  d.dry_run = l.decision.dry_run;
  ++stats_.decisions;
  out.decide(std::move(d));
}

void PolicyEngine::tick(TimeMs now, DecisionSink& out) {
  if (ends_.empty() || ends_.top().first > now) return;
  // The lockdowns that may end now, looked at in key order (the order of active_, in which
  // their decisions have always come).
  std::vector<std::string> due;
  while (!ends_.empty() && ends_.top().first <= now) {
    due.push_back(ends_.top().second);
    ends_.pop();
  }
  std::sort(due.begin(), due.end());
  due.erase(std::unique(due.begin(), due.end()), due.end());
  for (const std::string& key : due) {
    const auto it = active_.find(key);
    if (it == active_.end()) continue;  // released meanwhile
    Lockdown& l = it->second;
    const std::size_t pi = policy_index(l.policy);
    const PolicyConfig* p = pi < policies_.size() ? &policies_[pi] : nullptr;
    bool end = false;
    std::string reason;
    // The "off" is stamped with the moment the lockdown ended (its expiry, or the end of its
    // policy's quiet time), not the moment time was seen past it: the same decision, with the same
    // id, whether time got there by an event or by the wall clock while the input was idle, and on
    // every member of a cluster.
    TimeMs ended = now;
    if (l.decision.expires > 0 && now >= l.decision.expires) {
      end = true;
      ended = l.decision.expires;
      reason = "expired after " + format_duration(l.decision.expires - l.decision.at);
    } else if (p && p->auto_release_quiet_ms > 0 && now - l.last_evidence >= p->auto_release_quiet_ms) {
      end = true;
      ended = l.last_evidence + p->auto_release_quiet_ms;
      reason = "no matching finding for " + format_duration(p->auto_release_quiet_ms);
    }
    if (!end) {
      schedule_end(key, l);  // evidence came meanwhile: its end moved
      continue;
    }
    if (p) scope_state(pi, l.decision.scope.key()).cooldown_until = ended + p->cooldown_ms;
    emit_off(l, ended, l.decision.by, std::move(reason), out);
    active_.erase(it);
  }
}

PolicyEngine::ManualResult PolicyEngine::manual(const Scope& scope, DecisionAction action, bool on,
                                                const std::string& who, const std::string& reason, TimeMs ttl,
                                                TimeMs now) {
  ManualResult r;
  if (action == DecisionAction::kReauthenticate && scope.type != ScopeType::kUser) {
    r.error = "reauthenticate applies to user scope only";
    return r;
  }
  const std::string key = key_of(action, scope);
  auto it = active_.find(key);
  if (on) {
    if (it != active_.end()) {
      r.decision = it->second.decision;
      return r;
    }
    Decision d;
    d.seq = next_id_++;
    d.action = action;
    d.scope = scope;
    d.at = now;
    d.by = "operator:" + who;
    d.reason = reason;
    if (ttl > 0) d.expires = now + ttl;
    schedule_end(key, active_[key] = Lockdown{d, "", now, 0});
    ++stats_.decisions;
    r.decision = std::move(d);
    r.changed = true;
    return r;
  }
  if (it == active_.end()) {
    r.error = "no " + std::string(to_string(action)) + " is on for " + scope.key();
    return r;
  }
  struct Capture final : DecisionSink {
    std::optional<Decision> d;
    void decide(Decision&& x) override { d = std::move(x); }
  } capture;
  emit_off(it->second, now, "operator:" + who, reason, capture);
  // scope may be the lockdown's own (a caller releasing what active() lists): copied before the
  // erase frees it.
  const Scope released = scope;
  active_.erase(it);
  // The release wins over every policy until it sees findings newer than now.
  for (std::size_t pi = 0; pi < policies_.size(); ++pi) {
    if (policies_[pi].scope != released.type) continue;
    ScopeState& st = scope_state(pi, released.key());
    st.released_at = now;
    st.hits.clear();
  }
  r.decision = std::move(capture.d);
  r.changed = true;
  return r;
}

const Lockdown* PolicyEngine::mark_hooks_done(const std::string& key, std::uint64_t decision_id, bool done) {
  auto it = active_.find(key);
  if (it == active_.end() || it->second.decision.seq != decision_id) return nullptr;
  it->second.hooks_done = done;
  return &it->second;
}

void PolicyEngine::restore(Lockdown lockdown) {
  const std::string key = key_of(lockdown.decision.action, lockdown.decision.scope);
  schedule_end(key, active_[key] = std::move(lockdown));
}

}  // namespace portalwatch
