#include "detectors/mfa_fatigue.h"

namespace portalwatch {

MfaFatigueConfig read_mfa_fatigue_config(MapReader& cfg) {
  MfaFatigueConfig c;
  c.window_ms = cfg.get_int("window_seconds", c.window_ms / kSecondMs, 60, 86400) * kSecondMs;
  c.severity.read(cfg, "severity");
  c.approval_after_failures =
      cfg.get_int("approval_after_failures", c.approval_after_failures, 1, 1'000'000);
  c.max_accounts = static_cast<std::size_t>(
      cfg.get_int("max_accounts", static_cast<std::int64_t>(c.max_accounts), 16, 100'000'000));
  return c;
}

std::unique_ptr<Detector> make_mfa_fatigue(MapReader& cfg, const DetectorCommon& common) {
  return std::make_unique<MfaFatigueDetector>(read_mfa_fatigue_config(cfg), common.name);
}

MfaFatigueDetector::MfaFatigueDetector(MfaFatigueConfig config, std::string name)
    : config_(std::move(config)),
      name_(std::move(name)),
      span_(std::max<TimeMs>(1, config_.window_ms / kBuckets)),
      accounts_("accounts", config_.max_accounts, config_.window_ms) {}

void MfaFatigueDetector::on_event(const Event& ev, FindingSink& out) {
  if (ev.action != Action::kMfa || ev.user_name.empty()) return;
  const std::string_view user = ev.folded_user(user_buf_);
  const bool denied = ev.reason == Reason::kMfaDenied;
  const bool timed_out = ev.reason == Reason::kMfaTimeout;
  if (ev.outcome == Outcome::kFailure && (denied || timed_out)) {
    Account& a = accounts_.upsert(user, ev.time);
    (denied ? a.denied : a.timed_out).add(ev.time, span_);
    a.sources.note(ev.source_ip);
    const std::int64_t d = a.denied.total(ev.time, span_), t = a.timed_out.total(ev.time, span_);
    if (const auto severity = config_.severity.at(d + t)) {
      if (a.episode.report(*severity, ev.time, config_.window_ms))
        fire(user, a, ev, *severity, false, d, t, out);
    }
    return;
  }
  if (ev.outcome != Outcome::kSuccess) return;
  // Approvals matter only for accounts with a burst in progress; they never create state.
  Account* a = accounts_.find(user);
  if (!a) return;
  const std::int64_t d = a->denied.total(ev.time, span_), t = a->timed_out.total(ev.time, span_);
  if (d + t < config_.approval_after_failures) return;
  if (a->episode.report(Severity::kCritical, ev.time, config_.window_ms))
    fire(user, *a, ev, Severity::kCritical, true, d, t, out);
}

void MfaFatigueDetector::fire(std::string_view user, Account& a, const Event& ev, Severity severity,
                              bool approved, std::int64_t denied, std::int64_t timed_out,
                              FindingSink& out) {
  Finding f = make_finding(detector(), name_, severity, EntityType::kUser, std::string(user),
                           ev.time, config_.window_ms);
  f.summary = f.entity + " had " + std::to_string(denied + timed_out) +
              " second-factor prompts denied or unanswered in " +
              format_duration(config_.window_ms);
  if (approved) f.summary += ", then approved one from " + ev.source_ip.to_string();
  f.evidence.add("denied", denied);
  f.evidence.add("timed_out", timed_out);
  f.evidence.add("approved", approved);
  if (approved) f.evidence.add("approved_from", ev.source_ip.to_string());
  f.evidence.add("distinct_sources", static_cast<std::int64_t>(a.sources.count));
  f.evidence.add("sample_sources", a.sources.texts());
  f.evidence.add("window_seconds", config_.window_ms / kSecondMs);
  f.evidence.add("threshold", config_.severity.lowest_step());
  out.emit(std::move(f));
}

void MfaFatigueDetector::on_time(TimeMs watermark, FindingSink&) {
  accounts_.maybe_expire(watermark);
}

std::vector<TableStats> MfaFatigueDetector::tables() const {
  return {accounts_.stats(KeyedTable<Account>::kBytesPerKey)};
}

// A reload keeps the counted state unless the new settings change its layout (see Detector).
bool MfaFatigueDetector::adopt_settings(Detector& next) {
  auto* n = dynamic_cast<MfaFatigueDetector*>(&next);
  if (!n || !(config_.window_ms == n->config_.window_ms)) return false;
  config_ = n->config_;
  accounts_.set_capacity(config_.max_accounts);
  return true;
}

}  // namespace portalwatch
