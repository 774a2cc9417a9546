// GeoIP enrichment from local MaxMind-format databases (libmaxminddb): the position, place and AS
// of events that arrive without source.geo / source.as. Optional: without a database, detectors
// that need coordinates judge only the events that carry them (and say so at start-up).
//
// City databases may use GeoLite2-City's nested schema (country.iso_code, subdivisions[0].iso_code,
// city.names.en, location.latitude/longitude/accuracy_radius) or the flat one of DB-IP's city
// database as packaged by @ip-location-db (country_code, state1, city, latitude, longitude); ASN
// databases GeoLite2-ASN's (autonomous_system_number, autonomous_system_organization).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "daemon/config.h"
#include "detectors/enrich.h"
#include "detectors/time.h"

namespace portalwatch {

/// Where `tools/setup` installs DB-IP's city database (IP geolocation by DB-IP, CC BY 4.0).
inline constexpr const char* kInstalledGeoIpDirectory = "/usr/local/share/portalwatch/geoip";

/// Which kind of database a lookup asked; a metric label value.
enum class GeoDatabaseKind : std::uint8_t { kCity, kAsn, kCount };
/// How a lookup ended; a metric label value.
enum class GeoLookupResult : std::uint8_t { kFound, kNotFound, kError, kCount };
inline constexpr std::size_t kGeoDatabaseKindCount =
    static_cast<std::size_t>(GeoDatabaseKind::kCount);
inline constexpr std::size_t kGeoLookupResultCount =
    static_cast<std::size_t>(GeoLookupResult::kCount);
std::string_view to_string(GeoDatabaseKind k) noexcept;
std::string_view to_string(GeoLookupResult r) noexcept;

struct GeoIpStats {
  /// Events that needed a kind of database, by how the lookup ended (from the cache or not).
  std::array<std::array<std::uint64_t, kGeoLookupResultCount>, kGeoDatabaseKindCount> lookups{};
  /// Of those, answered from the cache of recent addresses.
  std::uint64_t cache_hits = 0;
};

/// What the start-up log says of one opened database (its metadata).
struct GeoDatabaseInfo {
  std::string path;
  GeoDatabaseKind kind = GeoDatabaseKind::kCity;
  std::string type;  ///< metadata database_type ("GeoLite2-City", "city ipv4"...)
  TimeMs built = 0;  ///< metadata build_epoch
  std::uint32_t node_count = 0;
  int ip_version = 6;  ///< 4: an IPv4-only database, not asked about IPv6 addresses
};

/// An Enricher over one or more .mmdb files, memory-mapped. Not thread-safe (one engine thread);
/// the strings it puts in events point into the mapped files or its cache.
class GeoIp final : public Enricher {
 public:
  /// Opens every database; nullptr with error naming the file and libmaxminddb's reason when one
  /// cannot be opened.
  static std::unique_ptr<GeoIp> open(const GeoIpConfig& config, std::string& error);
  ~GeoIp() override;
  GeoIp(const GeoIp&) = delete;
  GeoIp& operator=(const GeoIp&) = delete;

  void enrich(Event& ev, FieldSet wanted) noexcept override;

  const GeoIpStats& stats() const { return stats_; }
  const std::vector<GeoDatabaseInfo>& databases() const { return infos_; }
  bool has_city() const { return !city_.empty(); }
  bool has_asn() const { return !asn_.empty(); }

 private:
  friend std::string check_geoip_database(const std::string& path);
  struct Database;
  struct CityRecord;
  struct AsnRecord;
  struct Slot;
  GeoIp();
  GeoLookupResult lookup_city(const IpAddress& address, CityRecord& out) noexcept;
  GeoLookupResult lookup_asn(const IpAddress& address, AsnRecord& out) noexcept;

  std::vector<std::unique_ptr<Database>> city_;
  std::vector<std::unique_ptr<Database>> asn_;
  std::vector<GeoDatabaseInfo> infos_;
  // A direct-mapped cache of recent addresses: a source seen again costs a hash and a compare.
  static constexpr std::size_t kCacheSlots = 4096;
  std::unique_ptr<Slot[]> cache_;
  GeoIpStats stats_;
};

/// Opens one database only to see that it opens (configuration checks): "" when it does, else
/// the reason, naming the file.
std::string check_geoip_database(const std::string& path);

/// Opens the configured databases (nullptr, and no error, when none are configured), logs each
/// one's type, build date and size (a warning when it is older than 90 days by `clock`), and notes
/// which enabled detectors go without what no database provides.
std::unique_ptr<GeoIp> start_geoip(const Config& config, const Clock& clock, std::string& error);

/// The start-up notes of start_geoip about detectors that read what no database fills: one line
/// per detector instance, e.g. "impossible_travel: no GeoIP city database (geoip.city_databases):
/// only events that carry source.geo.location are judged".
std::vector<std::string> geoip_coverage_notes(const Config& config);

}  // namespace portalwatch
