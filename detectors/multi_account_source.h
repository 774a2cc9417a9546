// multi_account_source (entity: ip, asn or device): one source signing in *successfully* as many
// distinct accounts — the shape of a phished or bought credential list being used — beyond what
// that source normally does.
//
// Per source (address aggregated as in sources:, autonomous system, device id) the distinct
// accounts signed in during a sliding window are estimated with HyperLogLog. "Normally" is the
// source's own history: its busiest window in the previous period (a day by default) learned from
// quiet periods only. A finding needs the count to reach the severity ladder (times the source's
// shared-egress multiplier, so an office NAT is held to its own thresholds) and to exceed
// history_factor × that history. A household or a family device signs in as two or three people;
// a kiosk or shared workstation learns its own level after a day. Cold start is honest: until a
// source has history, it is judged only when its sign-ins concentrate on few devices, and the
// finding says how much history there was.
#pragma once

#include <memory>
#include <string>

#include "detectors/detector.h"
#include "detectors/distinct_counter.h"
#include "detectors/severity_ladder.h"

namespace portalwatch {

struct MultiAccountSourceConfig {
  TimeMs window_ms = 60 * kMinuteMs;
  /// Distinct accounts signed in from one address (or prefix) in the window, by severity.
  SeverityLadder ip_severity{0, 6, 15, 50};
  /// ... from one device id.
  SeverityLadder device_severity{0, 6, 15, 50};
  /// ... from one autonomous system (only small or quiet ones ever get there: history counts).
  SeverityLadder asn_severity{0, 50, 150, 500};
  bool by_ip = true, by_device = true, by_asn = true;
  /// The count must exceed history_factor × the source's busiest window of the previous period.
  double history_factor = 3.0;
  /// A source with no history yet (the first day, or an address never seen before) is judged
  /// only when its sign-ins came from few devices: at most this many distinct device ids per
  /// sign-in that carried one. People behind an office NAT or a carrier's gateway each bring their
  /// own device; one client working through a list does not. (Sign-ins without device ids are not
  /// held to this.)
  double new_source_max_devices_per_account = 0.3;
  TimeMs history_period_ms = 24 * kHourMs;
  std::size_t max_sources = 500'000;
  std::size_t max_devices = 500'000;
  std::size_t max_asns = 50'000;
};

MultiAccountSourceConfig read_multi_account_source_config(MapReader& cfg);
std::unique_ptr<Detector> make_multi_account_source(MapReader& cfg, const DetectorCommon& common);

class MultiAccountSourceDetector final : public Detector {
 public:
  MultiAccountSourceDetector(MultiAccountSourceConfig config, std::string name);
  std::string_view detector() const override { return "multi_account_source"; }
  void on_event(const Event& ev, FindingSink& out) override;
  void on_time(TimeMs watermark, FindingSink& out) override;
  FieldSet fields_used() const override;
  bool uses_source_class() const override { return config_.by_ip; }
  std::vector<TableStats> tables() const override;
  bool adopt_settings(Detector& next) override;

  struct Source {
    std::array<DistinctCounter<6>, 2> accounts;  // two half windows, 64 registers each
    std::array<DistinctCounter<5>, 2> devices;   // device ids of those sign-ins, 32 registers each
    std::array<std::uint16_t, 2> successes{};
    std::array<std::uint16_t, 2> device_sign_ins{};  // sign-ins that carried a device id
    std::int64_t half = 0;
    std::int32_t period = 0;           // history period of period_max
    std::uint16_t period_max = 0;      // busiest window this period
    std::uint16_t previous_max = 0;    // busiest window of the period before
    std::uint8_t history_periods = 0;  // periods of history (saturates)
    Episode episode;
    std::string first_account;  // first account of the episode (evidence)
  };

 private:
  void sign_in(Source& s, EntityType type, std::string_view entity_key,
               const SeverityLadder& ladder, double multiplier, std::string_view user,
               const Event& ev, FindingSink& out);

  MultiAccountSourceConfig config_;
  std::string name_;
  TimeMs half_ms_;
  KeyedTable<Source, IpAddress, IpHash> sources_;
  KeyedTable<Source> devices_;
  KeyedTable<Source, std::uint32_t, std::hash<std::uint32_t>> asns_;
  std::string user_buf_;
};

}  // namespace portalwatch
