// failure_spike (entity: global): the portal-wide share of failed password attempts far above
// what is normal for this portal at this hour.
//
// Attempts and failures are counted in five-minute buckets. The expected failure ratio is learned
// twice: a recent EWMA over buckets, and one EWMA per hour of the day (so a portal whose 8 a.m.
// peak has more typos than its nights learns that). The larger of the two learned ratios is the
// expectation, so neither a quiet night nor a busy morning makes the other look anomalous. A
// finding needs the ratio over the last window to be both several times and clearly above the
// expectation, with enough attempts to mean something; its severity grows with the failures in
// excess of the expectation. A busier portal at the same ratio (the morning peak, payday) is not a
// spike; password-expiry failures are ignored (a password-expiry morning is expected to fail); the
// baseline learns only from buckets that were not anomalous, so an attack cannot teach it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "detectors/detector.h"
#include "detectors/severity_ladder.h"

namespace portalwatch {

struct FailureSpikeConfig {
  TimeMs bucket_ms = 5 * kMinuteMs;
  /// The ratio is judged over this many buckets (the newest partial one included).
  int window_buckets = 3;
  /// Failure reasons that are not counted at all (neither attempt nor failure).
  std::vector<std::string> ignore_reasons{"expired_password"};
  std::int64_t min_attempts = 100;
  std::int64_t min_failures = 30;
  /// The observed ratio must be at least ratio_factor × the expected ratio ...
  double ratio_factor = 2.5;
  /// ... and at least this much above it in absolute terms.
  double min_ratio_increase = 0.05;
  /// Failures above expectation in the window, by severity.
  SeverityLadder severity{0, 50, 200, 1000};
  /// No finding until this much traffic time has been learned.
  TimeMs warmup_ms = 60 * kMinuteMs;
  /// EWMA weights per bucket: recent baseline, and the hour-of-day baseline.
  double alpha = 0.05;
  double hour_alpha = 0.2;
  /// Buckets with fewer attempts than this do not teach the baseline.
  std::int64_t min_learn_attempts = 20;
};

FailureSpikeConfig read_failure_spike_config(MapReader& cfg);
std::unique_ptr<Detector> make_failure_spike(MapReader& cfg, const DetectorCommon& common);

class FailureSpikeDetector final : public Detector {
 public:
  FailureSpikeDetector(FailureSpikeConfig config, std::string name);
  std::string_view detector() const override { return "failure_spike"; }
  void on_event(const Event& ev, FindingSink& out) override;
  void on_time(TimeMs watermark, FindingSink& out) override;
  FieldSet fields_used() const override { return kAlwaysDecodedFields; }
  std::vector<TableStats> tables() const override { return {}; }
  bool adopt_settings(Detector& next) override;

  /// The failure ratio expected now (learned), or a negative value while warming up.
  double expected_ratio(TimeMs now) const;

 private:
  static constexpr int kMaxBuckets = 64;
  static constexpr int kReasonSlots = 9;  // Reason values
  struct Bucket {
    std::int64_t index = -1;
    std::uint32_t attempts = 0;
    std::uint32_t failures = 0;
    std::array<std::uint32_t, kReasonSlots> by_reason{};
  };
  struct Learned {
    double ratio = 0;
    std::int64_t samples = 0;
  };

  Bucket& bucket_at(std::int64_t index);
  bool ignored(const Event& ev) const;
  void learn(const Bucket& b, TimeMs bucket_start);
  void evaluate(TimeMs now, FindingSink& out);

  FailureSpikeConfig config_;
  std::string name_;
  std::uint32_t ignored_mask_ = 0;          // Reason values to ignore
  std::vector<std::string> ignored_words_;  // other reason words to ignore
  std::array<Bucket, kMaxBuckets> buckets_{};
  Learned recent_;
  std::array<Learned, 24> by_hour_{};
  TimeMs first_time_ = -1;
  std::int64_t learned_through_ = -1;  // newest bucket index folded into the baseline
  bool anomalous_ = false;
  Episode episode_;
  TimeMs last_anomalous_ = 0;
};

}  // namespace portalwatch
