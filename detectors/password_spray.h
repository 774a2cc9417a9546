// password_spray (entity: ip, or asn): few password attempts each across many distinct accounts
// from one source. Distinct accounts are counted with HyperLogLog, not a set per source; IPv6
// sources are aggregated by prefix (sources.ipv6_prefix); shared egress is held to its own
// thresholds (sources.trusted_networks, learned shared sources).
#pragma once

#include <memory>

#include "detectors/detector.h"
#include "detectors/distinct_counter.h"
#include "detectors/severity_ladder.h"

namespace portalwatch {

struct PasswordSprayConfig {
  TimeMs window_ms = 15 * kMinuteMs;
  /// Distinct accounts with failed passwords from one source in the window, by severity.
  SeverityLadder severity{0, 20, 50, 200};
  /// A spray tries each account a few times at most; more than this per account is something else
  /// (brute force, a script retrying one account).
  double max_attempts_per_account = 3.0;
  /// Successful sign-ins as a share of attempts above which the source looks like people (an
  /// office NAT, a VPN) rather than a spray.
  double max_success_share = 0.25;
  /// The same by autonomous system, for sprays rotating addresses inside one provider.
  bool by_asn = true;
  SeverityLadder asn_severity{0, 100, 300, 1000};
  /// An autonomous system carries many real users too: it must look almost all-failure. (A wave
  /// through residential proxies inside consumer ISPs is credential stuffing, not a provider's
  /// spray, and must not get a whole ISP blocked.)
  double asn_max_success_share = 0.1;
  std::size_t max_sources = 500'000;
  std::size_t max_asns = 50'000;
};

PasswordSprayConfig read_password_spray_config(MapReader& cfg);
std::unique_ptr<Detector> make_password_spray(MapReader& cfg, const DetectorCommon& common);

class PasswordSprayDetector final : public Detector {
 public:
  PasswordSprayDetector(PasswordSprayConfig config, std::string name);
  std::string_view detector() const override { return "password_spray"; }
  void on_event(const Event& ev, FindingSink& out) override;
  void on_time(TimeMs watermark, FindingSink& out) override;
  FieldSet fields_used() const override { return kAlwaysDecodedFields | field_bit(Field::kAsNumber); }
  bool uses_source_class() const override { return true; }
  std::vector<TableStats> tables() const override;
  bool adopt_settings(Detector& next) override;

  /// Per-source state: two half-window HyperLogLogs (128 four-bit registers each) and counters.
  struct Source {
    std::array<DistinctCounter<7>, 2> accounts;  // [half % 2]
    std::array<std::uint32_t, 2> failures{};
    std::array<std::uint32_t, 2> unknown_user{};
    std::array<std::uint32_t, 2> successes{};
    std::int64_t half = 0;  // newest half-window index
    std::string first_account;  // first account seen failing this episode (evidence)
    Episode episode;
  };

 private:
  void record(Source& s, const Event& ev, std::string_view user) const;
  /// Judges the source (type kIp: the event's source_key; kAsn: its AS) after a failure.
  void maybe_fire(Source& s, EntityType type, const SeverityLadder& ladder, double multiplier,
                  double max_success_share, const Event& ev, std::string_view user,
                  FindingSink& out);

  PasswordSprayConfig config_;
  std::string name_;
  TimeMs half_ms_;
  KeyedTable<Source, IpAddress, IpHash> sources_;
  KeyedTable<Source, std::uint32_t, std::hash<std::uint32_t>> asns_;
  std::string user_buf_;
};

}  // namespace portalwatch
