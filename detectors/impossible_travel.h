// impossible_travel (entity: user): two consecutive sign-ins of one account whose great-circle
// distance over the time between them needs more than a configured speed (a commercial flight
// by default).
//
// Geolocation is not exact, least of all for mobile carriers, whose gateways place a phone in
// Missouri at Dallas or Chicago: each sign-in's position counts with its accuracy (larger for
// networks whose AS organisation names a mobile carrier), and only the distance beyond both
// accuracies counts. Sign-ins from configured VPN or corporate egress ranges, and from commercial
// VPN and hosting providers (by AS organisation name), say nothing about where the person is and
// are skipped, as are sign-ins through shared egress (sources:), whose position is the
// organisation's, not the person's. Positions come from source.geo.location on the event, or
// from a GeoIP database when the daemon has one (detectors/enrich.h); a position the database
// calls coarse counts with the accuracy it gives.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "detectors/detector.h"
#include "detectors/networks.h"
#include "detectors/severity_ladder.h"

namespace portalwatch {

struct ImpossibleTravelConfig {
  /// Speeds in km/h, by severity; a commercial flight is about 900.
  SeverityLadder severity{0, 1000, 3000, 0};
  double accuracy_km = 200;
  double mobile_accuracy_km = 800;
  /// AS organisation names containing any of these (case-insensitive) are mobile carriers.
  std::vector<std::string> mobile_networks{"wireless", "mobility", "mobile",
                                           "cellular", "lte",      "sprint"};
  /// Sign-ins from these networks (VPN concentrators, corporate egress) are not travel.
  std::vector<IpNetwork> vpn_networks;
  /// Nor are sign-ins from networks whose AS organisation names contain any of these
  /// (case-insensitive): commercial VPN and hosting providers place their exits anywhere, so their
  /// position says nothing about the person (anonymising infrastructure is account_takeover's
  /// business, not travel).
  std::vector<std::string> anonymizing_networks = default_anonymizing_networks();
  /// Elapsed time below this counts as this (two sign-ins in the same second are not infinitely
  /// fast).
  TimeMs min_elapsed_ms = kMinuteMs;
  /// A previous sign-in older than this is forgotten (and nothing is compared with it).
  TimeMs memory_ms = 7 * kDayMs;
  std::size_t max_accounts = 500'000;
};

ImpossibleTravelConfig read_impossible_travel_config(MapReader& cfg);
std::unique_ptr<Detector> make_impossible_travel(MapReader& cfg, const DetectorCommon& common);

/// Great-circle distance in km between two latitude/longitude points (haversine, mean radius).
double great_circle_km(double lat1, double lon1, double lat2, double lon2);

class ImpossibleTravelDetector final : public Detector {
 public:
  ImpossibleTravelDetector(ImpossibleTravelConfig config, std::string name);
  std::string_view detector() const override { return "impossible_travel"; }
  void on_event(const Event& ev, FindingSink& out) override;
  void on_time(TimeMs watermark, FindingSink& out) override;
  FieldSet fields_used() const override;
  bool uses_source_class() const override { return true; }
  std::vector<TableStats> tables() const override;
  bool adopt_settings(Detector& next) override;

  /// The account's last located sign-in.
  struct Account {
    TimeMs at = 0;
    float lat = 0, lon = 0;
    float accuracy_km = 0;
    std::array<char, 2> country{};
    IpAddress source;
    Episode episode;
  };

 private:

  ImpossibleTravelConfig config_;
  OrgClassifier orgs_;  ///< bit 0: anonymizing network, bit 1: mobile network
  static constexpr unsigned kAnonymizing = 1, kMobile = 2;
  std::string name_;
  KeyedTable<Account> accounts_;
  std::string user_buf_;
};

}  // namespace portalwatch
