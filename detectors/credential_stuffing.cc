#include "detectors/credential_stuffing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace portalwatch {

CredentialStuffingConfig read_credential_stuffing_config(MapReader& cfg) {
  CredentialStuffingConfig c;
  c.window_ms = cfg.get_int("window_seconds", c.window_ms / kSecondMs, 300, 7 * 86400) * kSecondMs;
  c.source_min_accounts = cfg.get_int("source_min_accounts", c.source_min_accounts, 1, 1000);
  c.source_max_success_share =
      cfg.get_double("source_max_success_share", c.source_max_success_share, 0, 1);
  c.severity.read(cfg, "severity");
  c.min_unknown_user_share =
      cfg.get_double("min_unknown_user_share", c.min_unknown_user_share, 0, 1);
  c.max_success_share = cfg.get_double("max_success_share", c.max_success_share, 0, 1);
  c.baseline_factor = cfg.get_double("baseline_factor", c.baseline_factor, 1, 1000);
  c.baseline_alpha = cfg.get_double("baseline_alpha", c.baseline_alpha, 0.0001, 1);
  c.by_asn = cfg.get_bool("by_asn", c.by_asn);
  c.asn_severity.read(cfg, "asn_severity");
  c.by_ip = cfg.get_bool("by_ip", c.by_ip);
  c.ip_severity.read(cfg, "ip_severity");
  c.max_sources = static_cast<std::size_t>(
      cfg.get_int("max_sources", static_cast<std::int64_t>(c.max_sources), 16, 100'000'000));
  c.max_asns = static_cast<std::size_t>(
      cfg.get_int("max_asns", static_cast<std::int64_t>(c.max_asns), 16, 10'000'000));
  return c;
}

std::unique_ptr<Detector> make_credential_stuffing(MapReader& cfg, const DetectorCommon& common) {
  return std::make_unique<CredentialStuffingDetector>(read_credential_stuffing_config(cfg),
                                                      common.name);
}

CredentialStuffingDetector::CredentialStuffingDetector(CredentialStuffingConfig config,
                                                       std::string name)
    : config_(std::move(config)),
      name_(std::move(name)),
      half_ms_(std::max<TimeMs>(1, config_.window_ms / 2)),
      span_(std::max<TimeMs>(1, config_.window_ms / kBuckets)),
      sources_("sources", config_.max_sources, config_.window_ms),
      asns_("asns", config_.max_asns, config_.window_ms) {}

namespace {

double share(std::int64_t part, std::int64_t whole) {
  return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

// Slides a two-half window forward to `half`: the older half is forgotten, a jump of a whole
// window clears both. Returns false for an event older than the window.
template <typename State, typename ClearHalf>
bool slide_halves(State& s, std::int64_t half, ClearHalf clear) {
  if (half > s.half) {
    for (std::int64_t h = std::max(s.half + 1, half - 1); h <= half; ++h)
      clear(static_cast<size_t>(h % 2));
    s.half = half;
    return true;
  }
  return half >= s.half - 1;
}

}  // namespace

CredentialStuffingDetector::Bucket& CredentialStuffingDetector::bucket(TimeMs t) {
  const std::int64_t index = t / span_;
  if (index != older_.newest) older_.newest = -1;  // a bucket merged there changes
  Bucket& b = buckets_[static_cast<size_t>(index % kBuckets)];
  if (b.index != index && index > b.index) {
    b = Bucket{};
    b.index = index;
  }
  return b;
}

void CredentialStuffingDetector::on_event(const Event& ev, FindingSink& out) {
  if (ev.action != Action::kLogin || ev.outcome == Outcome::kUnknown) return;
  if (first_time_ < 0) first_time_ = ev.time;
  const bool failure = ev.outcome == Outcome::kFailure;
  const std::string_view user = ev.folded_user(user_buf_);

  // Successes only matter for sources already failing; they never create state.
  Source* sp = failure ? &sources_.upsert(ev.source_key, ev.time) : sources_.find(ev.source_key);
  if (!sp) return;
  Source& s = *sp;
  const std::int64_t half = ev.time / half_ms_;
  const std::int64_t previous_half = s.half;
  if (!slide_halves(s, half, [&s](size_t i) {
        s.accounts[i].clear();
        s.failures[i] = s.unknown_user[i] = s.successes[i] = 0;
      }))
    return;                         // older than the window
  if (half - previous_half >= 2) {  // a quiet window ends the source's episode
    s.stuffing = false;
    s.episode.reset();
  }
  const auto i = static_cast<size_t>(half % 2);
  auto bump = [](std::uint16_t& c) {
    c = static_cast<std::uint16_t>(std::min<int>(c + 1, 0xFFFF));
  };
  if (failure) {
    bump(s.failures[i]);
    if (ev.reason == Reason::kUnknownUser) bump(s.unknown_user[i]);
    if (!user.empty()) s.accounts[i].add(user);
  } else {
    bump(s.successes[i]);
  }

  const std::int64_t failures = s.failures[0] + s.failures[1];
  const std::int64_t successes = s.successes[0] + s.successes[1];
  const std::int64_t unknown = s.unknown_user[0] + s.unknown_user[1];
  if (failures < config_.source_min_accounts) return;  // cannot have enough accounts yet
  DistinctCounter<5> merged = s.accounts[0];
  merged.merge(s.accounts[1]);
  const std::int64_t accounts = merged.count();
  const double m = ev.source_threshold_multiplier;
  const bool shaped =
      static_cast<double>(accounts) >= static_cast<double>(config_.source_min_accounts) * m &&
      share(successes, failures + successes) <= config_.source_max_success_share;

  // Portal-wide and per-AS accounting of stuffing-shaped sources, while they are: a source that
  // turns stuffing-shaped brings its failures so far with it; one that starts succeeding (a
  // household, an office NAT early in the morning) stops counting.
  if (shaped) {
    Bucket& b = bucket(ev.time);
    dirty_ = true;
    std::uint32_t add_failures = failure ? 1 : 0,
                  add_unknown = ev.reason == Reason::kUnknownUser ? 1 : 0;
    if (!s.stuffing) {
      s.stuffing = true;
      add_failures = static_cast<std::uint32_t>(failures);
      add_unknown = static_cast<std::uint32_t>(unknown);
      remember(sample_sources_, ev.time, ev.source_key_text(), 5);
    }
    b.sources.add_hash(ev.source_key.hash());
    if (failure && !user.empty()) b.accounts.add(user);
    b.failures += add_failures;
    b.unknown_user += add_unknown;
    if (!failure) {
      ++b.successes;
      // An account signed in from a stuffing source is the one to look at first.
      if (!user.empty()) remember(signed_in_, ev.time, user, 10);
    }
    if (config_.by_asn && ev.as_number != 0) {
      Asn& a = asns_.upsert(ev.as_number, ev.time);
      const std::int64_t ahalf = ev.time / half_ms_;
      if (slide_halves(a, ahalf, [&a](size_t k) {
            a.sources[k].clear();
            a.failures[k] = a.unknown_user[k] = a.successes[k] = 0;
          })) {
        const auto k = static_cast<size_t>(ahalf % 2);
        a.sources[k].add_hash(ev.source_key.hash());
        a.failures[k] += add_failures;
        a.unknown_user[k] += add_unknown;
        a.successes[k] += failure ? 0 : 1;
        fire_asn(a, ev, out);
      }
    }
  }

  if (config_.by_ip && failure) {
    const auto severity =
        config_.ip_severity.at(static_cast<std::int64_t>(static_cast<double>(accounts) / m));
    if (severity && share(unknown, failures) >= config_.min_unknown_user_share &&
        share(successes, failures + successes) <= config_.max_success_share) {
      if (s.episode.report(*severity, ev.time, config_.window_ms)) {
        Finding f = make_finding(detector(), name_, *severity, EntityType::kIp,
                                 ev.source_key_text(), ev.time, config_.window_ms);
        char pct[16];
        std::snprintf(pct, sizeof pct, "%.0f%%", 100 * share(unknown, failures));
        f.summary = f.entity + " tried about " + std::to_string(accounts) + " accounts in " +
                    format_duration(config_.window_ms) + ", " + pct + " of them unknown names (" +
                    std::to_string(successes) + " successes)";
        f.evidence.add("distinct_accounts", accounts);
        f.evidence.add("failures", failures);
        f.evidence.add("unknown_user_failures", unknown);
        f.evidence.add("unknown_user_share", share(unknown, failures));
        f.evidence.add("successes", successes);
        if (!ev.source_class.empty()) f.evidence.add("source_class", ev.source_class);
        f.evidence.add("threshold_multiplier", m);
        f.evidence.add("window_seconds", config_.window_ms / kSecondMs);
        out.emit(std::move(f));
      }
    }
  }
}

void CredentialStuffingDetector::fire_asn(Asn& a, const Event& ev, FindingSink& out) {
  DistinctCounter<6> merged = a.sources[0];
  merged.merge(a.sources[1]);
  const std::int64_t sources = merged.count();
  const auto severity = config_.asn_severity.at(sources);
  if (!severity) return;
  const std::int64_t failures = a.failures[0] + a.failures[1];
  const std::int64_t unknown = a.unknown_user[0] + a.unknown_user[1];
  const std::int64_t successes = a.successes[0] + a.successes[1];
  if (share(unknown, failures) < config_.min_unknown_user_share ||
      share(successes, failures + successes) > config_.max_success_share)
    return;
  if (!a.episode.report(*severity, ev.time, config_.window_ms)) return;
  Finding f = make_finding(detector(), name_, *severity, EntityType::kAsn,
                           std::to_string(ev.as_number), ev.time, config_.window_ms);
  f.summary = "about " + std::to_string(sources) + " sources in AS" + f.entity +
              " tried leaked credentials in " + format_duration(config_.window_ms) + " (" +
              std::to_string(failures) + " failures, " + std::to_string(successes) + " successes)";
  f.evidence.add("stuffing_sources", sources);
  f.evidence.add("failures", failures);
  f.evidence.add("unknown_user_failures", unknown);
  f.evidence.add("unknown_user_share", share(unknown, failures));
  f.evidence.add("successes", successes);
  if (!ev.as_org.empty()) f.evidence.add("as_organization", ev.as_org);
  f.evidence.add("window_seconds", config_.window_ms / kSecondMs);
  out.emit(std::move(f));
}

void CredentialStuffingDetector::remember(std::vector<Sample>& list, TimeMs at,
                                          std::string_view value, size_t keep) {
  for (auto& s : list)
    if (s.value == value) {
      s.at = std::max(s.at, at);
      return;
    }
  if (list.size() >= keep)
    list.erase(std::min_element(list.begin(), list.end(),
                                [](const Sample& a, const Sample& b) { return a.at < b.at; }));
  list.push_back({at, std::string(value)});
}

std::vector<std::string> CredentialStuffingDetector::recent(const std::vector<Sample>& list,
                                                            TimeMs now) const {
  std::vector<std::string> out;
  for (const auto& s : list)
    if (s.at >= now - config_.window_ms) out.push_back(s.value);
  return out;
}

CredentialStuffingDetector::Totals CredentialStuffingDetector::totals(TimeMs now) const {
  const std::int64_t newest = now / span_;
  if (older_.newest != newest) {
    older_ = Older{};
    for (const Bucket& b : buckets_) {
      if (b.index < 0 || b.index <= newest - kBuckets || b.index >= newest) continue;
      older_.sources.merge(b.sources);
      if (b.index > newest - kBuckets / 4) older_.recent_sources.merge(b.sources);
      older_.accounts.merge(b.accounts);
      older_.failures += b.failures;
      older_.unknown_user += b.unknown_user;
      older_.successes += b.successes;
    }
    older_.newest = newest;
  }
  Totals t;
  DistinctCounter<10> sources = older_.sources, accounts = older_.accounts,
                      recent = older_.recent_sources;
  t.failures = older_.failures;
  t.unknown_user = older_.unknown_user;
  t.successes = older_.successes;
  const Bucket& b = buckets_[static_cast<size_t>(newest % kBuckets)];
  if (b.index == newest) {
    sources.merge(b.sources);
    recent.merge(b.sources);
    accounts.merge(b.accounts);
    t.failures += b.failures;
    t.unknown_user += b.unknown_user;
    t.successes += b.successes;
  }
  t.sources = sources.count();
  t.accounts = accounts.count();
  t.recent_sources = recent.count();
  return t;
}

void CredentialStuffingDetector::on_time(TimeMs watermark, FindingSink& out) {
  sources_.maybe_expire(watermark);
  asns_.maybe_expire(watermark);
  if (first_time_ < 0) return;
  // The portal-wide figures change only when a stuffing-shaped source was active or a bucket
  // leaves the window; merging the sketches costs a few microseconds, so only then.
  const std::int64_t index = watermark / span_;
  const bool new_bucket = index != baseline_bucket_;
  if (!dirty_ && !new_bucket) return;
  dirty_ = false;
  const Totals t = totals(watermark);
  // Learn the usual number of stuffing-shaped sources (people who give up) once per bucket, from
  // quiet periods only, so an attack does not teach the detector to accept it.
  if (new_bucket) {
    baseline_bucket_ = index;
    if (!global_.active() && watermark - first_time_ >= config_.window_ms &&
        t.sources < config_.severity.lowest_step())
      baseline_ += config_.baseline_alpha * (static_cast<double>(t.sources) - baseline_);
  }
  fire_global(t, watermark, out);
}

void CredentialStuffingDetector::fire_global(const Totals& t, TimeMs now, FindingSink& out) {
  const auto severity_of = [&]() -> std::optional<Severity> {
    auto s = config_.severity.at(t.sources);
    if (!s) return s;
    if (static_cast<double>(t.sources) < config_.baseline_factor * baseline_) return std::nullopt;
    if (share(t.unknown_user, t.failures) < config_.min_unknown_user_share) return std::nullopt;
    if (share(t.successes, t.failures + t.successes) > config_.max_success_share)
      return std::nullopt;
    // Leaked credentials that worked: the accounts are compromised, not just tried.
    if (t.successes > 0 && *s < Severity::kHigh) s = Severity::kHigh;
    return s;
  };
  const auto severity = severity_of();
  if (!severity) {
    if (global_.active() && now - global_quiet_since_ >= config_.window_ms) {
      global_.reset();  // a quiet window ends the episode
      global_reported_successes_ = false;
    }
    return;
  }
  global_quiet_since_ = now;
  // A reminder once per window while the attack goes on, not for the tail of one that stopped.
  const bool ongoing = t.recent_sources * 4 >= config_.severity.lowest_step();
  // A wave that starts getting in is news at once, not at the next reminder: the accounts are
  // now compromised (policies act on "critical with successes").
  const bool getting_in = t.successes > 0 && !global_reported_successes_ && global_.active();
  if (!ongoing && !global_.escalates(*severity) && !getting_in) return;
  if (!global_.report(*severity, now, config_.window_ms) && !getting_in) return;
  if (t.successes > 0) global_reported_successes_ = true;
  Finding f = make_finding(detector(), name_, *severity, EntityType::kGlobal, "global", now,
                           config_.window_ms);
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.0f%%", 100 * share(t.unknown_user, t.failures));
  f.summary = "about " + std::to_string(t.sources) + " sources tried about " +
              std::to_string(t.accounts) + " accounts in " + format_duration(config_.window_ms) +
              " (" + pct + " unknown names, " + std::to_string(t.successes) + " successes)";
  f.evidence.add("stuffing_sources", t.sources);
  f.evidence.add("distinct_accounts", t.accounts);
  f.evidence.add("failures", t.failures);
  f.evidence.add("unknown_user_failures", t.unknown_user);
  f.evidence.add("unknown_user_share", share(t.unknown_user, t.failures));
  f.evidence.add("successes", t.successes);
  f.evidence.add("success_rate", share(t.successes, t.failures + t.successes));
  f.evidence.add("accounts_signed_in", recent(signed_in_, now));
  f.evidence.add("sample_sources", recent(sample_sources_, now));
  f.evidence.add("baseline_sources", std::round(baseline_ * 10) / 10);
  f.evidence.add("window_seconds", config_.window_ms / kSecondMs);
  out.emit(std::move(f));
}

std::vector<TableStats> CredentialStuffingDetector::tables() const {
  return {sources_.stats(KeyedTable<Source, IpAddress, IpHash>::kBytesPerKey),
          asns_.stats(KeyedTable<Asn, std::uint32_t, std::hash<std::uint32_t>>::kBytesPerKey)};
}

// A reload keeps the counted state unless the new settings change its layout (see Detector).
bool CredentialStuffingDetector::adopt_settings(Detector& next) {
  auto* n = dynamic_cast<CredentialStuffingDetector*>(&next);
  if (!n || !(config_.window_ms == n->config_.window_ms)) return false;
  config_ = n->config_;
  sources_.set_capacity(config_.max_sources);
  asns_.set_capacity(config_.max_asns);
  dirty_ = true;  // judge the global count against the new steps at the next tick
  return true;
}

}  // namespace portalwatch
