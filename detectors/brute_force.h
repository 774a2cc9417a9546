// brute_force (entity: user): many failed passwords against one account in a window.
#pragma once

#include <memory>

#include "detectors/detector.h"
#include "detectors/severity_ladder.h"

namespace portalwatch {

struct BruteForceConfig {
  TimeMs window_ms = 10 * kMinuteMs;
  /// failures in the window at which each severity starts
  SeverityLadder severity{0, 10, 30, 100};
  /// A success after at least this many failures raises the finding to at least high.
  std::int64_t success_after_failures = 10;
  std::size_t max_accounts = 200'000;
};

/// Reads the brute_force keys (window_seconds, severity, success_after_failures, max_accounts).
BruteForceConfig read_brute_force_config(MapReader& cfg);
std::unique_ptr<Detector> make_brute_force(MapReader& cfg, const DetectorCommon& common);

class BruteForceDetector final : public Detector {
 public:
  BruteForceDetector(BruteForceConfig config, std::string name);
  std::string_view detector() const override { return "brute_force"; }
  void on_event(const Event& ev, FindingSink& out) override;
  void on_time(TimeMs watermark, FindingSink& out) override;
  FieldSet fields_used() const override { return kAlwaysDecodedFields; }
  std::vector<TableStats> tables() const override;
  bool adopt_settings(Detector& next) override;

 private:
  static constexpr int kBuckets = 10;
  static constexpr int kSampleSources = 3;
  struct Account {
    SlidingWindowCounter<kBuckets> failures;
    SlidingWindowCounter<kBuckets> successes;
    SourceSample<kSampleSources> sources;  // distinct sources of the episode
    Episode episode;
  };

  void maybe_fire(std::string_view user, Account& a, const Event& ev, FindingSink& out);

  BruteForceConfig config_;
  std::string name_;
  TimeMs span_;
  KeyedTable<Account> accounts_;
  std::string user_buf_;
};

}  // namespace portalwatch
