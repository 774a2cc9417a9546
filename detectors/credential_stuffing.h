// credential_stuffing (entity: global, asn or ip): a combo list of leaked name/password pairs
// tried from many sources (residential proxies) so that no single source is loud.
//
// Each source's login attempts are kept for a window (one hour by default). A source is
// "stuffing-shaped" once it has failed for several distinct accounts and almost never succeeded;
// a household that mistypes a name and then signs in is not. The detector then counts, across
// the portal and per autonomous system, how many stuffing-shaped sources there are, how many
// accounts they tried, what share of their failures named accounts that do not exist and how
// many of their attempts succeeded. A wave from hundreds of proxies and a low-and-slow campaign
// (one try per source every ten minutes for hours) both show as many stuffing-shaped sources in
// the window; a portal whose users give up more often than usual raises the bar through a
// learned baseline (EWMA) of that count. A single source that is loud on its own (many accounts,
// mostly unknown names) is reported by ip.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "detectors/detector.h"
#include "detectors/distinct_counter.h"
#include "detectors/severity_ladder.h"

namespace portalwatch {

struct CredentialStuffingConfig {
  TimeMs window_ms = 60 * kMinuteMs;
  /// A source is stuffing-shaped with at least this many distinct failing accounts in the window
  /// (times its shared-egress multiplier) ...
  std::int64_t source_min_accounts = 2;
  /// ... and at most this share of its attempts successful.
  double source_max_success_share = 0.2;
  /// Portal-wide: distinct stuffing-shaped sources in the window, by severity.
  SeverityLadder severity{0, 20, 60, 200};
  /// Share of the stuffing-shaped sources' failures that named no account (combo lists are mostly
  /// other organisations' users). Below it, no finding: many failing sources with valid names is
  /// a different problem (failure_spike, password_spray).
  double min_unknown_user_share = 0.25;
  /// Above this share of successful attempts the sources look like people, not a list.
  double max_success_share = 0.1;
  /// The count of stuffing-shaped sources must also exceed baseline_factor × its learned
  /// (EWMA) level, so a portal whose users simply give up more often does not alert daily. Only
  /// samples below the lowest severity step teach the baseline.
  double baseline_factor = 3.0;
  /// Weight of each new five-minute sample in the baseline.
  double baseline_alpha = 0.05;
  /// By autonomous system: distinct stuffing-shaped sources inside one AS.
  bool by_asn = true;
  SeverityLadder asn_severity{0, 25, 100, 300};
  /// By single source: distinct accounts (times the source's multiplier), with the same unknown
  /// share and success conditions.
  bool by_ip = true;
  SeverityLadder ip_severity{0, 30, 100, 300};
  std::size_t max_sources = 500'000;
  std::size_t max_asns = 50'000;
};

CredentialStuffingConfig read_credential_stuffing_config(MapReader& cfg);
std::unique_ptr<Detector> make_credential_stuffing(MapReader& cfg, const DetectorCommon& common);

class CredentialStuffingDetector final : public Detector {
 public:
  CredentialStuffingDetector(CredentialStuffingConfig config, std::string name);
  std::string_view detector() const override { return "credential_stuffing"; }
  void on_event(const Event& ev, FindingSink& out) override;
  void on_time(TimeMs watermark, FindingSink& out) override;
  FieldSet fields_used() const override {
    return kAlwaysDecodedFields | field_bit(Field::kAsNumber) | field_bit(Field::kAsOrgName);
  }
  bool uses_source_class() const override { return true; }
  std::vector<TableStats> tables() const override;
  bool adopt_settings(Detector& next) override;

  /// Per source: two half-window account sketches (32 four-bit registers each) and counters.
  struct Source {
    std::array<DistinctCounter<5>, 2> accounts;
    std::array<std::uint16_t, 2> failures{};
    std::array<std::uint16_t, 2> unknown_user{};
    std::array<std::uint16_t, 2> successes{};
    std::int64_t half = 0;
    bool stuffing =
        false;  // has been stuffing-shaped this episode (its early failures are counted)
    Episode episode;
  };
  /// Per AS: the stuffing-shaped sources seen inside it, by half window.
  struct Asn {
    std::array<DistinctCounter<6>, 2> sources;
    std::array<std::uint32_t, 2> failures{};
    std::array<std::uint32_t, 2> unknown_user{};
    std::array<std::uint32_t, 2> successes{};
    std::int64_t half = 0;
    Episode episode;
  };

  /// Portal-wide totals of the stuffing-shaped sources over the window (for tests and metrics).
  struct Totals {
    std::int64_t sources = 0;
    std::int64_t accounts = 0;
    std::int64_t failures = 0;
    std::int64_t unknown_user = 0;
    std::int64_t successes = 0;
    std::int64_t recent_sources = 0;  ///< in the newest quarter of the window
  };
  Totals totals(TimeMs now) const;
  double baseline() const { return baseline_; }

 private:
  static constexpr int kBuckets = 12;
  struct Bucket {
    std::int64_t index = -1;
    DistinctCounter<10> sources;
    DistinctCounter<10> accounts;
    std::uint32_t failures = 0, unknown_user = 0, successes = 0;
  };

  Bucket& bucket(TimeMs t);
  void slide(Source& s, std::int64_t half) const;
  void fire_ip(Source& s, const Event& ev, std::string_view user, FindingSink& out);
  void fire_asn(Asn& a, const Event& ev, FindingSink& out);
  void fire_global(const Totals& t, TimeMs now, FindingSink& out);

  CredentialStuffingConfig config_;
  std::string name_;
  TimeMs half_ms_;
  TimeMs span_;
  KeyedTable<Source, IpAddress, IpHash> sources_;
  KeyedTable<Asn, std::uint32_t, std::hash<std::uint32_t>> asns_;
  std::array<Bucket, kBuckets> buckets_{};
  /// The window's buckets before the newest, merged: totals() adds the newest to it instead of
  /// merging all twelve each time (the same result: merging sketches is a register-wise max).
  /// Made again when the newest bucket moves on or an event changes an older one.
  struct Older {
    std::int64_t newest = -1;  ///< the newest bucket's index it was made for; -1 none
    DistinctCounter<10> sources, accounts, recent_sources;
    std::int64_t failures = 0, unknown_user = 0, successes = 0;
  };
  mutable Older older_;
  // Portal-wide episode.
  Episode global_;
  bool global_reported_successes_ = false;  // the episode's findings already said it got in
  TimeMs global_quiet_since_ = 0;
  /// The newest few accounts signed in from stuffing-shaped sources, and the newest sources that
  /// turned stuffing-shaped, with their event times (evidence; older than the window is dropped).
  struct Sample {
    TimeMs at = 0;
    std::string value;
  };
  static void remember(std::vector<Sample>& list, TimeMs at, std::string_view value, size_t keep);
  std::vector<std::string> recent(const std::vector<Sample>& list, TimeMs now) const;
  std::vector<Sample> signed_in_;
  std::vector<Sample> sample_sources_;
  double baseline_ = 0;
  std::int64_t baseline_bucket_ = -1;
  bool dirty_ = false;  // a stuffing-shaped source was active since the last evaluation
  TimeMs first_time_ = -1;
  std::string user_buf_;
};

}  // namespace portalwatch
