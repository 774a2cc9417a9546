#include "detectors/failure_spike.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace portalwatch {

FailureSpikeConfig read_failure_spike_config(MapReader& cfg) {
  FailureSpikeConfig c;
  c.bucket_ms = cfg.get_int("bucket_seconds", c.bucket_ms / kSecondMs, 10, 3600) * kSecondMs;
  c.window_buckets = static_cast<int>(cfg.get_int("window_buckets", c.window_buckets, 1, 48));
  c.ignore_reasons = cfg.get_string_list("ignore_reasons", c.ignore_reasons);
  c.min_attempts = cfg.get_int("min_attempts", c.min_attempts, 1, 1'000'000'000);
  c.min_failures = cfg.get_int("min_failures", c.min_failures, 1, 1'000'000'000);
  c.ratio_factor = cfg.get_double("ratio_factor", c.ratio_factor, 1, 1000);
  c.min_ratio_increase = cfg.get_double("min_ratio_increase", c.min_ratio_increase, 0, 1);
  c.severity.read(cfg, "severity");
  c.warmup_ms = cfg.get_int("warmup_seconds", c.warmup_ms / kSecondMs, 0, 30 * 86400) * kSecondMs;
  c.alpha = cfg.get_double("alpha", c.alpha, 0.0001, 1);
  c.hour_alpha = cfg.get_double("hour_alpha", c.hour_alpha, 0.0001, 1);
  c.min_learn_attempts = cfg.get_int("min_learn_attempts", c.min_learn_attempts, 1, 1'000'000'000);
  return c;
}

std::unique_ptr<Detector> make_failure_spike(MapReader& cfg, const DetectorCommon& common) {
  return std::make_unique<FailureSpikeDetector>(read_failure_spike_config(cfg), common.name);
}

FailureSpikeDetector::FailureSpikeDetector(FailureSpikeConfig config, std::string name)
    : config_(std::move(config)), name_(std::move(name)) {
  for (const auto& word : config_.ignore_reasons) {
    const Reason r = parse_reason(word);
    if (r == Reason::kOther || r == Reason::kNone)
      ignored_words_.push_back(word);
    else
      ignored_mask_ |= 1u << static_cast<unsigned>(r);
  }
}

bool FailureSpikeDetector::ignored(const Event& ev) const {
  if (ev.outcome != Outcome::kFailure) return false;
  if (ignored_mask_ & (1u << static_cast<unsigned>(ev.reason))) return true;
  if (ev.reason == Reason::kOther && !ignored_words_.empty())
    return std::find(ignored_words_.begin(), ignored_words_.end(), ev.reason_text) !=
           ignored_words_.end();
  return false;
}

FailureSpikeDetector::Bucket& FailureSpikeDetector::bucket_at(std::int64_t index) {
  Bucket& b = buckets_[static_cast<size_t>(index % kMaxBuckets)];
  if (b.index != index) {
    b = Bucket{};
    b.index = index;
  }
  return b;
}

void FailureSpikeDetector::on_event(const Event& ev, FindingSink&) {
  if (ev.action != Action::kLogin || ev.outcome == Outcome::kUnknown || ignored(ev)) return;
  if (first_time_ < 0) first_time_ = ev.time;
  const std::int64_t index = ev.time / config_.bucket_ms;
  if (index <= learned_through_) return;  // a late event for a bucket already learned
  Bucket& b = bucket_at(index);
  ++b.attempts;
  if (ev.outcome == Outcome::kFailure) {
    ++b.failures;
    ++b.by_reason[static_cast<size_t>(ev.reason)];
  }
}

double FailureSpikeDetector::expected_ratio(TimeMs now) const {
  if (first_time_ < 0 || now - first_time_ < config_.warmup_ms || recent_.samples < 3) return -1;
  double expected = recent_.ratio;
  const auto hour = static_cast<size_t>(((now / kHourMs) % 24 + 24) % 24);
  if (by_hour_[hour].samples >= 6) expected = std::max(expected, by_hour_[hour].ratio);
  return expected;
}

void FailureSpikeDetector::learn(const Bucket& b, TimeMs bucket_start) {
  if (b.attempts < config_.min_learn_attempts || anomalous_) return;
  double ratio = static_cast<double>(b.failures) / static_cast<double>(b.attempts);
  // A bucket far above expectation that did not quite make a finding still must not drag the
  // baseline up: its sample is capped.
  const double expected = expected_ratio(bucket_start);
  if (expected >= 0) ratio = std::min(ratio, expected * config_.ratio_factor);
  auto fold = [ratio](Learned& l, double alpha) {
    l.ratio = l.samples == 0 ? ratio : l.ratio + alpha * (ratio - l.ratio);
    ++l.samples;
  };
  fold(recent_, config_.alpha);
  fold(by_hour_[static_cast<size_t>(((bucket_start / kHourMs) % 24 + 24) % 24)],
       config_.hour_alpha);
}

void FailureSpikeDetector::on_time(TimeMs watermark, FindingSink& out) {
  if (first_time_ < 0) return;
  const std::int64_t current = watermark / config_.bucket_ms;
  // Fold closed buckets into the baseline, oldest first.
  if (learned_through_ < 0) learned_through_ = first_time_ / config_.bucket_ms - 1;
  for (std::int64_t i = std::max(learned_through_ + 1, current - kMaxBuckets + 1); i < current;
       ++i) {
    const Bucket& b = buckets_[static_cast<size_t>(i % kMaxBuckets)];
    if (b.index == i) learn(b, i * config_.bucket_ms);
  }
  learned_through_ = std::max(learned_through_, current - 1);
  evaluate(watermark, out);
}

void FailureSpikeDetector::evaluate(TimeMs now, FindingSink& out) {
  const double expected = expected_ratio(now);
  const std::int64_t current = now / config_.bucket_ms;
  std::int64_t attempts = 0, failures = 0;
  std::array<std::int64_t, kReasonSlots> by_reason{};
  for (std::int64_t i = current - config_.window_buckets + 1; i <= current; ++i) {
    const Bucket& b =
        buckets_[static_cast<size_t>(((i % kMaxBuckets) + kMaxBuckets) % kMaxBuckets)];
    if (b.index != i) continue;
    attempts += b.attempts;
    failures += b.failures;
    for (int r = 0; r < kReasonSlots; ++r)
      by_reason[static_cast<size_t>(r)] += b.by_reason[static_cast<size_t>(r)];
  }
  std::optional<Severity> severity;
  double ratio = 0, excess = 0;
  if (expected >= 0 && attempts >= config_.min_attempts && failures >= config_.min_failures) {
    ratio = static_cast<double>(failures) / static_cast<double>(attempts);
    excess = static_cast<double>(failures) - expected * static_cast<double>(attempts);
    if (ratio >= expected * config_.ratio_factor && ratio - expected >= config_.min_ratio_increase)
      severity = config_.severity.at(static_cast<std::int64_t>(excess));
  }
  anomalous_ = severity.has_value();
  if (!severity) {
    if (episode_.active() && now - last_anomalous_ >= config_.window_buckets * config_.bucket_ms)
      episode_.reset();
    return;
  }
  last_anomalous_ = now;
  const TimeMs window_ms = config_.window_buckets * config_.bucket_ms;
  if (!episode_.report(*severity, now, window_ms)) return;

  Finding f =
      make_finding(detector(), name_, *severity, EntityType::kGlobal, "global", now, window_ms);
  f.window_start = (current - config_.window_buckets + 1) * config_.bucket_ms;  // whole buckets
  char text[160];
  std::snprintf(text, sizeof text,
                "%.1f%% of %lld password attempts failed in %s, against %.1f%% expected",
                100 * ratio, static_cast<long long>(attempts), format_duration(window_ms).c_str(),
                100 * expected);
  f.summary = text;
  f.evidence.add("attempts", attempts);
  f.evidence.add("failures", failures);
  f.evidence.add("failure_ratio", std::round(ratio * 10000) / 10000);
  f.evidence.add("expected_ratio", std::round(expected * 10000) / 10000);
  f.evidence.add("excess_failures", static_cast<std::int64_t>(excess));
  static constexpr std::array<std::pair<Reason, const char*>, 7> kReasons{
      {{Reason::kBadPassword, "bad_password"},
       {Reason::kUnknownUser, "unknown_user"},
       {Reason::kLocked, "locked"},
       {Reason::kExpiredPassword, "expired_password"},
       {Reason::kForbidden, "forbidden"},
       {Reason::kOther, "other"},
       {Reason::kNone, "none"}}};
  for (const auto& [r, key] : kReasons)
    if (by_reason[static_cast<size_t>(r)])
      f.evidence.add(std::string("failures_") + key, by_reason[static_cast<size_t>(r)]);
  f.evidence.add("window_seconds", window_ms / kSecondMs);
  out.emit(std::move(f));
}

// A reload keeps the counted state unless the new settings change its layout (see Detector).
bool FailureSpikeDetector::adopt_settings(Detector& next) {
  auto* n = dynamic_cast<FailureSpikeDetector*>(&next);
  if (!n || !(config_.bucket_ms == n->config_.bucket_ms)) return false;
  config_ = n->config_;
  ignored_mask_ = n->ignored_mask_;
  ignored_words_ = n->ignored_words_;
  return true;
}

}  // namespace portalwatch
