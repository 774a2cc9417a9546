// GeoIP enrichment over the small databases tests/data/make_test_mmdb.pl writes at build time:
// both city schemas, IPv4 and IPv6, databases tried in order, what an event already carries left
// alone, the cache, damaged and missing files, the configuration section, and impossible_travel
// judging sign-ins that arrive without source.geo.
#include "daemon/geoip.h"

#include <doctest/doctest.h>
#include <prometheus/registry.h>

#include <cstdio>
#include <fstream>

#include "daemon/metrics.h"
#include "detectors/impossible_travel.h"
#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Collect;
using test::Ev;

namespace {

const std::string kDir = PORTALWATCH_TEST_MMDB_DIR;
const std::string kNested = kDir + "/city-nested.mmdb";
const std::string kFlat = kDir + "/city-flat-ipv4.mmdb";
const std::string kAsn = kDir + "/asn.mmdb";
const std::string kOdd = kDir + "/city-odd.mmdb";
constexpr FieldSet kWanted = kGeoFields | kAsFields;
const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");

std::unique_ptr<GeoIp> open_geoip(std::vector<std::string> city,
                                  std::vector<std::string> asn = {}) {
  std::string error;
  auto g = GeoIp::open(GeoIpConfig{std::move(city), std::move(asn)}, error);
  REQUIRE_MESSAGE(g, error);
  return g;
}

Event from(const char* ip) {
  Event ev;
  ev.source_ip_text = ip;
  ev.source_ip = *IpAddress::parse(ip);
  return ev;
}

Event enriched(GeoIp& g, const char* ip, FieldSet wanted = kWanted) {
  Event ev = from(ip);
  g.enrich(ev, wanted);
  return ev;
}

std::uint64_t lookups(const GeoIp& g, GeoDatabaseKind k, GeoLookupResult r) {
  return g.stats().lookups[static_cast<size_t>(k)][static_cast<size_t>(r)];
}

Engine travel_engine(Enricher* enricher) {
  EngineOptions o;
  o.time.reference = TimeOptions::Reference::kStream;
  std::vector<DetectorInstance> list;
  list.push_back(
      {DetectorCommon{"impossible_travel", "impossible_travel"},
       std::make_unique<ImpossibleTravelDetector>(ImpossibleTravelConfig{}, "impossible_travel")});
  return Engine(o, std::move(list), nullptr, nullptr, enricher);
}

// A sign-in of jdoe42 that carries no source.geo and no source.as.
Ev bare_sign_in(TimeMs t, const std::string& ip) { return Ev{}.at(t).as("jdoe42").from(ip).ok(); }

}  // namespace

TEST_CASE("geoip: GeoLite2's nested schema, IPv4 and IPv6") {
  auto g = open_geoip({kNested});
  Event ev = enriched(*g, "192.0.2.5");
  CHECK(ev.has_geo_location);
  CHECK(ev.geo_lat == doctest::Approx(38.5767));
  CHECK(ev.geo_lon == doctest::Approx(-92.1735));
  CHECK(ev.geo_accuracy_km == 20);
  CHECK(ev.geo_country == "US");
  CHECK(ev.geo_region == "US-MO");  // ECS region_iso_code, from country and subdivision
  CHECK(ev.geo_city == "Jefferson City");

  ev = enriched(*g, "2001:db8:1::5");
  CHECK(ev.has_geo_location);
  CHECK(ev.geo_city == "Tokyo");
  CHECK(ev.geo_region == "JP-13");
  CHECK(ev.geo_lon == doctest::Approx(139.6917));

  // An IPv4-mapped IPv6 address is the IPv4 host.
  CHECK(enriched(*g, "::ffff:192.0.2.5").geo_city == "Jefferson City");
  CHECK(lookups(*g, GeoDatabaseKind::kCity, GeoLookupResult::kFound) == 3);
}

TEST_CASE(
    "geoip: DB-IP's flat schema (float coordinates, no region code); IPv6 skips an IPv4-only "
    "file") {
  auto g = open_geoip({kFlat});
  Event ev = enriched(*g, "192.0.2.5");
  CHECK(ev.has_geo_location);
  CHECK(ev.geo_lat == doctest::Approx(37.2279).epsilon(1e-5));
  CHECK(ev.geo_lon == doctest::Approx(-77.4019).epsilon(1e-5));
  CHECK(ev.geo_accuracy_km == 0);
  CHECK(ev.geo_country == "US");
  CHECK(ev.geo_region.empty());  // state1 is a name ("Virginia"), not region_iso_code
  CHECK(ev.geo_city == "Petersburg");

  ev = enriched(*g, "2001:db8:1::5");
  CHECK_FALSE(ev.has_geo_location);
  CHECK(lookups(*g, GeoDatabaseKind::kCity, GeoLookupResult::kNotFound) == 1);
  CHECK(lookups(*g, GeoDatabaseKind::kCity, GeoLookupResult::kError) == 0);
}

TEST_CASE("geoip: databases are asked in order until one has the address") {
  auto flat_first = open_geoip({kFlat, kNested});
  CHECK(enriched(*flat_first, "192.0.2.5").geo_city == "Petersburg");
  CHECK(enriched(*flat_first, "198.51.100.7").geo_city == "Kyiv");  // only in the second
  CHECK(enriched(*flat_first, "2001:db8:1::5").geo_city == "Tokyo");
  auto nested_first = open_geoip({kNested, kFlat});
  CHECK(enriched(*nested_first, "192.0.2.5").geo_city == "Jefferson City");
  CHECK(enriched(*nested_first, "203.0.113.200").geo_city == "Sydney");
}

TEST_CASE("geoip: an address no database knows is left as it was") {
  auto g = open_geoip({kNested, kFlat}, {kAsn});
  const Event ev = enriched(*g, "8.8.8.8");
  CHECK_FALSE(ev.has_geo_location);
  CHECK(ev.geo_lat == 0);
  CHECK(ev.geo_country.empty());
  CHECK(ev.geo_city.empty());
  CHECK(ev.as_number == 0);
  CHECK(ev.as_org.empty());
  CHECK(lookups(*g, GeoDatabaseKind::kCity, GeoLookupResult::kNotFound) == 1);
  CHECK(lookups(*g, GeoDatabaseKind::kAsn, GeoLookupResult::kNotFound) == 1);
}

TEST_CASE("geoip: what the event carries wins") {
  auto g = open_geoip({kNested}, {kAsn});
  Event ev = from("192.0.2.5");
  ev.has_geo_location = true;
  ev.geo_lat = 48.8566, ev.geo_lon = 2.3522;
  ev.geo_country = "FR";
  ev.as_number = 3215;
  ev.as_org = "Orange S.A.";
  g->enrich(ev, kWanted);
  CHECK(ev.geo_lat == 48.8566);
  CHECK(ev.geo_lon == 2.3522);
  CHECK(ev.geo_country == "FR");
  CHECK(ev.geo_city.empty());  // a located event is not looked up at all
  CHECK(ev.as_number == 3215);
  CHECK(ev.as_org == "Orange S.A.");
  CHECK(g->stats().cache_hits == 0);
  CHECK(lookups(*g, GeoDatabaseKind::kCity, GeoLookupResult::kFound) == 0);
  CHECK(lookups(*g, GeoDatabaseKind::kAsn, GeoLookupResult::kFound) == 0);

  // No position but a country from upstream: the position is filled, the country kept.
  ev = from("192.0.2.5");
  ev.geo_country = "FR";
  g->enrich(ev, kWanted);
  CHECK(ev.has_geo_location);
  CHECK(ev.geo_country == "FR");
  CHECK(ev.geo_city == "Jefferson City");
}

TEST_CASE("geoip: an event without source.as gets the AS number and organisation") {
  auto g = open_geoip({}, {kAsn});
  Event ev = enriched(*g, "192.0.2.5");
  CHECK(ev.as_number == 64500);
  CHECK(ev.as_org == "Example Wireless");
  CHECK_FALSE(ev.has_geo_location);  // no city database
  ev = enriched(*g, "2001:db8:ffff::1");
  CHECK(ev.as_number == 64501);
  CHECK(ev.as_org == "Example Hosting LLC");
  // A number from upstream without an organisation keeps its number and gets no other's name.
  ev = from("192.0.2.5");
  ev.as_number = 7018;
  g->enrich(ev, kWanted);
  CHECK(ev.as_number == 7018);
  CHECK(ev.as_org.empty());
}

TEST_CASE("geoip: only what a detector reads is looked up") {
  auto g = open_geoip({kNested}, {kAsn});
  Event ev = enriched(*g, "192.0.2.5", kAsFields);
  CHECK(ev.as_number == 64500);
  CHECK_FALSE(ev.has_geo_location);
  ev = enriched(*g, "192.0.2.5", field_bit(Field::kGeoLat) | field_bit(Field::kGeoLon));
  CHECK(ev.has_geo_location);
  CHECK(ev.as_number == 0);
}

TEST_CASE("geoip: the cache answers a repeated address the same, and a colliding one correctly") {
  auto g = open_geoip({kNested}, {kAsn});
  const Event first = enriched(*g, "192.0.2.5");
  const Event again = enriched(*g, "192.0.2.5");
  CHECK(again.geo_city == first.geo_city);
  CHECK(again.geo_city.data() == first.geo_city.data());  // the same bytes of the mapped file
  CHECK(again.geo_region == "US-MO");
  CHECK(again.geo_lat == first.geo_lat);
  CHECK(again.as_number == 64500);
  CHECK(g->stats().cache_hits == 2);  // city and AS
  CHECK(lookups(*g, GeoDatabaseKind::kCity, GeoLookupResult::kFound) == 2);

  // Two addresses of different cities that share a cache slot take turns in it.
  std::string a, b;
  for (int i = 0; i < 256 && a.empty(); ++i)
    for (int j = 0; j < 256; ++j) {
      const std::string x = test::ipv4(192, 0, 2, i), y = test::ipv4(198, 51, 100, j);
      if (((IpAddress::parse(x)->hash() ^ IpAddress::parse(y)->hash()) & 4095) == 0) {
        a = x, b = y;
        break;
      }
    }
  REQUIRE_FALSE(a.empty());
  auto fresh = open_geoip({kNested});
  CHECK(enriched(*fresh, a.c_str()).geo_city == "Jefferson City");
  CHECK(enriched(*fresh, b.c_str()).geo_city == "Kyiv");
  CHECK(enriched(*fresh, a.c_str()).geo_city == "Jefferson City");
  CHECK(fresh->stats().cache_hits == 0);
}

TEST_CASE("geoip: a record with unexpected values fills nothing and does not crash") {
  auto g = open_geoip({kOdd});
  const Event ev = enriched(*g, "192.0.2.5");
  CHECK_FALSE(ev.has_geo_location);  // latitude "north", longitude 500
  CHECK(ev.geo_country.empty());     // a string where a map was expected
  CHECK(ev.geo_city.empty());        // a number
  CHECK(lookups(*g, GeoDatabaseKind::kCity, GeoLookupResult::kError) == 0);
}

TEST_CASE("geoip: a missing, damaged or wrong file is an error naming it and the reason") {
  std::string error;
  CHECK_FALSE(GeoIp::open(GeoIpConfig{{kNested, "/nonexistent/city.mmdb"}, {}}, error));
  CHECK(error ==
        "cannot open GeoIP database \"/nonexistent/city.mmdb\": No such file or directory");

  const std::string damaged = kDir + "/damaged.mmdb";
  {
    std::ofstream out(damaged, std::ios::binary);
    out << std::string(4096, 'x');
  }
  error.clear();
  CHECK_FALSE(GeoIp::open(GeoIpConfig{{}, {damaged}}, error));
  CHECK(error == "cannot open GeoIP database \"" + damaged +
                     "\": The MaxMind DB file contains invalid metadata");
  CHECK(check_geoip_database(damaged) == error);
  std::remove(damaged.c_str());

  CHECK(check_geoip_database(kDir) ==
        "cannot open GeoIP database \"" + kDir + "\": is a directory");
  CHECK(check_geoip_database(kNested).empty());
}

TEST_CASE("geoip: configuration, with an unopenable file reported at its list item") {
  const std::string good = R"(
geoip:
  city_databases:
    - )" + kFlat + R"(
    - )" + kNested + R"(
  asn_databases: [)" + kAsn +
                           R"(]
)";
  const ConfigResult ok = load_config_text(good, "test.yaml");
  REQUIRE_MESSAGE(ok.config, ok.errors);
  CHECK(ok.config->geoip.city_databases == std::vector<std::string>{kFlat, kNested});
  CHECK(ok.config->geoip.asn_databases == std::vector<std::string>{kAsn});

  const ConfigResult bad = load_config_text(R"(
geoip:
  city_databases:
    - )" + kFlat + R"(
    - /nonexistent/city.mmdb
  asn_databases: ""
  asn_database: []
)",
                                            "test.yaml");
  REQUIRE_FALSE(bad.config);
  CHECK_MESSAGE(
      bad.errors.find("test.yaml:5:7: geoip.city_databases[1]: cannot open GeoIP database "
                      "\"/nonexistent/city.mmdb\": No such file or directory") != std::string::npos,
      bad.errors);
  CHECK_MESSAGE(bad.errors.find("geoip.asn_databases: expected a list") != std::string::npos,
                bad.errors);
  CHECK_MESSAGE(
      bad.errors.find(
          "geoip.asn_database: unknown key \"asn_database\" (did you mean \"asn_databases\"?)") !=
          std::string::npos,
      bad.errors);

  // The shipped default names none: production sets its own paths.
  const ConfigResult def = load_config(std::nullopt);
  REQUIRE(def.config);
  CHECK_FALSE(def.config->geoip.enabled());
}

TEST_CASE("geoip: start-up notes name the detectors that go without") {
  ConfigResult r = load_config(std::nullopt);
  REQUIRE(r.config);
  auto notes = geoip_coverage_notes(*r.config);
  auto has = [&](const std::string& text) {
    for (const auto& n : notes)
      if (n.find(text) != std::string::npos) return true;
    return false;
  };
  CHECK(has(
      "impossible_travel: no GeoIP city database (geoip.city_databases): only events that carry "
      "source.geo.location are judged"));
  CHECK(has("account_takeover"));  // the profiles' countries
  CHECK(has("no GeoIP ASN database (geoip.asn_databases)"));

  r.config->geoip.city_databases = {kNested};
  r.config->geoip.asn_databases = {kAsn};
  notes = geoip_coverage_notes(*r.config);
  CHECK(notes.empty());
}

TEST_CASE("geoip: impossible_travel judges sign-ins that arrive without source.geo") {
  auto g = open_geoip({kNested});
  Collect with, without;
  Engine enriched_engine = travel_engine(g.get());
  Engine bare_engine = travel_engine(nullptr);
  for (Engine* e : {&enriched_engine, &bare_engine}) {
    Collect& out = e == &enriched_engine ? with : without;
    test::feed(*e, bare_sign_in(kT0, "192.0.2.5"), out);                      // Jefferson City
    test::feed(*e, bare_sign_in(kT0 + 40 * kMinuteMs, "198.51.100.7"), out);  // Kyiv
  }
  REQUIRE(with.findings.size() == 1);
  const Finding& f = with.findings[0];
  CHECK(f.detector == "impossible_travel");
  CHECK(f.entity == "jdoe42");
  CHECK(f.severity == Severity::kHigh);
  CHECK(*f.evidence.get("from_country") == "\"US\"");
  CHECK(*f.evidence.get("country") == "\"UA\"");
  CHECK(*f.evidence.get("city") == "\"Kyiv\"");
  // Without a database there is no position, and the detector skips both.
  CHECK(without.findings.empty());
  CHECK(lookups(*g, GeoDatabaseKind::kCity, GeoLookupResult::kFound) == 2);

  // The metrics count the lookups by kind and result, with no address in any label.
  Metrics metrics(enriched_engine, g.get());
  metrics.sync(enriched_engine);
  bool counted = false;
  for (const auto& family : metrics.registry().Collect()) {
    if (family.name != "portalwatch_geoip_lookups_total") continue;
    for (const auto& m : family.metric) {
      REQUIRE(m.label.size() == 2);
      if (m.label[0].value == "city" && m.label[1].value == "found") counted = m.counter.value == 2;
    }
  }
  CHECK(counted);
}

TEST_CASE("geoip: sign-ins no database can place are skipped, not guessed") {
  auto g = open_geoip({kNested});
  Engine e = travel_engine(g.get());
  Collect out;
  test::feed(e, bare_sign_in(kT0, "192.0.2.5"), out);                   // Jefferson City
  test::feed(e, bare_sign_in(kT0 + 10 * kMinuteMs, "8.8.8.8"), out);    // unknown to the database
  test::feed(e, bare_sign_in(kT0 + 20 * kMinuteMs, "192.0.2.6"), out);  // Jefferson City again
  CHECK(out.findings.empty());
  CHECK(lookups(*g, GeoDatabaseKind::kCity, GeoLookupResult::kNotFound) == 1);
}

TEST_CASE("geoip: a country-level record is as coarse as its accuracy radius says") {
  // 203.0.113.0/25 is only "US", at the country's centre in Kansas (accuracy 1000 km), about 500 km
  // from Jefferson City: a minute later it is no travel. The same point given as an exact position
  // by upstream would be.
  auto g = open_geoip({kNested});
  Engine e = travel_engine(g.get());
  Collect out;
  test::feed(e, bare_sign_in(kT0, "192.0.2.5"), out);
  test::feed(e, bare_sign_in(kT0 + kMinuteMs, "203.0.113.5"), out);
  CHECK(out.findings.empty());

  Engine exact = travel_engine(g.get());
  Collect fired;
  test::feed(exact, bare_sign_in(kT0, "192.0.2.5"), fired);
  test::feed(exact, bare_sign_in(kT0 + kMinuteMs, "203.0.113.5").at_place(37.751, -97.822), fired);
  CHECK(fired.findings.size() == 1);
}

}  // namespace portalwatch
