#include "detectors/password_spray.h"

#include <cmath>
#include <cstdio>

namespace portalwatch {

PasswordSprayConfig read_password_spray_config(MapReader& cfg) {
  PasswordSprayConfig c;
  c.window_ms = cfg.get_int("window_seconds", c.window_ms / kSecondMs, 60, 86400) * kSecondMs;
  c.severity.read(cfg, "severity");
  c.max_attempts_per_account = cfg.get_double("max_attempts_per_account", c.max_attempts_per_account, 1, 100);
  c.max_success_share = cfg.get_double("max_success_share", c.max_success_share, 0, 1);
  c.by_asn = cfg.get_bool("by_asn", c.by_asn);
  c.asn_severity.read(cfg, "asn_severity");
  c.asn_max_success_share = cfg.get_double("asn_max_success_share", c.asn_max_success_share, 0, 1);
  c.max_sources = static_cast<std::size_t>(cfg.get_int("max_sources", static_cast<std::int64_t>(c.max_sources), 16, 100'000'000));
  c.max_asns = static_cast<std::size_t>(cfg.get_int("max_asns", static_cast<std::int64_t>(c.max_asns), 16, 10'000'000));
  return c;
}

std::unique_ptr<Detector> make_password_spray(MapReader& cfg, const DetectorCommon& common) {
  return std::make_unique<PasswordSprayDetector>(read_password_spray_config(cfg), common.name);
}

PasswordSprayDetector::PasswordSprayDetector(PasswordSprayConfig config, std::string name)
    : config_(std::move(config)),
      name_(std::move(name)),
      half_ms_(std::max<TimeMs>(1, config_.window_ms / 2)),
      sources_("sources", config_.max_sources, config_.window_ms),
      asns_("asns", config_.max_asns, config_.window_ms) {}

void PasswordSprayDetector::record(Source& s, const Event& ev, std::string_view user) const {
  const std::int64_t half = ev.time / half_ms_;
  if (half > s.half) {
    // Slide by half a window: the older half is forgotten; a jump of a whole window clears both.
    for (std::int64_t h = std::max(s.half + 1, half - 1); h <= half; ++h) {
      const auto i = static_cast<size_t>(h % 2);
      s.accounts[i].clear();
      s.failures[i] = s.unknown_user[i] = s.successes[i] = 0;
    }
    if (half - s.half >= 2 && s.episode.active()) {
      // A quiet window ends the episode.
      s.episode.reset();
      s.first_account.clear();
    }
    s.half = half;
  } else if (half < s.half - 1) {
    return;  // older than the window
  }
  const auto i = static_cast<size_t>(half % 2);
  if (ev.outcome == Outcome::kSuccess) {
    ++s.successes[i];
    return;
  }
  ++s.failures[i];
  if (ev.reason == Reason::kUnknownUser) ++s.unknown_user[i];
  if (!user.empty()) {
    s.accounts[i].add(user);
    if (s.first_account.empty()) s.first_account.assign(user);
  }
}

void PasswordSprayDetector::on_event(const Event& ev, FindingSink& out) {
  if (ev.action != Action::kLogin || ev.outcome == Outcome::kUnknown) return;
  const std::string_view user = ev.folded_user(user_buf_);
  const bool failure = ev.outcome == Outcome::kFailure;

  // Successes only matter for sources already failing; they never create state.
  Source* s = failure ? &sources_.upsert(ev.source_key, ev.time) : sources_.find(ev.source_key);
  if (s) {
    record(*s, ev, user);
    if (failure)
      maybe_fire(*s, EntityType::kIp, config_.severity, ev.source_threshold_multiplier,
                 config_.max_success_share, ev, user, out);
  }
  if (config_.by_asn && ev.as_number != 0) {
    Source* a = failure ? &asns_.upsert(ev.as_number, ev.time) : asns_.find(ev.as_number);
    if (a) {
      record(*a, ev, user);
      if (failure)
        maybe_fire(*a, EntityType::kAsn, config_.asn_severity, 1.0, config_.asn_max_success_share,
                   ev, user, out);
    }
  }
}

void PasswordSprayDetector::maybe_fire(Source& s, EntityType type, const SeverityLadder& ladder,
                                       double multiplier, double max_success_share,
                                       const Event& ev, std::string_view user, FindingSink& out) {
  // Cheap pre-check before merging the sketches: enough failures to possibly reach the threshold.
  const std::int64_t failures = s.failures[0] + s.failures[1];
  const auto lowest = static_cast<std::int64_t>(std::ceil(static_cast<double>(ladder.lowest_step()) * multiplier));
  if (failures < lowest) return;
  DistinctCounter<7> merged = s.accounts[0];
  merged.merge(s.accounts[1]);
  const std::int64_t distinct = merged.count();
  const auto severity = ladder.at(static_cast<std::int64_t>(static_cast<double>(distinct) / multiplier));
  if (!severity) return;
  const std::int64_t successes = s.successes[0] + s.successes[1];
  const std::int64_t unknown = s.unknown_user[0] + s.unknown_user[1];
  const double attempts_per_account = static_cast<double>(failures) / static_cast<double>(std::max<std::int64_t>(1, distinct));
  const double success_share = static_cast<double>(successes) / static_cast<double>(failures + successes);
  if (attempts_per_account > config_.max_attempts_per_account || success_share > max_success_share) return;
  if (!s.episode.report(*severity, ev.time, config_.window_ms)) return;

  // The entity as text only now: failures are many, findings few.
  const std::string entity =
      type == EntityType::kIp ? ev.source_key_text() : std::to_string(ev.as_number);
  Finding f = make_finding(detector(), name_, *severity, type, entity, ev.time, config_.window_ms);
  char ratio[32];
  std::snprintf(ratio, sizeof ratio, "%.1f", attempts_per_account);
  f.summary = (type == EntityType::kAsn ? "AS" : "") + entity + " failed passwords for about " + std::to_string(distinct) +
              " distinct accounts in " + format_duration(config_.window_ms) + " (" + ratio + " tries each, " +
              std::to_string(successes) + " successes)";
  f.evidence.add("distinct_accounts", distinct);
  f.evidence.add("failures", failures);
  f.evidence.add("unknown_user_failures", unknown);
  f.evidence.add("successes", successes);
  f.evidence.add("attempts_per_account", attempts_per_account);
  // The first account of the episode and the one that tipped it: enough to look the source up in
  // the portal's logs without keeping a list per source.
  std::vector<std::string> samples;
  if (!s.first_account.empty()) samples.push_back(s.first_account);
  if (!user.empty() && user != s.first_account) samples.emplace_back(user);
  f.evidence.add("sample_accounts", samples);
  if (!ev.source_class.empty() && type == EntityType::kIp) f.evidence.add("source_class", ev.source_class);
  f.evidence.add("threshold_multiplier", multiplier);
  f.evidence.add("window_seconds", config_.window_ms / kSecondMs);
  out.emit(std::move(f));
}

void PasswordSprayDetector::on_time(TimeMs watermark, FindingSink&) {
  sources_.maybe_expire(watermark);
  asns_.maybe_expire(watermark);
}

std::vector<TableStats> PasswordSprayDetector::tables() const {
  return {sources_.stats(KeyedTable<Source, IpAddress, IpHash>::kBytesPerKey),
          asns_.stats(KeyedTable<Source, std::uint32_t, std::hash<std::uint32_t>>::kBytesPerKey)};
}

// A reload keeps the counted state unless the new settings change its layout (see Detector).
bool PasswordSprayDetector::adopt_settings(Detector& next) {
  auto* n = dynamic_cast<PasswordSprayDetector*>(&next);
  if (!n || !(config_.window_ms == n->config_.window_ms)) return false;
  config_ = n->config_;
  sources_.set_capacity(config_.max_sources);
  asns_.set_capacity(config_.max_asns);
  return true;
}

}  // namespace portalwatch
