// mfa_fatigue (entity: user): a burst of denied or timed-out second-factor challenges against one
// account — someone who has the password pushing prompts until the employee gives in — and, worst,
// the approval that ends it.
#pragma once

#include <memory>

#include "detectors/detector.h"
#include "detectors/severity_ladder.h"

namespace portalwatch {

struct MfaFatigueConfig {
  TimeMs window_ms = 15 * kMinuteMs;
  /// Denied or timed-out challenges for one account in the window, by severity.
  SeverityLadder severity{0, 5, 10, 25};
  /// An approval after at least this many denials/timeouts in the window is critical: the
  /// employee gave in, and whoever pushed the prompts is signed in.
  std::int64_t approval_after_failures = 5;
  std::size_t max_accounts = 200'000;
};

MfaFatigueConfig read_mfa_fatigue_config(MapReader& cfg);
std::unique_ptr<Detector> make_mfa_fatigue(MapReader& cfg, const DetectorCommon& common);

class MfaFatigueDetector final : public Detector {
 public:
  MfaFatigueDetector(MfaFatigueConfig config, std::string name);
  std::string_view detector() const override { return "mfa_fatigue"; }
  void on_event(const Event& ev, FindingSink& out) override;
  void on_time(TimeMs watermark, FindingSink& out) override;
  FieldSet fields_used() const override { return kAlwaysDecodedFields; }
  std::vector<TableStats> tables() const override;
  bool adopt_settings(Detector& next) override;

 private:
  static constexpr int kBuckets = 10;
  static constexpr int kSampleSources = 3;
  struct Account {
    SlidingWindowCounter<kBuckets> denied;
    SlidingWindowCounter<kBuckets> timed_out;
    SourceSample<kSampleSources> sources;  // distinct sources of the burst
    Episode episode;
  };

  void fire(std::string_view user, Account& a, const Event& ev, Severity severity, bool approved,
            std::int64_t denied, std::int64_t timed_out, FindingSink& out);

  MfaFatigueConfig config_;
  std::string name_;
  TimeMs span_;
  KeyedTable<Account> accounts_;
  std::string user_buf_;
};

}  // namespace portalwatch
