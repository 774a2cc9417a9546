#include "daemon/geoip.h"

#include <arpa/inet.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "daemon/log.h"

namespace portalwatch {

namespace {

constexpr std::uint8_t kUnasked = 0xff;  // a cache slot's answer for a kind not yet looked up
constexpr TimeMs kStaleAfter = 90 * kDayMs;

// The address as libmaxminddb takes it, from the parsed form (no text round trip). An IPv4
// address goes as AF_INET, which libmaxminddb also finds in an IPv6 database's IPv4 subtree.
sockaddr_storage to_sockaddr(const IpAddress& a) {
  sockaddr_storage ss{};
  if (a.v4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, a.bytes.data() + 12, 4);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    std::memcpy(&sin6->sin6_addr, a.bytes.data(), 16);
  }
  return ss;
}

// The value at path in a record. false when the record has no such value; a damaged record also
// sets failed.
bool get(MMDB_entry_s& entry, std::initializer_list<const char*> path, MMDB_entry_data_s& data,
         bool& failed) {
  std::array<const char*, 5> p{};
  std::size_t n = 0;
  for (const char* s : path) p[n++] = s;
  p[n] = nullptr;
  const int status = MMDB_aget_value(&entry, &data, p.data());
  if (status == MMDB_SUCCESS) return data.has_data;
  // The record is shaped differently (a string where a map was expected...): the value is absent.
  if (status != MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR &&
      status != MMDB_INVALID_LOOKUP_PATH_ERROR)
    failed = true;
  return false;
}

// A string value: a view into the mapped file, valid while it is open. Empty when absent, empty or
// of another type.
std::string_view text(MMDB_entry_s& entry, std::initializer_list<const char*> path, bool& failed) {
  MMDB_entry_data_s data{};
  if (!get(entry, path, data, failed) || data.type != MMDB_DATA_TYPE_UTF8_STRING) return {};
  return {data.utf8_string, data.data_size};
}

// A coordinate: double (GeoLite2) or float (DB-IP as packaged), finite and within limit.
bool coordinate(MMDB_entry_s& entry, std::initializer_list<const char*> path, double limit,
                double& out, bool& failed) {
  MMDB_entry_data_s data{};
  if (!get(entry, path, data, failed)) return false;
  double v;
  if (data.type == MMDB_DATA_TYPE_DOUBLE)
    v = data.double_value;
  else if (data.type == MMDB_DATA_TYPE_FLOAT)
    v = data.float_value;
  else
    return false;
  if (!std::isfinite(v) || std::fabs(v) > limit) return false;
  out = v;
  return true;
}

// A non-negative integer of any of the record format's integer types; 0 when absent.
std::uint64_t unsigned_value(MMDB_entry_s& entry, std::initializer_list<const char*> path,
                             bool& failed) {
  MMDB_entry_data_s data{};
  if (!get(entry, path, data, failed)) return 0;
  switch (data.type) {
    case MMDB_DATA_TYPE_UINT16:
      return data.uint16;
    case MMDB_DATA_TYPE_UINT32:
      return data.uint32;
    case MMDB_DATA_TYPE_UINT64:
      return data.uint64;
    case MMDB_DATA_TYPE_INT32:
      return data.int32 > 0 ? static_cast<std::uint64_t>(data.int32) : 0;
    default:
      return 0;
  }
}

bool contains_word(std::string_view text, std::string_view lower_word) {
  std::string lower(text);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find(lower_word) != std::string::npos;
}

}  // namespace

std::string_view to_string(GeoDatabaseKind k) noexcept {
  switch (k) {
    case GeoDatabaseKind::kCity:
      return "city";
    case GeoDatabaseKind::kAsn:
      return "asn";
    case GeoDatabaseKind::kCount:
      break;
  }
  return "";
}

std::string_view to_string(GeoLookupResult r) noexcept {
  switch (r) {
    case GeoLookupResult::kFound:
      return "found";
    case GeoLookupResult::kNotFound:
      return "not_found";
    case GeoLookupResult::kError:
      return "error";
    case GeoLookupResult::kCount:
      break;
  }
  return "";
}

struct GeoIp::Database {
  MMDB_s mmdb{};
  bool opened = false;
  int ip_version = 6;
  ~Database() {
    if (opened) MMDB_close(&mmdb);
  }

  // nullptr with error naming the file and why it did not open.
  static std::unique_ptr<Database> open(const std::string& path, std::string& error) {
    const std::string what = "cannot open GeoIP database \"" + path + "\": ";
    // libmaxminddb's own reason for a missing file is only "Error opening the specified MaxMind DB
    // file"; the system's says which.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      error = what + std::strerror(errno);
      return nullptr;
    }
    if (S_ISDIR(st.st_mode)) {
      error = what + "is a directory";
      return nullptr;
    }
    auto db = std::make_unique<Database>();
    errno = 0;
    const int status = MMDB_open(path.c_str(), MMDB_MODE_MMAP, &db->mmdb);
    if (status != MMDB_SUCCESS) {
      const int saved_errno = errno;
      error = what + MMDB_strerror(status);
      if ((status == MMDB_FILE_OPEN_ERROR || status == MMDB_IO_ERROR) && saved_errno)
        error += std::string(" (") + std::strerror(saved_errno) + ")";
      return nullptr;
    }
    db->opened = true;
    db->ip_version = db->mmdb.metadata.ip_version;
    return db;
  }
};

struct GeoIp::CityRecord {
  std::string_view country;
  std::string_view region;
  std::string_view city;
  double lat = 0, lon = 0;
  float accuracy_km = 0;
  bool located = false;
  // ECS's region_iso_code ("US-MO") is built from the record's country and subdivision codes.
  std::array<char, 8> region_code{};
};

struct GeoIp::AsnRecord {
  std::uint32_t number = 0;
  std::string_view organization;
};

struct GeoIp::Slot {
  IpAddress address;
  bool used = false;
  std::uint8_t city_result = kUnasked;  // a GeoLookupResult once asked
  std::uint8_t asn_result = kUnasked;
  CityRecord city;
  AsnRecord asn;
};

GeoIp::GeoIp() : cache_(new Slot[kCacheSlots]) {}
GeoIp::~GeoIp() = default;

std::unique_ptr<GeoIp> GeoIp::open(const GeoIpConfig& config, std::string& error) {
  std::unique_ptr<GeoIp> g(new GeoIp());
  for (auto [kind, paths, dbs] :
       {std::tuple{GeoDatabaseKind::kCity, &config.city_databases, &g->city_},
        std::tuple{GeoDatabaseKind::kAsn, &config.asn_databases, &g->asn_}}) {
    for (const auto& path : *paths) {
      auto db = Database::open(path, error);
      if (!db) return nullptr;
      const MMDB_metadata_s& m = db->mmdb.metadata;
      GeoDatabaseInfo info;
      info.path = path;
      info.kind = kind;
      info.type = m.database_type ? m.database_type : "";
      info.built = static_cast<TimeMs>(m.build_epoch) * kSecondMs;
      info.node_count = m.node_count;
      info.ip_version = db->ip_version;
      g->infos_.push_back(std::move(info));
      dbs->push_back(std::move(db));
    }
  }
  return g;
}

GeoLookupResult GeoIp::lookup_city(const IpAddress& address, CityRecord& out) noexcept {
  out = CityRecord{};
  const sockaddr_storage ss = to_sockaddr(address);
  bool failed = false;
  for (const auto& db : city_) {
    if (!address.v4 && db->ip_version == 4) continue;  // an IPv4-only file knows no IPv6 address
    int mmdb_error = MMDB_SUCCESS;
    MMDB_lookup_result_s r =
        MMDB_lookup_sockaddr(&db->mmdb, reinterpret_cast<const sockaddr*>(&ss), &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS) {
      failed = true;
      continue;
    }
    if (!r.found_entry) continue;
    MMDB_entry_s& e = r.entry;
    bool damaged = false;
    // GeoLite2-City's nested schema first.
    bool located = coordinate(e, {"location", "latitude"}, 90, out.lat, damaged) &&
                   coordinate(e, {"location", "longitude"}, 180, out.lon, damaged);
    out.country = text(e, {"country", "iso_code"}, damaged);
    out.city = text(e, {"city", "names", "en"}, damaged);
    if (located || !out.country.empty() || !out.city.empty()) {
      out.accuracy_km =
          static_cast<float>(unsigned_value(e, {"location", "accuracy_radius"}, damaged));
      const std::string_view subdivision = text(e, {"subdivisions", "0", "iso_code"}, damaged);
      if (out.country.size() == 2 && !subdivision.empty() && subdivision.size() <= 3) {
        std::memcpy(out.region_code.data(), out.country.data(), 2);
        out.region_code[2] = '-';
        std::memcpy(out.region_code.data() + 3, subdivision.data(), subdivision.size());
        out.region = {out.region_code.data(), 3 + subdivision.size()};
      }
    } else {
      // The flat schema of DB-IP's database as packaged by @ip-location-db. Its state1 is a name
      // ("Virginia"), not the ISO code source.geo.region_iso_code holds, so region stays empty.
      located = coordinate(e, {"latitude"}, 90, out.lat, damaged) &&
                coordinate(e, {"longitude"}, 180, out.lon, damaged);
      out.country = text(e, {"country_code"}, damaged);
      out.city = text(e, {"city"}, damaged);
    }
    if (damaged) {
      out = CityRecord{};
      failed = true;
      continue;
    }
    out.located = located;
    return GeoLookupResult::kFound;
  }
  return failed ? GeoLookupResult::kError : GeoLookupResult::kNotFound;
}

GeoLookupResult GeoIp::lookup_asn(const IpAddress& address, AsnRecord& out) noexcept {
  out = AsnRecord{};
  const sockaddr_storage ss = to_sockaddr(address);
  bool failed = false;
  for (const auto& db : asn_) {
    if (!address.v4 && db->ip_version == 4) continue;
    int mmdb_error = MMDB_SUCCESS;
    MMDB_lookup_result_s r =
        MMDB_lookup_sockaddr(&db->mmdb, reinterpret_cast<const sockaddr*>(&ss), &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS) {
      failed = true;
      continue;
    }
    if (!r.found_entry) continue;
    bool damaged = false;
    const std::uint64_t number = unsigned_value(r.entry, {"autonomous_system_number"}, damaged);
    out.organization = text(r.entry, {"autonomous_system_organization"}, damaged);
    if (damaged) {
      out = AsnRecord{};
      failed = true;
      continue;
    }
    out.number = number <= UINT32_MAX ? static_cast<std::uint32_t>(number) : 0;
    return GeoLookupResult::kFound;
  }
  return failed ? GeoLookupResult::kError : GeoLookupResult::kNotFound;
}

void GeoIp::enrich(Event& ev, FieldSet wanted) noexcept {
  const bool need_city = !city_.empty() && (wanted & kGeoFields) && !ev.has_geo_location;
  const bool need_asn = !asn_.empty() && (wanted & kAsFields) && ev.as_number == 0;
  if (!need_city && !need_asn) return;
  Slot& slot = cache_[ev.source_ip.hash() & (kCacheSlots - 1)];
  if (!slot.used || !(slot.address == ev.source_ip)) {
    slot.address = ev.source_ip;
    slot.used = true;
    slot.city_result = slot.asn_result = kUnasked;
  }
  if (need_city) {
    if (slot.city_result == kUnasked)
      slot.city_result = static_cast<std::uint8_t>(lookup_city(ev.source_ip, slot.city));
    else
      ++stats_.cache_hits;
    ++stats_.lookups[static_cast<size_t>(GeoDatabaseKind::kCity)][slot.city_result];
    const CityRecord& r = slot.city;
    if (slot.city_result == static_cast<std::uint8_t>(GeoLookupResult::kFound)) {
      if (r.located) {
        ev.geo_lat = r.lat;
        ev.geo_lon = r.lon;
        ev.geo_accuracy_km = r.accuracy_km;
        ev.has_geo_location = true;
      }
      if (ev.geo_country.empty()) ev.geo_country = r.country;
      if (ev.geo_region.empty()) ev.geo_region = r.region;
      if (ev.geo_city.empty()) ev.geo_city = r.city;
    }
  }
  if (need_asn) {
    if (slot.asn_result == kUnasked)
      slot.asn_result = static_cast<std::uint8_t>(lookup_asn(ev.source_ip, slot.asn));
    else
      ++stats_.cache_hits;
    ++stats_.lookups[static_cast<size_t>(GeoDatabaseKind::kAsn)][slot.asn_result];
    if (slot.asn_result == static_cast<std::uint8_t>(GeoLookupResult::kFound)) {
      ev.as_number = slot.asn.number;
      if (ev.as_org.empty()) ev.as_org = slot.asn.organization;
    }
  }
}

std::string check_geoip_database(const std::string& path) {
  std::string error;
  return GeoIp::Database::open(path, error) ? std::string() : error;
}

std::vector<std::string> geoip_coverage_notes(const Config& config) {
  std::vector<std::string> notes;
  const bool city = !config.geoip.city_databases.empty();
  const bool asn = !config.geoip.asn_databases.empty();
  std::string country_readers, as_readers;
  for (const auto& d : config.detectors) {
    const FieldSet used = d.detector->fields_used();
    const std::string& name = d.common.name;
    if (!city && (used & (field_bit(Field::kGeoLat) | field_bit(Field::kGeoLon)))) {
      notes.push_back(name +
                      ": no GeoIP city database (geoip.city_databases): only events that carry "
                      "source.geo.location are judged");
    } else if (!city && ((used & field_bit(Field::kGeoCountry)) || d.detector->uses_profiles())) {
      country_readers += (country_readers.empty() ? "" : ", ") + name;
    }
    if (!asn && (used & kAsFields)) as_readers += (as_readers.empty() ? "" : ", ") + name;
  }
  if (!country_readers.empty())
    notes.push_back(country_readers +
                    ": no GeoIP city database (geoip.city_databases): an event's country is "
                    "known only when it carries source.geo.country_iso_code");
  if (!as_readers.empty())
    notes.push_back(as_readers +
                    ": no GeoIP ASN database (geoip.asn_databases): an event's network (AS) is "
                    "known only when it carries source.as");
  return notes;
}

std::unique_ptr<GeoIp> start_geoip(const Config& config, const Clock& clock, std::string& error) {
  for (const auto& note : geoip_coverage_notes(config)) spdlog::info("{}", note);
  if (!config.geoip.enabled()) return nullptr;
  auto geoip = GeoIp::open(config.geoip, error);
  if (!geoip) return nullptr;
  const TimeMs now = clock.now();
  for (const auto& db : geoip->databases()) {
    spdlog::info("geoip: {} database {}: type \"{}\", built {}, {} nodes{}", to_string(db.kind),
                 db.path, db.type, format_rfc3339(db.built).substr(0, 10), db.node_count,
                 db.ip_version == 4 ? ", IPv4 only" : "");
    if (now - db.built > kStaleAfter)
      spdlog::warn(
          "geoip: {} was built {} days ago; addresses move between networks and places, so update "
          "it",
          db.path, (now - db.built) / kDayMs);
    // The kinds read different keys: a database in the wrong list finds records and fills nothing.
    if (db.kind == GeoDatabaseKind::kCity && contains_word(db.type, "asn"))
      spdlog::warn(
          "geoip: {} (type \"{}\") looks like an ASN database but is listed in "
          "geoip.city_databases",
          db.path, db.type);
    if (db.kind == GeoDatabaseKind::kAsn && contains_word(db.type, "city"))
      spdlog::warn(
          "geoip: {} (type \"{}\") looks like a city database but is listed in geoip.asn_databases",
          db.path, db.type);
  }
  return geoip;
}

}  // namespace portalwatch
