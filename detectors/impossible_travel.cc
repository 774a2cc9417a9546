#include "detectors/impossible_travel.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace portalwatch {

ImpossibleTravelConfig read_impossible_travel_config(MapReader& cfg) {
  ImpossibleTravelConfig c;
  c.severity.read(cfg, "severity_speed_kmh");
  c.accuracy_km = cfg.get_double("accuracy_km", c.accuracy_km, 0, 5000);
  c.mobile_accuracy_km = cfg.get_double("mobile_accuracy_km", c.mobile_accuracy_km, 0, 5000);
  c.mobile_networks = cfg.get_string_list("mobile_networks", c.mobile_networks);
  c.anonymizing_networks = cfg.get_string_list("anonymizing_networks", c.anonymizing_networks);
  lower_patterns(c.mobile_networks);
  lower_patterns(c.anonymizing_networks);
  const auto vpn = cfg.child("vpn_networks");
  for (const auto& item : vpn.elements()) {
    const auto text = item.as_string();
    if (!text) continue;
    if (auto n = IpNetwork::parse(*text))
      c.vpn_networks.push_back(*n);
    else
      item.error("\"" + *text + "\" is not an address or CIDR network");
  }
  c.min_elapsed_ms =
      cfg.get_int("min_elapsed_seconds", c.min_elapsed_ms / kSecondMs, 1, 3600) * kSecondMs;
  c.memory_ms =
      cfg.get_int("memory_seconds", c.memory_ms / kSecondMs, 3600, 90 * 86400) * kSecondMs;
  c.max_accounts = static_cast<std::size_t>(
      cfg.get_int("max_accounts", static_cast<std::int64_t>(c.max_accounts), 16, 100'000'000));
  return c;
}

std::unique_ptr<Detector> make_impossible_travel(MapReader& cfg, const DetectorCommon& common) {
  return std::make_unique<ImpossibleTravelDetector>(read_impossible_travel_config(cfg),
                                                    common.name);
}

double great_circle_km(double lat1, double lon1, double lat2, double lon2) {
  constexpr double kRadians = M_PI / 180.0, kEarthKm = 6371.0088;
  const double dlat = (lat2 - lat1) * kRadians, dlon = (lon2 - lon1) * kRadians;
  const double a = std::sin(dlat / 2) * std::sin(dlat / 2) +
                   std::cos(lat1 * kRadians) * std::cos(lat2 * kRadians) * std::sin(dlon / 2) *
                       std::sin(dlon / 2);
  return 2 * kEarthKm * std::asin(std::min(1.0, std::sqrt(a)));
}

ImpossibleTravelDetector::ImpossibleTravelDetector(ImpossibleTravelConfig config, std::string name)
    : config_(std::move(config)),
      orgs_({config_.anonymizing_networks, config_.mobile_networks}),
      name_(std::move(name)),
      accounts_("accounts", config_.max_accounts, config_.memory_ms) {}

FieldSet ImpossibleTravelDetector::fields_used() const {
  return kAlwaysDecodedFields | field_bit(Field::kGeoLat) | field_bit(Field::kGeoLon) |
         field_bit(Field::kGeoCountry) | field_bit(Field::kGeoCity) | field_bit(Field::kAsOrgName);
}

void ImpossibleTravelDetector::on_event(const Event& ev, FindingSink& out) {
  if (ev.action != Action::kLogin || ev.outcome != Outcome::kSuccess || ev.user_name.empty() ||
      !ev.has_geo_location)
    return;
  for (const auto& n : config_.vpn_networks)
    if (n.contains(ev.source_ip)) return;  // says nothing about where the person is
  const unsigned org_kinds = orgs_.kinds(ev.as_org);
  if (org_kinds & kAnonymizing) return;
  // Shared egress (a configured trusted network, or learned from many accounts signing in through
  // it) is where the organisation's network leaves, not where the person is.
  if (!ev.source_class.empty()) return;
  const std::string_view user = ev.folded_user(user_buf_);
  Account& a = accounts_.upsert(user, ev.time);
  // A position its source calls coarse (a GeoIP record of a whole country) counts as that coarse.
  const double accuracy = std::max<double>((org_kinds & kMobile) != 0
                                               ? config_.mobile_accuracy_km
                                               : config_.accuracy_km,
                                           ev.geo_accuracy_km);
  const Account before = a;
  a.at = ev.time;
  a.lat = static_cast<float>(ev.geo_lat);
  a.lon = static_cast<float>(ev.geo_lon);
  a.accuracy_km = static_cast<float>(accuracy);
  a.country = {ev.geo_country.size() > 0 ? ev.geo_country[0] : '\0',
               ev.geo_country.size() > 1 ? ev.geo_country[1] : '\0'};
  a.source = ev.source_ip;
  if (before.at == 0 || ev.time < before.at || ev.time - before.at > config_.memory_ms) return;

  const double distance = great_circle_km(before.lat, before.lon, ev.geo_lat, ev.geo_lon);
  const double beyond = distance - before.accuracy_km - accuracy;
  if (beyond <= 0) return;
  const TimeMs elapsed = std::max(ev.time - before.at, config_.min_elapsed_ms);
  const double speed = beyond / (static_cast<double>(elapsed) / static_cast<double>(kHourMs));
  const auto severity = config_.severity.at(static_cast<std::int64_t>(speed));
  if (!severity || !a.episode.report(*severity, ev.time, config_.memory_ms)) return;

  Finding f = make_finding(detector(), name_, *severity, EntityType::kUser, std::string(user),
                           ev.time, ev.time - before.at);
  const std::string from_country(before.country.data(), before.country[1]   ? 2
                                                        : before.country[0] ? 1
                                                                            : 0);
  char text[200];
  std::snprintf(text, sizeof text,
                " signed in %.0f km away %s after the last sign-in (at least %.0f km/h)", distance,
                format_duration(ev.time - before.at).c_str(), speed);
  f.summary = f.entity + text;
  f.evidence.add("distance_km", std::round(distance));
  f.evidence.add("distance_beyond_accuracy_km", std::round(beyond));
  f.evidence.add("elapsed_seconds", (ev.time - before.at) / kSecondMs);
  f.evidence.add("speed_kmh", std::round(speed));
  f.evidence.add("from_source", before.source.to_string());
  if (!from_country.empty()) f.evidence.add("from_country", from_country);
  f.evidence.add("from_location",
                 std::vector<std::string>{std::to_string(before.lat), std::to_string(before.lon)});
  f.evidence.add("source", ev.source_ip.to_string());
  if (!ev.geo_country.empty()) f.evidence.add("country", ev.geo_country);
  if (!ev.geo_city.empty()) f.evidence.add("city", ev.geo_city);
  f.evidence.add("location",
                 std::vector<std::string>{std::to_string(ev.geo_lat), std::to_string(ev.geo_lon)});
  f.evidence.add("max_speed_kmh", config_.severity.lowest_step());
  out.emit(std::move(f));
}

void ImpossibleTravelDetector::on_time(TimeMs watermark, FindingSink&) {
  accounts_.maybe_expire(watermark);
}

std::vector<TableStats> ImpossibleTravelDetector::tables() const {
  return {accounts_.stats(KeyedTable<Account>::kBytesPerKey)};
}

// A reload keeps the counted state unless the new settings change its layout (see Detector).
bool ImpossibleTravelDetector::adopt_settings(Detector& next) {
  auto* n = dynamic_cast<ImpossibleTravelDetector*>(&next);
  if (!n || !(config_.memory_ms == n->config_.memory_ms)) return false;
  config_ = n->config_;
  orgs_ = OrgClassifier({config_.anonymizing_networks, config_.mobile_networks});
  accounts_.set_capacity(config_.max_accounts);
  return true;
}

}  // namespace portalwatch
