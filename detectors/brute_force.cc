#include "detectors/brute_force.h"

namespace portalwatch {

BruteForceConfig read_brute_force_config(MapReader& cfg) {
  BruteForceConfig c;
  c.window_ms = cfg.get_int("window_seconds", c.window_ms / kSecondMs, 10, 86400) * kSecondMs;
  c.severity.read(cfg, "severity");
  c.success_after_failures =
      cfg.get_int("success_after_failures", c.success_after_failures, 1, 1'000'000);
  c.max_accounts = static_cast<std::size_t>(
      cfg.get_int("max_accounts", static_cast<std::int64_t>(c.max_accounts), 16, 100'000'000));
  return c;
}

std::unique_ptr<Detector> make_brute_force(MapReader& cfg, const DetectorCommon& common) {
  return std::make_unique<BruteForceDetector>(read_brute_force_config(cfg), common.name);
}

BruteForceDetector::BruteForceDetector(BruteForceConfig config, std::string name)
    : config_(std::move(config)),
      name_(std::move(name)),
      span_(std::max<TimeMs>(1, config_.window_ms / kBuckets)),
      accounts_("accounts", config_.max_accounts, config_.window_ms) {}

void BruteForceDetector::on_event(const Event& ev, FindingSink& out) {
  if (ev.action != Action::kLogin || ev.user_name.empty()) return;
  // An unknown account is not an account being brute-forced (that is credential stuffing).
  if (ev.reason == Reason::kUnknownUser) return;
  const std::string_view user = ev.folded_user(user_buf_);
  if (ev.outcome == Outcome::kFailure) {
    Account& a = accounts_.upsert(user, ev.time);
    a.failures.add(ev.time, span_);
    a.sources.note(ev.source_ip);
    maybe_fire(user, a, ev, out);
  } else if (ev.outcome == Outcome::kSuccess) {
    // Successes only matter for accounts already under attack; do not create state for them.
    Account* a = accounts_.find(user);
    if (!a) return;
    a->successes.add(ev.time, span_);
    maybe_fire(user, *a, ev, out);
  }
}

void BruteForceDetector::maybe_fire(std::string_view user, Account& a, const Event& ev,
                                    FindingSink& out) {
  const std::int64_t failures = a.failures.total(ev.time, span_);
  const std::int64_t successes = a.successes.total(ev.time, span_);
  auto severity = config_.severity.at(failures);
  if (!severity) {
    // Below every step: the episode is over; a later attack is a new one.
    if (failures == 0) {
      a.episode.reset();
      a.sources.clear();
    }
    return;
  }
  const bool compromised = successes > 0 && failures >= config_.success_after_failures;
  if (compromised && *severity < Severity::kHigh) severity = Severity::kHigh;
  if (!a.episode.report(*severity, ev.time, config_.window_ms)) return;

  Finding f = make_finding(detector(), name_, *severity, EntityType::kUser, std::string(user),
                           ev.time, config_.window_ms);
  f.summary = f.entity + " had " + std::to_string(failures) + " failed passwords in " +
              format_duration(config_.window_ms) + " from " + std::to_string(a.sources.count) +
              (a.sources.count == 1 ? " source" : " sources");
  if (compromised) f.summary += ", then a successful login";
  f.evidence.add("failures", failures);
  f.evidence.add("successes", successes);
  f.evidence.add("distinct_sources", static_cast<std::int64_t>(a.sources.count));
  f.evidence.add("sample_sources", a.sources.texts());
  f.evidence.add("window_seconds", config_.window_ms / kSecondMs);
  f.evidence.add("threshold", config_.severity.lowest_step());
  out.emit(std::move(f));
}

void BruteForceDetector::on_time(TimeMs watermark, FindingSink&) {
  // Sweeping once per window keeps idle accounts from holding memory without a per-event cost.
  accounts_.maybe_expire(watermark);
}

std::vector<TableStats> BruteForceDetector::tables() const {
  return {accounts_.stats(KeyedTable<Account>::kBytesPerKey)};
}

// A reload keeps the counted state unless the new settings change its layout (see Detector).
bool BruteForceDetector::adopt_settings(Detector& next) {
  auto* n = dynamic_cast<BruteForceDetector*>(&next);
  if (!n || !(config_.window_ms == n->config_.window_ms)) return false;
  config_ = n->config_;
  accounts_.set_capacity(config_.max_accounts);
  return true;
}

}  // namespace portalwatch
