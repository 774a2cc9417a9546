#include "daemon/simulator.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <queue>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "detectors/json_writer.h"

namespace portalwatch::sim {
namespace {

// ---------------------------------------------------------------------------------------------
// Random numbers: xoshiro256** seeded by splitmix64; stateless mixers for per-day decisions that
// must be the same whenever they are asked (which office day, which home IP lease).

std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t hash3(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0) {
  return mix64(a ^ mix64((b + 0x9e3779b97f4a7c15ull) ^ mix64(c + 0x632be59bd9b4e019ull)));
}

// A bijection on 32 bits (Wellons' lowbias32): distinct keys give distinct ids.
std::uint32_t mix32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) {
    for (auto& w : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      w = mix64(seed);
    }
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, n) (n > 0).
  std::uint32_t below(std::uint64_t n) {
    return static_cast<std::uint32_t>(((next() >> 32) * (n & 0xffffffffu)) >> 32);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return uniform() < p; }
  /// Uniform in [lo, hi].
  std::int64_t between(std::int64_t lo, std::int64_t hi) {
    if (hi <= lo) return lo;
    return lo + static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(hi - lo + 1));
  }
  double normal() {
    const double u1 = 1.0 - uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double exponential(double mean) { return -mean * std::log1p(-uniform()); }
  template <typename T, std::size_t N>
  const T& pick(const std::array<T, N>& a) {
    return a[below(N)];
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> s_{};
};

template <std::size_t N>
std::size_t pick_weighted(Rng& r, const std::array<double, N>& weights) {
  double total = 0;
  for (double w : weights) total += w;
  double x = r.uniform() * total;
  for (std::size_t i = 0; i < N; ++i) {
    if (x < weights[i]) return i;
    x -= weights[i];
  }
  return N - 1;
}

// ---------------------------------------------------------------------------------------------
// Places. Real coordinates; region codes are ISO 3166-2.

struct City {
  const char* name;
  const char* country;
  const char* region;
  double lat;
  double lon;
};

constexpr std::array<City, 60> kCities{{
    // Missouri [0, 20)
    {"Jefferson City", "US", "US-MO", 38.5767, -92.1735},
    {"St. Louis", "US", "US-MO", 38.6270, -90.1994},
    {"Kansas City", "US", "US-MO", 39.0997, -94.5786},
    {"Springfield", "US", "US-MO", 37.2090, -93.2923},
    {"Columbia", "US", "US-MO", 38.9517, -92.3341},
    {"Independence", "US", "US-MO", 39.0911, -94.4155},
    {"Lee's Summit", "US", "US-MO", 38.9108, -94.3822},
    {"O'Fallon", "US", "US-MO", 38.8106, -90.6998},
    {"St. Joseph", "US", "US-MO", 39.7675, -94.8467},
    {"St. Charles", "US", "US-MO", 38.7881, -90.4974},
    {"Joplin", "US", "US-MO", 37.0842, -94.5133},
    {"Cape Girardeau", "US", "US-MO", 37.3059, -89.5181},
    {"Rolla", "US", "US-MO", 37.9514, -91.7713},
    {"Sedalia", "US", "US-MO", 38.7045, -93.2283},
    {"Kirksville", "US", "US-MO", 40.1948, -92.5832},
    {"Hannibal", "US", "US-MO", 39.7084, -91.3585},
    {"Poplar Bluff", "US", "US-MO", 36.7570, -90.3929},
    {"Fulton", "US", "US-MO", 38.8467, -91.9480},
    {"Chesterfield", "US", "US-MO", 38.6631, -90.5771},
    {"Blue Springs", "US", "US-MO", 39.0169, -94.2816},
    // Elsewhere in the US [20, 40): travel destinations [20, 33), data centres and proxies
    {"Chicago", "US", "US-IL", 41.8781, -87.6298},
    {"Dallas", "US", "US-TX", 32.7767, -96.7970},
    {"Denver", "US", "US-CO", 39.7392, -104.9903},
    {"Orlando", "US", "US-FL", 28.5384, -81.3789},
    {"Nashville", "US", "US-TN", 36.1627, -86.7816},
    {"Las Vegas", "US", "US-NV", 36.1699, -115.1398},
    {"Phoenix", "US", "US-AZ", 33.4484, -112.0740},
    {"Memphis", "US", "US-TN", 35.1495, -90.0490},
    {"Omaha", "US", "US-NE", 41.2565, -95.9345},
    {"Minneapolis", "US", "US-MN", 44.9778, -93.2650},
    {"Atlanta", "US", "US-GA", 33.7490, -84.3880},
    {"New York", "US", "US-NY", 40.7128, -74.0060},
    {"Washington", "US", "US-DC", 38.9072, -77.0369},
    {"Ashburn", "US", "US-VA", 39.0438, -77.4874},
    {"Piscataway", "US", "US-NJ", 40.5554, -74.4643},
    {"San Francisco", "US", "US-CA", 37.7749, -122.4194},
    {"Los Angeles", "US", "US-CA", 34.0522, -118.2437},
    {"Seattle", "US", "US-WA", 47.6062, -122.3321},
    {"Houston", "US", "US-TX", 29.7604, -95.3698},
    {"Tulsa", "US", "US-OK", 36.1540, -95.9928},
    // Abroad [40, 60)
    {"Lagos", "NG", "NG-LA", 6.5244, 3.3792},
    {"Bucharest", "RO", "RO-B", 44.4268, 26.1025},
    {"Moscow", "RU", "RU-MOW", 55.7558, 37.6173},
    {"Ho Chi Minh City", "VN", "VN-SG", 10.8231, 106.6297},
    {"Hanoi", "VN", "VN-HN", 21.0285, 105.8542},
    {"Amsterdam", "NL", "NL-NH", 52.3676, 4.9041},
    {"Frankfurt am Main", "DE", "DE-HE", 50.1109, 8.6821},
    {"S\xC3\xA3o Paulo", "BR", "BR-SP", -23.5505, -46.6333},
    {"Jakarta", "ID", "ID-JK", -6.2088, 106.8456},
    {"Shanghai", "CN", "CN-SH", 31.2304, 121.4737},
    {"Berlin", "DE", "DE-BE", 52.5200, 13.4050},
    {"Paris", "FR", "FR-IDF", 48.8566, 2.3522},
    {"Roubaix", "FR", "FR-HDF", 50.6942, 3.1746},
    {"Helsinki", "FI", "FI-18", 60.1699, 24.9384},
    {"Nuremberg", "DE", "DE-BY", 49.4521, 11.0767},
    {"Kyiv", "UA", "UA-30", 50.4501, 30.5234},
    {"Manila", "PH", "PH-00", 14.5995, 120.9842},
    {"Hamburg", "DE", "DE-HH", 53.5511, 9.9937},
    {"Rio de Janeiro", "BR", "BR-RJ", -22.9068, -43.1729},
    {"London", "GB", "GB-ENG", 51.5074, -0.1278},
}};
constexpr int kMissouriCities = 20;
constexpr int kFirstTravelCity = 20;
constexpr int kTravelCities = 13;
constexpr int kFirstUsCity = 0;
constexpr int kUsCities = 40;
constexpr std::int16_t kJeffersonCity = 0, kStLouis = 1, kKansasCity = 2, kSpringfield = 3;
constexpr std::int16_t kChicago = 20, kDallas = 21, kDenver = 22, kAtlanta = 30;
constexpr std::int16_t kNoCity = -1;

// Where people live, by office (JC, JC, STL, KC, SGF) and for remote staff.
constexpr std::array<double, kMissouriCities> kRemoteHomeWeights{14, 16, 14, 9, 9, 3, 3, 3, 3, 3,
                                                                 3,  2,  2,  2, 2, 1, 2, 4, 3, 2};
constexpr std::array<std::array<std::int16_t, 5>, 5> kCommuterCities{{
    {0, 0, 4, 17, 13},  // Jefferson City NAT 1: Jefferson City, Columbia, Fulton, Sedalia
    {0, 0, 4, 17, 12},  // Jefferson City NAT 2: ... Rolla
    {1, 1, 7, 9, 18},   // St. Louis
    {2, 2, 5, 6, 19},   // Kansas City
    {3, 3, 3, 10, 10},  // Springfield, Joplin
}};

// ---------------------------------------------------------------------------------------------
// Networks. Prefixes are plausible for each operator but synthetic: the simulator fills
// source.as and source.geo itself, so nothing depends on them matching a real GeoIP database.
// The state's own addresses (office NATs, VPN) come from the documentation ranges.

enum class NetKind : std::uint8_t {
  kState,
  kResidential,
  kMobile,
  kHosting,
  kConsumerVpn,
  kForeign
};

struct Prefix4 {
  std::uint32_t base;
  std::uint8_t bits;
};
constexpr std::uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

struct Asn {
  std::uint32_t number;
  const char* org;
  NetKind kind;
  std::array<Prefix4, 3> v4;
  std::uint8_t v4_count;
  std::uint64_t v6_hi;  // top 64 bits of the IPv6 prefix, 0 = none
  std::uint8_t v6_bits;
  // Where its addresses geolocate: hosting and foreign sites, mobile gateways.
  std::array<std::int16_t, 4> cities;
};

// clang-format off
constexpr std::array<Asn, 28> kAsns{{
    {2572, "MOREnet", NetKind::kState, {{{ip4(198, 51, 100, 0), 24}}}, 1, 0, 0, {0, 0, 0, 0}},
    // US residential [1, 7)
    {7018, "AT&T", NetKind::kResidential, {{{ip4(99, 96, 0, 0), 11}, {ip4(107, 192, 0, 0), 12}}}, 2, 0x2600170000000000ull, 28, {0, 0, 0, 0}},
    {7922, "Comcast Cable Communications", NetKind::kResidential, {{{ip4(73, 0, 0, 0), 10}, {ip4(98, 192, 0, 0), 12}}}, 2, 0x2601000000000000ull, 20, {0, 0, 0, 0}},
    {20115, "Charter Communications", NetKind::kResidential, {{{ip4(24, 176, 0, 0), 12}, {ip4(97, 80, 0, 0), 12}, {ip4(66, 168, 0, 0), 14}}}, 3, 0x26006c0000000000ull, 24, {0, 0, 0, 0}},
    {701, "Verizon Business", NetKind::kResidential, {{{ip4(71, 160, 0, 0), 12}, {ip4(108, 0, 0, 0), 14}}}, 2, 0, 0, {0, 0, 0, 0}},
    {209, "CenturyLink Communications", NetKind::kResidential, {{{ip4(97, 112, 0, 0), 12}, {ip4(71, 208, 0, 0), 12}}}, 2, 0, 0, {0, 0, 0, 0}},
    {11492, "Cable One", NetKind::kResidential, {{{ip4(24, 116, 0, 0), 14}}}, 1, 0, 0, {0, 0, 0, 0}},
    // US mobile [7, 10): addresses geolocate to the carrier's regional gateway, not the phone
    {21928, "T-Mobile USA", NetKind::kMobile, {{{ip4(172, 32, 0, 0), 11}, {ip4(172, 56, 0, 0), 13}}}, 2, 0x2607fb9000000000ull, 32, {kKansasCity, kStLouis, kDallas, kChicago}},
    {22394, "Verizon Wireless", NetKind::kMobile, {{{ip4(174, 192, 0, 0), 10}}}, 1, 0x2600100000000000ull, 28, {kKansasCity, kStLouis, kDallas, kChicago}},
    {20057, "AT&T Mobility", NetKind::kMobile, {{{ip4(166, 128, 0, 0), 10}, {ip4(107, 64, 0, 0), 10}}}, 2, 0x2600038000000000ull, 28, {kKansasCity, kStLouis, kDallas, kChicago}},
    // Hosting [10, 16)
    {14061, "DigitalOcean, LLC", NetKind::kHosting, {{{ip4(159, 203, 0, 0), 16}, {ip4(167, 99, 0, 0), 16}, {ip4(64, 227, 0, 0), 16}}}, 3, 0x2604a88000000000ull, 32, {31, 35, 45, 46}},
    {16276, "OVH SAS", NetKind::kHosting, {{{ip4(51, 75, 0, 0), 16}, {ip4(145, 239, 0, 0), 16}}}, 2, 0x200141d000000000ull, 32, {52, 52, 59, 46}},
    {24940, "Hetzner Online GmbH", NetKind::kHosting, {{{ip4(95, 216, 0, 0), 15}, {ip4(49, 12, 0, 0), 16}}}, 2, 0x2a0104f800000000ull, 32, {53, 54, 54, 46}},
    {16509, "Amazon.com, Inc.", NetKind::kHosting, {{{ip4(3, 80, 0, 0), 12}, {ip4(54, 144, 0, 0), 14}}}, 2, 0x26001f1800000000ull, 32, {33, 33, 33, 33}},
    {20473, "The Constant Company, LLC", NetKind::kHosting, {{{ip4(45, 32, 0, 0), 16}, {ip4(149, 28, 0, 0), 16}}}, 2, 0x200119f000000000ull, 32, {34, 21, 36, 34}},
    {63949, "Akamai Connected Cloud", NetKind::kHosting, {{{ip4(172, 104, 0, 0), 15}}}, 1, 0x26003c0000000000ull, 32, {31, 46, 59, 31}},
    // Commercial VPN exits [16]
    {9009, "M247 Europe SRL", NetKind::kConsumerVpn, {{{ip4(146, 70, 0, 0), 16}}}, 1, 0, 0, {kChicago, kDallas, kAtlanta, kDenver}},
    // Residential abroad [17, 28)
    {3320, "Deutsche Telekom AG", NetKind::kForeign, {{{ip4(79, 192, 0, 0), 10}, {ip4(91, 0, 0, 0), 10}}}, 2, 0x2003000000000000ull, 19, {50, 57, 46, 54}},
    {4134, "Chinanet", NetKind::kForeign, {{{ip4(116, 224, 0, 0), 12}, {ip4(180, 160, 0, 0), 12}}}, 2, 0, 0, {49, 49, 49, 49}},
    {12389, "Rostelecom", NetKind::kForeign, {{{ip4(178, 64, 0, 0), 13}}}, 1, 0, 0, {42, 42, 42, 42}},
    {45899, "VNPT Corp", NetKind::kForeign, {{{ip4(113, 160, 0, 0), 11}}}, 1, 0, 0, {43, 44, 43, 44}},
    {28573, "Claro NXT Telecomunicacoes Ltda", NetKind::kForeign, {{{ip4(179, 208, 0, 0), 12}}}, 1, 0, 0, {47, 58, 47, 47}},
    {29465, "MTN Nigeria", NetKind::kForeign, {{{ip4(102, 88, 0, 0), 13}}}, 1, 0, 0, {40, 40, 40, 40}},
    {7713, "PT Telekomunikasi Indonesia", NetKind::kForeign, {{{ip4(36, 64, 0, 0), 11}}}, 1, 0, 0, {48, 48, 48, 48}},
    {3215, "Orange S.A.", NetKind::kForeign, {{{ip4(90, 0, 0, 0), 9}}}, 1, 0, 0, {51, 51, 51, 51}},
    {8708, "RCS & RDS SA", NetKind::kForeign, {{{ip4(86, 120, 0, 0), 13}}}, 1, 0, 0, {41, 41, 41, 41}},
    {15895, "Kyivstar", NetKind::kForeign, {{{ip4(46, 211, 0, 0), 16}}}, 1, 0, 0, {55, 55, 55, 55}},
    {9299, "Philippine Long Distance Telephone", NetKind::kForeign, {{{ip4(112, 198, 0, 0), 15}}}, 1, 0, 0, {56, 56, 56, 56}},
}};
// clang-format on
constexpr std::uint16_t kStateAsn = 0;
constexpr std::uint16_t kFirstResidential = 1, kResidentialCount = 6;
constexpr std::uint16_t kFirstMobile = 7;
constexpr std::uint16_t kDigitalOcean = 10, kOvh = 11, kHetzner = 12, kAmazon = 13, kVultr = 14;
constexpr std::uint16_t kHostingCount = 6;
constexpr std::uint16_t kM247 = 16;
constexpr std::uint16_t kFirstForeign = 17, kForeignCount = 11;
constexpr std::array<double, kResidentialCount> kResidentialWeights{28, 10, 34, 4, 14, 10};
constexpr std::array<double, 3> kMobileWeights{35, 40, 25};

struct Office {
  std::uint32_t ip;
  std::int16_t city;
};
constexpr std::array<Office, 5> kOffices{{
    {ip4(198, 51, 100, 10), kJeffersonCity},
    {ip4(198, 51, 100, 11), kJeffersonCity},
    {ip4(198, 51, 100, 74), kStLouis},
    {ip4(198, 51, 100, 138), kKansasCity},
    {ip4(198, 51, 100, 202), kSpringfield},
}};
constexpr std::array<double, 5> kOfficeWeights{25, 25, 20, 18, 12};
constexpr std::array<std::uint32_t, 4> kCorpVpnIps{ip4(203, 0, 113, 20), ip4(203, 0, 113, 21),
                                                   ip4(203, 0, 113, 22), ip4(203, 0, 113, 23)};
constexpr int kConsumerVpnExits = 24;

// The flood's botnet: eight /12 blocks inside the residential ISPs' prefixes above, 2^23
// addresses, each flood source index mapped to one of them by a bijection.
struct FloodBlock {
  std::uint32_t base;
  std::uint16_t asn;
};
constexpr std::array<FloodBlock, 8> kFloodBlocks{{
    {ip4(73, 0, 0, 0), 2},   {ip4(73, 16, 0, 0), 2},   {ip4(73, 32, 0, 0), 2}, {ip4(73, 48, 0, 0), 2},
    {ip4(99, 96, 0, 0), 1},  {ip4(99, 112, 0, 0), 1},  {ip4(107, 192, 0, 0), 1},
    {ip4(24, 176, 0, 0), 3},
}};
static_assert(kFloodBlocks.size() << 20 == kMaxFloodSources);

// ---------------------------------------------------------------------------------------------
// Clients.

enum class UaClass : std::uint8_t { kDesktop, kMobile, kTablet, kTool };
struct UserAgent {
  const char* text;
  UaClass cls;
};
constexpr std::array<UserAgent, 19> kUserAgents{{
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36",
     UaClass::kDesktop},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
     UaClass::kDesktop},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
     UaClass::kDesktop},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36",
     UaClass::kDesktop},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15",
     UaClass::kDesktop},
    {"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36",
     UaClass::kDesktop},
    {"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", UaClass::kDesktop},
    {"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
     UaClass::kMobile},
    {"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
     "Mobile Safari/537.36",
     UaClass::kMobile},
    {"Mozilla/5.0 (Linux; Android 14; SM-S921U) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
     UaClass::kMobile},
    {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
     UaClass::kMobile},
    {"Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Mobile/15E148 Safari/604.1",
     UaClass::kTablet},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36",
     UaClass::kDesktop},
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/119.0.0.0 Safari/537.36",
     UaClass::kDesktop},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:128.0) Gecko/20100101 Firefox/128.0",
     UaClass::kDesktop},
    {"python-requests/2.31.0", UaClass::kTool},
    {"curl/8.5.0", UaClass::kTool},
    {"Go-http-client/1.1", UaClass::kTool},
    {"python-requests/2.28.2", UaClass::kTool},
}};
constexpr std::array<double, 7> kHomeDesktopWeights{35, 15, 6, 10, 10, 3, 1};  // UAs 0-6
constexpr std::array<std::uint8_t, 4> kPhoneUas{7, 8, 9, 10};
constexpr std::array<double, 4> kPhoneWeights{45, 25, 20, 10};
constexpr std::uint8_t kTabletUa = 11;
constexpr std::array<std::uint8_t, 3> kAttackerBrowserUas{12, 13, 14};
constexpr std::array<std::uint8_t, 4> kToolUas{15, 16, 17, 18};

// ---------------------------------------------------------------------------------------------
// Names.

constexpr std::array<const char*, 160> kSurnames{
    "smith",    "johnson",   "williams",   "brown",     "jones",      "garcia",    "miller",
    "davis",    "rodriguez", "martinez",   "hernandez", "lopez",      "gonzalez",  "wilson",
    "anderson", "thomas",    "taylor",     "moore",     "jackson",    "martin",    "lee",
    "perez",    "thompson",  "white",      "harris",    "sanchez",    "clark",     "ramirez",
    "lewis",    "robinson",  "walker",     "young",     "allen",      "king",      "wright",
    "scott",    "torres",    "nguyen",     "hill",      "flores",     "green",     "adams",
    "nelson",   "baker",     "hall",       "rivera",    "campbell",   "mitchell",  "carter",
    "roberts",  "gomez",     "phillips",   "evans",     "turner",     "diaz",      "parker",
    "cruz",     "edwards",   "collins",    "reyes",     "stewart",    "morris",    "morales",
    "murphy",   "cook",      "rogers",     "gutierrez", "ortiz",      "morgan",    "cooper",
    "peterson", "bailey",    "reed",       "kelly",     "howard",     "ramos",     "kim",
    "cox",      "ward",      "richardson", "watson",    "brooks",     "chavez",    "wood",
    "james",    "bennett",   "gray",       "mendoza",   "ruiz",       "hughes",    "price",
    "alvarez",  "castillo",  "sanders",    "patel",     "myers",      "long",      "ross",
    "foster",   "jimenez",   "powell",     "jenkins",   "perry",      "russell",   "sullivan",
    "bell",     "coleman",   "butler",     "henderson", "barnes",     "gonzales",  "fisher",
    "vasquez",  "simmons",   "romero",     "jordan",    "patterson",  "alexander", "hamilton",
    "graham",   "reynolds",  "griffin",    "wallace",   "moreno",     "west",      "cole",
    "hayes",    "bryant",    "herrera",    "gibson",    "ellis",      "tran",      "medina",
    "aguilar",  "stevens",   "murray",     "ford",      "castro",     "marshall",  "owens",
    "harrison", "fernandez", "mcdonald",   "woods",     "washington", "kennedy",   "wells",
    "vargas",   "henry",     "chen",       "freeman",   "webb",       "tucker",    "guzman",
    "burns",    "crawford",  "olson",      "simpson",   "porter",     "hunter",
};
constexpr std::array<const char*, 40> kFirstNames{
    "james",   "mary",      "robert",  "patricia", "john",    "jennifer", "michael", "linda",
    "david",   "elizabeth", "william", "barbara",  "richard", "susan",    "joseph",  "jessica",
    "thomas",  "sarah",     "chris",   "karen",    "daniel",  "lisa",     "matthew", "nancy",
    "anthony", "betty",     "mark",    "sandra",   "steven",  "ashley",   "paul",    "kimberly",
    "andrew",  "emily",     "josh",    "donna",    "kevin",   "michelle", "brian",   "amanda",
};
constexpr std::array<const char*, 6> kMailDomains{"gmail.com", "yahoo.com",   "hotmail.com",
                                                  "aol.com",   "outlook.com", "icloud.com"};

// ---------------------------------------------------------------------------------------------
// Requests.

enum class Op : std::uint8_t {
  kLoginOk,
  kLoginFail,
  kMfaOk,
  kMfaFail,
  kResetRequest,
  kResetDone,
  kExpiredChange,
  kView,
  kDownload,
  kChange,
  kLogout,
};

enum class Reason : std::uint8_t {
  kNone,
  kBadPassword,
  kUnknownUser,
  kLocked,
  kExpiredPassword,
  kMfaDenied,
  kMfaTimeout,
  kForbidden,
  kNotFound,
};
constexpr std::array<std::string_view, 9> kReasonText{
    "",           "bad_password", "unknown_user", "locked",   "expired_password",
    "mfa_denied", "mfa_timeout",  "forbidden",    "not_found"};

enum class Page : std::uint8_t {
  kNone,
  kPaystubLatest,
  kPaystubHistory,
  kPaystubPdf,
  kW2,
  kW2Pdf,
  kHsaBalance,
  kHsaTransactions,
  kRetirement,
  kDeferredComp,
  kDeferredCompChange,
  kProfile,
  kAddressChange,
  kDirectDeposit,
  kDirectDepositChange,
  kBeneficiary,
  kBeneficiaryChange,
  kDirectory,
  kHrProfile,
  kHrPaystub,
  kHrBenefits,
  kPayrollDirectDeposit,
  kPayrollPaystub,
  kPayrollRegister,
  kCount,
};

struct PageInfo {
  std::string_view app;
  std::string_view path;    // the path, or its part before the record id
  std::string_view suffix;  // after the record id; the record is in the path when non-empty or
  bool record_in_path;      // when record_in_path
  bool own_record;          // portal.record.id is the user's own id
};
constexpr std::array<PageInfo, static_cast<std::size_t>(Page::kCount)> kPages{{
    {"", "", "", false, false},
    {"paystub", "/ess/paystub/latest", "", false, true},
    {"paystub", "/ess/paystub/history", "", false, true},
    {"paystub", "/ess/paystub/latest/pdf", "", false, true},
    {"w2", "/ess/w2/current", "", false, true},
    {"w2", "/ess/w2/current/pdf", "", false, true},
    {"hsa", "/ess/hsa/balance", "", false, true},
    {"hsa", "/ess/hsa/transactions", "", false, true},
    {"retirement", "/ess/retirement/summary", "", false, true},
    {"deferred_comp", "/ess/deferred-comp/summary", "", false, true},
    {"deferred_comp", "/ess/deferred-comp/contribution", "", false, true},
    {"profile", "/ess/profile", "", false, true},
    {"profile", "/ess/profile/address", "", false, true},
    {"direct_deposit", "/ess/direct-deposit", "", false, true},
    {"direct_deposit", "/ess/direct-deposit/accounts", "", false, true},
    {"beneficiary", "/ess/beneficiary", "", false, true},
    {"beneficiary", "/ess/beneficiary/designations", "", false, true},
    {"directory", "/ess/directory/", "", true, false},
    {"profile", "/ess/hr/employees/", "/profile", true, false},
    {"paystub", "/ess/hr/employees/", "/paystubs", true, false},
    {"benefits", "/ess/hr/employees/", "/benefits", true, false},
    {"direct_deposit", "/ess/payroll/employees/", "/direct-deposit", true, false},
    {"paystub", "/ess/payroll/employees/", "/paystubs", true, false},
    {"payroll_reports", "/ess/payroll/reports/register.csv", "", false, false},
}};

enum class Role : std::uint8_t { kEmployee, kHrAdmin, kPayrollAdmin };

// ---------------------------------------------------------------------------------------------
// Central time (America/Chicago): CST UTC-6, CDT UTC-5 from the second Sunday in March to the
// first Sunday in November (02:00 local).

// days_from_civil and civil_from_days come from detectors/time.h.

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

int weekday_of(std::int64_t day) {  // 0 = Monday; 1970-01-01 was a Thursday
  return static_cast<int>(((day + 3) % 7 + 7) % 7);
}

struct LocalTime {
  std::int64_t day = 0;  // local days since 1970-01-01
  int year = 1970;
  unsigned month = 1;
  unsigned mday = 1;
  int weekday = 0;  // 0 = Monday
  double hour = 0;  // 0 <= hour < 24
  bool weekend() const { return weekday >= 5; }
};

LocalTime central_time(TimeMs t) {
  int y;
  unsigned m, d;
  civil_from_days(floor_div(t, kDayMs), y, m, d);
  const std::int64_t march1 = days_from_civil(y, 3, 1);
  const std::int64_t dst_start_day = march1 + (6 - weekday_of(march1) + 7) % 7 + 7;
  const std::int64_t nov1 = days_from_civil(y, 11, 1);
  const std::int64_t dst_end_day = nov1 + (6 - weekday_of(nov1) + 7) % 7;
  const TimeMs dst_start = dst_start_day * kDayMs + 8 * kHourMs;  // 02:00 CST
  const TimeMs dst_end = dst_end_day * kDayMs + 7 * kHourMs;      // 02:00 CDT
  const TimeMs offset = (t >= dst_start && t < dst_end) ? -5 * kHourMs : -6 * kHourMs;
  const TimeMs local = t + offset;
  LocalTime lt;
  lt.day = floor_div(local, kDayMs);
  civil_from_days(lt.day, lt.year, lt.month, lt.mday);
  lt.weekday = weekday_of(lt.day);
  lt.hour = static_cast<double>(local - lt.day * kDayMs) / static_cast<double>(kHourMs);
  return lt;
}

unsigned days_in_month(int y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// Semi-monthly pay on the 15th and the last day; a weekend payday moves to the Friday before.
bool is_payday(const LocalTime& lt) {
  for (unsigned target : {15u, days_in_month(lt.year, lt.month)}) {
    const std::int64_t day = days_from_civil(lt.year, lt.month, target);
    const int wd = weekday_of(day);
    const std::int64_t paid = day - (wd == 5 ? 1 : wd == 6 ? 2 : 0);
    if (paid == lt.day) return true;
  }
  return false;
}

// Sessions started per hour relative to the weekday 8 a.m. peak.
constexpr std::array<double, 25> kWeekdayShape{0.04, 0.03, 0.02, 0.02, 0.03, 0.08, 0.25, 0.65, 1.00,
                                               0.85, 0.75, 0.80, 0.90, 0.75, 0.65, 0.60, 0.55, 0.45,
                                               0.35, 0.33, 0.30, 0.22, 0.12, 0.07, 0.04};
constexpr std::array<double, 25> kWeekendShape{0.04, 0.03, 0.02, 0.02, 0.02, 0.03, 0.05, 0.08, 0.12,
                                               0.16, 0.19, 0.20, 0.20, 0.19, 0.18, 0.17, 0.17, 0.16,
                                               0.16, 0.17, 0.17, 0.14, 0.09, 0.06, 0.04};

double diurnal_shape(const LocalTime& lt) {
  const auto& shape = lt.weekend() ? kWeekendShape : kWeekdayShape;
  const int h = std::min(23, static_cast<int>(lt.hour));
  const double f = lt.hour - h;
  return shape[h] * (1 - f) + shape[h + 1] * f;
}

// ---------------------------------------------------------------------------------------------
// Simulation records.

struct Employee {
  std::string name;
  std::uint32_t number = 0;     // printed as E%07u
  std::uint32_t household = 0;  // employees in one household share the home connection
  Role role = Role::kEmployee;
  std::int8_t office = -1;  // index into kOffices, -1 = remote
  std::int16_t home_city = 0;
  std::uint16_t home_isp = kFirstResidential;
  std::uint16_t carrier = kFirstMobile;
  std::uint8_t lease_days = 14;
  std::uint8_t lease_phase = 0;
  std::uint8_t device_count = 1;
  std::array<std::uint8_t, 3> device_ua{};
  bool corp_vpn = false;
  bool consumer_vpn = false;
  bool traveler = false;
  bool home_v6 = false;
};

struct Endpoint {
  std::array<char, 40> ip{};
  std::uint8_t ip_len = 0;
  std::int16_t city = kNoCity;
  std::uint16_t asn = 0;
  std::string_view text() const { return {ip.data(), ip_len}; }
};

Endpoint endpoint_v4(std::uint32_t ip, std::int16_t city, std::uint16_t asn) {
  Endpoint e;
  e.city = city;
  e.asn = asn;
  char* p = e.ip.data();
  for (int shift = 24; shift >= 0; shift -= 8) {
    const unsigned octet = (ip >> shift) & 255;
    if (octet >= 100) *p++ = static_cast<char>('0' + octet / 100);
    if (octet >= 10) *p++ = static_cast<char>('0' + octet / 10 % 10);
    *p++ = static_cast<char>('0' + octet % 10);
    if (shift) *p++ = '.';
  }
  e.ip_len = static_cast<std::uint8_t>(p - e.ip.data());
  return e;
}

void v6_bytes(std::uint64_t hi, std::uint64_t lo, unsigned char out[16]) {
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<unsigned char>(hi >> (56 - 8 * i));
    out[8 + i] = static_cast<unsigned char>(lo >> (56 - 8 * i));
  }
}

Endpoint endpoint_v6(std::uint64_t hi, std::uint64_t lo, std::int16_t city, std::uint16_t asn) {
  Endpoint e;
  e.city = city;
  e.asn = asn;
  unsigned char bytes[16];
  v6_bytes(hi, lo, bytes);
  inet_ntop(AF_INET6, bytes, e.ip.data(), e.ip.size());  // RFC 5952 form, as detectors print it
  e.ip_len = static_cast<std::uint8_t>(std::strlen(e.ip.data()));
  return e;
}

std::string v6_prefix64_text(std::uint64_t hi) {
  char buf[INET6_ADDRSTRLEN];
  unsigned char bytes[16];
  v6_bytes(hi, 0, bytes);
  inet_ntop(AF_INET6, bytes, buf, sizeof buf);
  return std::string(buf) + "/64";
}

// A host address inside one of the operator's IPv4 prefixes (never .0 or .255).
std::uint32_t ip_in(const Asn& asn, std::uint64_t h) {
  const Prefix4& p = asn.v4[h % asn.v4_count];
  const std::uint32_t size = p.bits >= 32 ? 1u : (1u << (32 - p.bits));
  std::uint32_t ip = p.base + static_cast<std::uint32_t>((h >> 8) % size);
  if ((ip & 255) == 0) ip |= 1;
  if ((ip & 255) == 255) ip -= 1;
  return ip;
}

// A /64 inside the operator's IPv6 prefix.
std::uint64_t v6_net_in(const Asn& asn, std::uint64_t h) {
  const std::uint64_t host_mask = asn.v6_bits >= 64 ? 0 : (~0ull >> asn.v6_bits);
  return asn.v6_hi | (h & host_mask);
}

enum StepFlags : std::uint8_t {
  kHasSession = 1,
  kHasDevice = 2,
  kShowRoles = 4,
};
constexpr std::uint16_t kNoLabel = 0xffff;

/// One request of a planned session or attack.
struct Step {
  TimeMs t = 0;
  std::int32_t user = -1;    // employee index; <= -2: names[-2 - user]
  std::int32_t record = -1;  // employee number the request touched
  std::uint32_t session = 0;
  std::uint32_t device = 0;
  std::uint16_t endpoint = 0;  // index into the owner's endpoints
  std::uint16_t label = kNoLabel;
  std::uint16_t status = 0;
  Op op = Op::kView;
  Reason reason = Reason::kNone;
  Page page = Page::kNone;
  std::uint8_t ua = 0;
  std::uint8_t flags = 0;
};

/// What every step of one client's visit shares.
struct Proto {
  std::int32_t user = -1;
  std::uint32_t session = 0;
  std::uint32_t device = 0;
  std::uint16_t endpoint = 0;
  std::uint16_t label = kNoLabel;
  std::uint8_t ua = 0;
  std::uint8_t flags = 0;
};

Step make_step(const Proto& p, TimeMs t, Op op, Reason reason = Reason::kNone,
               Page page = Page::kNone, std::int32_t record = -1, std::uint16_t status = 0) {
  Step s;
  s.t = t;
  s.user = p.user;
  s.record = record;
  s.session = p.session;
  s.device = p.device;
  s.endpoint = p.endpoint;
  s.label = p.label;
  s.op = op;
  s.reason = reason;
  s.page = page;
  s.ua = p.ua;
  s.flags = p.flags;
  s.status = status;
  return s;
}

struct Session {
  std::vector<Step> steps;
  std::vector<Endpoint> endpoints;
  std::vector<std::string> names;
  std::size_t next = 0;
};

struct LabelTemplate {
  std::string id;
  std::string entity_type;
  std::string entity;
  std::vector<EntityRef> alternates;
  std::int64_t global = -1;  // index in the simulator's labels once the first event is out
};

struct AttackRun {
  AttackSpec spec;
  std::size_t spec_index = 0;
  std::uint32_t repeat = 0;
  std::uint32_t uid = 0;  // distinguishes session and device ids of different runs
  bool planned = false;
  std::vector<Step> steps;
  std::vector<Endpoint> endpoints;
  std::vector<std::string> names;
  std::vector<LabelTemplate> labels;
  std::size_t next = 0;
  std::uint32_t session_counter = 0;
  std::uint32_t device_counter = 0;
};

struct QueueItem {
  TimeMs t;
  std::uint64_t seq;
  std::uint32_t actor;
  bool operator>(const QueueItem& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};
constexpr std::uint32_t kArrivalActor = 0xffffffffu;
constexpr std::uint32_t kSessionActor = 0x80000000u;

void append_hex8(std::string& out, std::uint32_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = kHex[v & 15];
    v >>= 4;
  }
  out.append(buf, 8);
}

void append_employee_id(std::string& out, std::uint32_t number) {
  char buf[8];
  buf[0] = 'E';
  for (int i = 7; i >= 1; --i) {
    buf[i] = static_cast<char>('0' + number % 10);
    number /= 10;
  }
  out.append(buf, 8);
}

std::string id_text(char prefix, std::uint32_t v) {
  std::string s{prefix, '-'};
  append_hex8(s, v);
  return s;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

constexpr std::uint32_t kFirstEmployeeNumber = 100000;
constexpr TimeMs kPrefillMs = 30 * kMinuteMs;

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string_view to_string(AttackKind kind) {
  switch (kind) {
    case AttackKind::kBruteForce:
      return "brute_force";
    case AttackKind::kPasswordSpray:
      return "password_spray";
    case AttackKind::kCredentialStuffing:
      return "credential_stuffing";
    case AttackKind::kLowAndSlowStuffing:
      return "credential_stuffing_low_and_slow";
    case AttackKind::kEnumeration:
      return "enumeration";
    case AttackKind::kAutomation:
      return "automation";
    case AttackKind::kAccountTakeover:
      return "account_takeover";
    case AttackKind::kImpossibleTravel:
      return "impossible_travel";
    case AttackKind::kMfaFatigue:
      return "mfa_fatigue";
    case AttackKind::kSessionHijack:
      return "session_hijack";
    case AttackKind::kMultiAccountSource:
      return "multi_account_source";
  }
  return "unknown";
}

std::string_view expected_detector(AttackKind kind) {
  if (kind == AttackKind::kLowAndSlowStuffing) return "credential_stuffing";
  return to_string(kind);
}

std::optional<AttackKind> parse_attack_kind(std::string_view text) {
  for (std::size_t i = 0; i < kAttackKindCount; ++i) {
    const auto kind = static_cast<AttackKind>(i);
    if (to_string(kind) == text) return kind;
  }
  return std::nullopt;
}

TimeMs default_attack_duration(AttackKind kind) {
  switch (kind) {
    case AttackKind::kBruteForce:
      return 20 * kMinuteMs;
    case AttackKind::kPasswordSpray:
      return 60 * kMinuteMs;
    case AttackKind::kCredentialStuffing:
      return 30 * kMinuteMs;
    case AttackKind::kLowAndSlowStuffing:
      return 6 * kHourMs;
    case AttackKind::kEnumeration:
      return 15 * kMinuteMs;
    case AttackKind::kAutomation:
      return 30 * kMinuteMs;
    case AttackKind::kAccountTakeover:
      return 2 * kHourMs;
    case AttackKind::kImpossibleTravel:
      return 30 * kMinuteMs;
    case AttackKind::kMfaFatigue:
      return 15 * kMinuteMs;
    case AttackKind::kSessionHijack:
      return 30 * kMinuteMs;
    case AttackKind::kMultiAccountSource:
      return 60 * kMinuteMs;
  }
  return 30 * kMinuteMs;
}

std::vector<AttackSpec> default_attack_schedule(TimeMs first, TimeMs spacing) {
  std::vector<AttackSpec> out;
  for (std::size_t i = 0; i < kAttackKindCount; ++i) {
    const auto kind = static_cast<AttackKind>(i);
    out.push_back(
        {kind, first + static_cast<TimeMs>(i) * spacing, default_attack_duration(kind), 1.0, 0});
  }
  return out;
}

std::string label_to_json(const AttackLabel& label) {
  std::string out = "{\"id\":";
  append_json_string(out, label.id);
  out += ",\"attack\":";
  append_json_string(out, to_string(label.kind));
  out += ",\"detector\":";
  append_json_string(out, expected_detector(label.kind));
  out += ",\"entity\":{\"type\":";
  append_json_string(out, label.entity_type);
  out += ",\"value\":";
  append_json_string(out, label.entity);
  out += "},\"start\":\"";
  append_rfc3339(out, label.start);
  out += "\",\"end\":\"";
  append_rfc3339(out, label.end);
  out += "\",\"events\":";
  append_json_int(out, static_cast<std::int64_t>(label.events));
  out += ",\"successful_logins\":";
  append_json_int(out, static_cast<std::int64_t>(label.successful_logins));
  out += ",\"spec_index\":";
  append_json_int(out, static_cast<std::int64_t>(label.spec_index));
  out += ",\"alternates\":[";
  for (std::size_t i = 0; i < label.alternates.size(); ++i) {
    if (i) out += ',';
    out += "{\"type\":";
    append_json_string(out, label.alternates[i].type);
    out += ",\"value\":";
    append_json_string(out, label.alternates[i].value);
    out += '}';
  }
  out += "]}";
  return out;
}

// ---------------------------------------------------------------------------------------------

struct PortalSimulator::Impl {
  explicit Impl(SimulatorOptions o);

  // The workforce.
  void build_workforce();
  std::string make_user_name(Rng& r);
  std::string make_unknown_name(Rng& r);
  std::uint32_t device_id(std::uint32_t employee, int k) const {
    return mix32((employee * 4 + static_cast<std::uint32_t>(k)) ^ device_salt_);
  }
  std::uint32_t random_victim(Rng& r, std::unordered_set<std::uint32_t>& taken);

  // Networks.
  struct Access {
    std::uint32_t device = 0;
    std::uint8_t ua = 0;
    bool known_device = true;
    bool office = false;
    bool cellular = false;
    std::uint16_t carrier = 0;
    std::int16_t city = kNoCity;  // geolocation of cellular hops
  };
  Access pick_access(std::uint32_t emp, const LocalTime& lt, Rng& r, std::vector<Endpoint>& eps,
                     bool home_only);
  Endpoint home_endpoint(std::uint32_t emp, const LocalTime& lt, std::uint32_t device) const;
  Endpoint cellular_endpoint(std::uint16_t carrier, std::int16_t trip_city, Rng& r) const;
  Endpoint hosting_endpoint(std::uint16_t asn, Rng& r, bool v6 = false) const;
  Endpoint foreign_endpoint(Rng& r) const;
  Endpoint residential_proxy_endpoint(Rng& r) const;
  std::int16_t trip_city(std::uint32_t emp, const LocalTime& lt) const;
  bool office_day(std::uint32_t emp, const LocalTime& lt) const;

  // Benign sessions.
  void plan_session(Session& s, std::uint32_t emp, TimeMs t0, Rng& r, std::uint32_t session_id);
  double mean_events_per_session();
  double sessions_per_ms(TimeMs t) const;
  void start_session(TimeMs t, bool prefill);

  // Attacks.
  void plan_attack(AttackRun& run);
  void write_flood(std::string& out);

  // Output.
  void write(std::string& out, const Step& s, const std::vector<Endpoint>& eps,
             const std::vector<std::string>& names, const AttackLabel* label) const;
  void push(TimeMs t, std::uint32_t actor) { queue_.push({t, seq_++, actor}); }
  TimeMs next(std::string& line);

  SimulatorOptions opt_;
  std::uint32_t device_salt_;
  std::uint32_t session_salt_;
  std::vector<Employee> employees_;
  std::unordered_map<std::string, std::uint32_t> by_name_;  // lower-case name -> employee
  std::vector<std::uint32_t> tickets_;                      // who starts the next session
  std::vector<std::uint32_t> regular_;                      // role employee: attack victims
  std::vector<bool> number_used_;                           // by number - kFirstEmployeeNumber
  std::uint32_t number_range_ = 0;
  std::unordered_set<std::int64_t> expiry_days_;

  std::vector<std::string> geo_json_;
  std::vector<std::string> as_json_;
  std::vector<std::string> ua_json_;
  std::array<std::string, 3> roles_json_;

  Rng benign_;
  std::uint32_t benign_sessions_ = 0;
  double peak_sessions_per_ms_ = 0;
  TimeMs next_arrival_ = 0;

  std::vector<Session> sessions_;
  std::vector<std::uint32_t> free_sessions_;
  std::vector<AttackRun> runs_;
  std::vector<AttackLabel> labels_;
  std::priority_queue<QueueItem, std::vector<QueueItem>, std::greater<>> queue_;
  std::uint64_t seq_ = 0;
  std::uint64_t events_ = 0;
  TimeMs last_t_ = 0;  // event time of the event written last

  // The flood (opt_.flood_share > 0).
  Rng flood_;
  std::uint64_t flood_events_ = 0;
  std::vector<Endpoint> flood_endpoint_{1};
  std::vector<std::string> flood_name_{1};
  std::int64_t flood_label_ = -1;  // index in labels_ once the first flood event is out
  mutable std::string last_user_;  // of the event write() rendered last
};

PortalSimulator::Impl::Impl(SimulatorOptions o)
    : opt_(std::move(o)),
      device_salt_(static_cast<std::uint32_t>(hash3(opt_.seed, 11))),
      session_salt_(static_cast<std::uint32_t>(hash3(opt_.seed, 12))),
      benign_(hash3(opt_.seed, 2)),
      last_t_(opt_.start),
      flood_(hash3(opt_.seed, 13)) {
  opt_.employees = std::clamp<std::size_t>(opt_.employees, 1, kMaxEmployees);
  opt_.flood_share = opt_.events_per_second > 0 ? std::clamp(opt_.flood_share, 0.0, 0.95) : 0.0;
  opt_.flood_sources = std::clamp<std::size_t>(opt_.flood_sources, 1, kMaxFloodSources);
  opt_.flood_accounts = std::clamp<std::size_t>(opt_.flood_accounts, 1, kMaxFloodAccounts);
  for (const City& c : kCities) {
    std::string g = "\"geo\":{\"country_iso_code\":";
    append_json_string(g, c.country);
    g += ",\"region_iso_code\":";
    append_json_string(g, c.region);
    g += ",\"city_name\":";
    append_json_string(g, c.name);
    g += ",\"location\":{\"lat\":";
    append_json_double(g, c.lat);
    g += ",\"lon\":";
    append_json_double(g, c.lon);
    g += "}}";
    geo_json_.push_back(std::move(g));
  }
  for (const Asn& a : kAsns) {
    std::string s = "\"as\":{\"number\":";
    append_json_int(s, a.number);
    s += ",\"organization\":{\"name\":";
    append_json_string(s, a.org);
    s += "}}";
    as_json_.push_back(std::move(s));
  }
  for (const UserAgent& ua : kUserAgents) {
    std::string s = "\"user_agent\":{\"original\":";
    append_json_string(s, ua.text);
    s += '}';
    ua_json_.push_back(std::move(s));
  }
  roles_json_ = {"[\"employee\"]", "[\"employee\",\"hr_admin\"]",
                 "[\"employee\",\"payroll_admin\"]"};
  for (TimeMs t : opt_.password_expiry_days) expiry_days_.insert(central_time(t).day);

  build_workforce();
  if (opt_.events_per_second > 0) {
    peak_sessions_per_ms_ = opt_.events_per_second / mean_events_per_session() / 1000.0;
  }

  for (std::size_t i = 0; i < opt_.attacks.size(); ++i) {
    AttackRun run;
    run.spec = opt_.attacks[i];
    if (run.spec.duration <= 0) run.spec.duration = default_attack_duration(run.spec.kind);
    run.spec_index = i;
    run.uid = static_cast<std::uint32_t>(i);
    runs_.push_back(std::move(run));
    push(std::max(runs_.back().spec.start, opt_.start), static_cast<std::uint32_t>(i));
  }

  if (peak_sessions_per_ms_ > 0) {
    next_arrival_ = opt_.prefill_sessions ? opt_.start - kPrefillMs : opt_.start;
    while (next_arrival_ < opt_.start) {
      start_session(next_arrival_, true);
      next_arrival_ += std::max<TimeMs>(
          1, std::llround(benign_.exponential(1.0 / sessions_per_ms(next_arrival_))));
    }
    push(next_arrival_, kArrivalActor);
  }
}

// ---- the workforce ---------------------------------------------------------------------------

std::string PortalSimulator::Impl::make_user_name(Rng& r) {
  for (int attempt = 0;; ++attempt) {
    std::string name(1, static_cast<char>('a' + r.below(26)));
    if (r.chance(0.12)) name += static_cast<char>('a' + r.below(26));
    name += kSurnames[r.below(kSurnames.size())];
    const double u = r.uniform();
    const int digits = attempt > 3 ? 4 : u < 0.2 ? 0 : u < 0.45 ? 1 : u < 0.85 ? 2 : 3;
    int max = 1;
    for (int i = 0; i < digits; ++i) max *= 10;
    if (digits) name += std::to_string(r.below(static_cast<std::uint64_t>(max)));
    if (!by_name_.count(name)) return name;
  }
}

std::string PortalSimulator::Impl::make_unknown_name(Rng& r) {
  for (;;) {
    std::string name;
    const std::string first = kFirstNames[r.below(kFirstNames.size())];
    const std::string last = kSurnames[r.below(kSurnames.size())];
    switch (r.below(5)) {
      case 0:
        name = first + "." + last + "@" + kMailDomains[r.below(kMailDomains.size())];
        break;
      case 1:
        name = first.substr(0, 1) + last + std::to_string(1960 + r.below(45)) + "@" +
               kMailDomains[r.below(kMailDomains.size())];
        break;
      case 2:
        name = first + last + std::to_string(r.below(100));
        break;
      case 3:
        name = first.substr(0, 1) + last;
        break;
      default:
        name = first + "_" + last.substr(0, 1) + std::to_string(r.below(1000));
        break;
    }
    if (!by_name_.count(lower(name))) return name;
  }
}

void PortalSimulator::Impl::build_workforce() {
  Rng r(hash3(opt_.seed, 1));
  const std::size_t n = opt_.employees;
  number_range_ = static_cast<std::uint32_t>(std::max<std::size_t>(100000, 2 * n));
  number_used_.assign(number_range_, false);
  // A random sample of the id range, so sequential ids hit real and missing records alike.
  std::vector<std::uint32_t> numbers(number_range_);
  for (std::uint32_t i = 0; i < number_range_; ++i) numbers[i] = i;
  for (std::size_t i = 0; i < n; ++i)
    std::swap(numbers[i], numbers[i + r.below(number_range_ - i)]);

  employees_.resize(n);
  by_name_.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    Employee& e = employees_[i];
    e.name = make_user_name(r);
    by_name_.emplace(e.name, static_cast<std::uint32_t>(i));
    if (r.chance(0.03)) {  // "JDoe42": the directory keeps the case people typed at enrolment
      e.name[0] = static_cast<char>(e.name[0] - 'a' + 'A');
      if (e.name[1] >= 'a' && e.name[1] <= 'z')
        e.name[1] = static_cast<char>(e.name[1] - 'a' + 'A');
    }
    e.number = kFirstEmployeeNumber + numbers[i];
    number_used_[numbers[i]] = true;
    e.household = static_cast<std::uint32_t>(i);
    const double role = r.uniform();
    e.role = role < 0.01 ? Role::kHrAdmin : role < 0.0115 ? Role::kPayrollAdmin : Role::kEmployee;
    if (i == 0 && n >= 10) e.role = Role::kHrAdmin;
    if (i == 1 && n >= 10) e.role = Role::kPayrollAdmin;
    const bool office_worker = r.chance(e.role == Role::kEmployee ? 0.55 : 0.95);
    if (office_worker) {
      e.office = static_cast<std::int8_t>(pick_weighted(r, kOfficeWeights));
      e.home_city = kCommuterCities[static_cast<std::size_t>(e.office)][r.below(5)];
    } else {
      e.home_city = static_cast<std::int16_t>(pick_weighted(r, kRemoteHomeWeights));
    }
    e.home_isp =
        static_cast<std::uint16_t>(kFirstResidential + pick_weighted(r, kResidentialWeights));
    e.carrier = static_cast<std::uint16_t>(kFirstMobile + pick_weighted(r, kMobileWeights));
    e.lease_days = static_cast<std::uint8_t>(r.between(5, 40));
    e.lease_phase = static_cast<std::uint8_t>(r.below(40));
    e.home_v6 = kAsns[e.home_isp].v6_hi != 0 && r.chance(0.3);
    // Device 0 is the work PC for office staff, else the home computer; 1 a phone; 2 a tablet.
    e.device_ua[0] = office_worker
                         ? static_cast<std::uint8_t>(r.chance(0.55) ? 1 : 0)
                         : static_cast<std::uint8_t>(pick_weighted(r, kHomeDesktopWeights));
    e.device_count = 1;
    if (r.chance(0.85)) e.device_ua[e.device_count++] = kPhoneUas[pick_weighted(r, kPhoneWeights)];
    if (r.chance(0.2)) {
      e.device_ua[e.device_count++] =
          r.chance(0.5) ? kTabletUa
                        : static_cast<std::uint8_t>(pick_weighted(r, kHomeDesktopWeights));
    }
    e.corp_vpn = r.chance(office_worker ? 0.03 : 0.01);
    e.consumer_vpn = !e.corp_vpn && r.chance(0.008);
    e.traveler = r.chance(0.04);
    // Couples who both work for the state share a home connection.
    if (i > 0 && r.chance(0.03)) {
      const Employee& partner = employees_[i - 1];
      e.household = partner.household;
      e.home_city = partner.home_city;
      e.home_isp = partner.home_isp;
      e.lease_days = partner.lease_days;
      e.lease_phase = partner.lease_phase;
      e.home_v6 = partner.home_v6;
    }
  }
  tickets_.reserve(n + n / 10);
  for (std::size_t i = 0; i < n; ++i) {
    const auto idx = static_cast<std::uint32_t>(i);
    const int weight = employees_[i].role == Role::kEmployee ? 1 : 2;  // admins work in the portal
    for (int k = 0; k < weight; ++k) tickets_.push_back(idx);
    if (employees_[i].role == Role::kEmployee) regular_.push_back(idx);
  }
  if (regular_.empty()) regular_.push_back(0);
}

std::uint32_t PortalSimulator::Impl::random_victim(Rng& r,
                                                   std::unordered_set<std::uint32_t>& taken) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    const std::uint32_t v = regular_[r.below(regular_.size())];
    if (taken.insert(v).second) return v;
  }
  return regular_[r.below(regular_.size())];
}

// ---- networks --------------------------------------------------------------------------------

std::int16_t PortalSimulator::Impl::trip_city(std::uint32_t emp, const LocalTime& lt) const {
  if (!employees_[emp].traveler) return kNoCity;
  const std::int64_t week = floor_div(lt.day + 3, 7);
  const std::uint64_t h = hash3(opt_.seed ^ 0x7417, emp, static_cast<std::uint64_t>(week));
  if (h % 100 >= 15) return kNoCity;
  const int first = static_cast<int>((h >> 8) % 3);      // leaves Monday to Wednesday
  const int days = 2 + static_cast<int>((h >> 16) % 3);  // for two to four days
  if (lt.weekday < first || lt.weekday >= first + days) return kNoCity;
  return static_cast<std::int16_t>(kFirstTravelCity + (h >> 24) % kTravelCities);
}

bool PortalSimulator::Impl::office_day(std::uint32_t emp, const LocalTime& lt) const {
  if (employees_[emp].office < 0 || lt.weekend() || lt.hour < 7.0 || lt.hour >= 17.5) return false;
  return hash3(opt_.seed ^ 0x0ff1ce, emp, static_cast<std::uint64_t>(lt.day)) % 100 < 75;
}

Endpoint PortalSimulator::Impl::home_endpoint(std::uint32_t emp, const LocalTime& lt,
                                              std::uint32_t device) const {
  const Employee& e = employees_[emp];
  const std::int64_t lease = (lt.day + e.lease_phase) / e.lease_days;
  const std::uint64_t h = hash3(opt_.seed ^ 0x40e, e.household, static_cast<std::uint64_t>(lease));
  const std::int16_t city = (h >> 40) % 40 == 0 ? kNoCity : e.home_city;  // some lack enrichment
  if (e.home_v6) {
    // One /64 per lease; privacy addresses change daily per device.
    const std::uint64_t iid = hash3(h, device, static_cast<std::uint64_t>(lt.day));
    return endpoint_v6(v6_net_in(kAsns[e.home_isp], h), iid, city, e.home_isp);
  }
  return endpoint_v4(ip_in(kAsns[e.home_isp], h), city, e.home_isp);
}

Endpoint PortalSimulator::Impl::cellular_endpoint(std::uint16_t carrier, std::int16_t trip,
                                                  Rng& r) const {
  const Asn& a = kAsns[carrier];
  const std::uint64_t h = r.next();
  // Carrier addresses geolocate to a regional gateway: mostly Kansas City or St. Louis for a
  // Missouri phone, sometimes Dallas or Chicago (a source of benign "travel").
  std::int16_t city = trip;
  if (city == kNoCity) {
    const auto hub = (h >> 48) % 100;
    city = a.cities[hub < 45 ? 0 : hub < 85 ? 1 : hub < 93 ? 2 : 3];
  }
  if ((h >> 40) % 50 == 0) city = kNoCity;
  if (a.v6_hi && (h >> 32) % 100 < 45) return endpoint_v6(v6_net_in(a, h), r.next(), city, carrier);
  return endpoint_v4(ip_in(a, h), city, carrier);
}

Endpoint PortalSimulator::Impl::hosting_endpoint(std::uint16_t asn, Rng& r, bool v6) const {
  const Asn& a = kAsns[asn];
  const std::uint64_t h = r.next();
  const std::int16_t city = a.cities[(h >> 56) % 4];
  if (v6 && a.v6_hi) return endpoint_v6(v6_net_in(a, h), 1 + (h >> 40) % 255, city, asn);
  return endpoint_v4(ip_in(a, h), city, asn);
}

Endpoint PortalSimulator::Impl::foreign_endpoint(Rng& r) const {
  const auto asn = static_cast<std::uint16_t>(kFirstForeign + r.below(kForeignCount));
  const Asn& a = kAsns[asn];
  const std::uint64_t h = r.next();
  return endpoint_v4(ip_in(a, h), a.cities[(h >> 56) % 4], asn);
}

Endpoint PortalSimulator::Impl::residential_proxy_endpoint(Rng& r) const {
  if (r.chance(0.35)) return foreign_endpoint(r);
  const auto asn =
      static_cast<std::uint16_t>(kFirstResidential + pick_weighted(r, kResidentialWeights));
  const auto city = static_cast<std::int16_t>(kFirstUsCity + r.below(kUsCities));
  return endpoint_v4(ip_in(kAsns[asn], r.next()), city, asn);
}

PortalSimulator::Impl::Access PortalSimulator::Impl::pick_access(std::uint32_t emp,
                                                                 const LocalTime& lt, Rng& r,
                                                                 std::vector<Endpoint>& eps,
                                                                 bool home_only) {
  const Employee& e = employees_[emp];
  Access a;
  const bool has_phone = e.device_count > 1;
  int device = 0;
  const std::int16_t trip = home_only ? kNoCity : trip_city(emp, lt);
  if (trip != kNoCity) {
    device = has_phone && r.chance(0.5) ? 1 : 0;
    if (device == 1 && r.chance(0.6)) {
      a.cellular = true;
      a.carrier = e.carrier;
      a.city = trip;
      eps.push_back(cellular_endpoint(e.carrier, trip, r));
    } else {  // hotel or conference wifi
      const auto isp = static_cast<std::uint16_t>(kFirstResidential + r.below(kResidentialCount));
      eps.push_back(endpoint_v4(ip_in(kAsns[isp], hash3(opt_.seed, emp, lt.day)), trip, isp));
    }
  } else if (!home_only && office_day(emp, lt)) {
    a.office = true;
    device = has_phone && r.chance(0.1) ? 1 : 0;
    const Office& o = kOffices[static_cast<std::size_t>(e.office)];
    eps.push_back(endpoint_v4(o.ip, o.city, kStateAsn));
  } else if (!home_only && e.corp_vpn && r.chance(0.7)) {
    const std::uint32_t ip = kCorpVpnIps[hash3(opt_.seed, emp, lt.day) % kCorpVpnIps.size()];
    eps.push_back(endpoint_v4(ip, kJeffersonCity, kStateAsn));
  } else {
    const double phone_share = lt.hour >= 18 || lt.hour < 7 || lt.weekend() ? 0.55 : 0.4;
    if (has_phone && r.chance(phone_share)) {
      device = 1;
    } else if (e.device_count > 2 && r.chance(0.3)) {
      device = 2;
    }
    if (device == 1 && !home_only && r.chance(0.35)) {
      a.cellular = true;
      a.carrier = e.carrier;
      eps.push_back(cellular_endpoint(e.carrier, kNoCity, r));
      a.city = eps.back().city;
    } else if (!home_only && e.consumer_vpn && r.chance(0.7)) {
      const auto exit = static_cast<std::uint32_t>(r.below(kConsumerVpnExits));
      eps.push_back(endpoint_v4(ip_in(kAsns[kM247], hash3(opt_.seed, 0x0e417, exit)),
                                kAsns[kM247].cities[exit % 4], kM247));
    } else {
      eps.push_back(home_endpoint(emp, lt, device_id(emp, device)));
    }
  }
  a.device = device_id(emp, device);
  a.ua = e.device_ua[static_cast<std::size_t>(device)];
  if (!home_only && r.chance(0.004)) {  // a new phone or laptop, or a cleared browser
    a.known_device = false;
    a.device =
        mix32((0x40000000u | static_cast<std::uint32_t>(r.next() & 0x3fffffffu)) ^ device_salt_);
    a.ua = r.chance(0.5) ? kPhoneUas[pick_weighted(r, kPhoneWeights)]
                         : static_cast<std::uint8_t>(pick_weighted(r, kHomeDesktopWeights));
  }
  return a;
}

// ---- benign sessions -------------------------------------------------------------------------

void PortalSimulator::Impl::plan_session(Session& s, std::uint32_t emp, TimeMs t0, Rng& r,
                                         std::uint32_t session_id) {
  const Employee& e = employees_[emp];
  const LocalTime lt = central_time(t0);
  s.steps.clear();
  s.endpoints.clear();
  s.names.clear();
  s.next = 0;
  const Access a = pick_access(emp, lt, r, s.endpoints, false);
  Proto p;
  p.user = static_cast<std::int32_t>(emp);
  p.session = session_id;
  p.device = a.device;
  p.ua = a.ua;
  p.flags = kHasSession | kHasDevice;
  TimeMs t = t0;
  auto add = [&](Op op, Reason reason = Reason::kNone, Page page = Page::kNone,
                 std::int32_t record = -1, std::uint16_t status = 0) {
    s.steps.push_back(make_step(p, t, op, reason, page, record, status));
  };
  const auto own = static_cast<std::int32_t>(e.number);

  // First factor.
  const bool expiry_morning = expiry_days_.count(lt.day) && lt.hour >= 6 && lt.hour < 12;
  const double p_expired = expiry_morning ? 0.3 : 0.0015;
  const double u = r.uniform();
  if (u < p_expired) {
    add(Op::kLoginFail, Reason::kExpiredPassword);
    if (r.chance(0.15)) {
      t += r.between(5'000, 20'000);
      add(Op::kLoginFail, Reason::kExpiredPassword);
    }
    t += r.between(40'000, 180'000);
    add(Op::kExpiredChange);
    t += r.between(5'000, 20'000);
  } else if (u < p_expired + 0.003) {  // forgot the password
    const int tries = 2 + static_cast<int>(r.below(3));
    for (int i = 0; i < tries; ++i) {
      add(Op::kLoginFail, Reason::kBadPassword);
      t += r.between(6'000, 30'000);
    }
    if (tries == 4 && r.chance(0.3)) {
      add(Op::kLoginFail, Reason::kLocked);
      t += r.between(10'000, 40'000);
    }
    add(Op::kResetRequest);
    t += r.between(60'000, 300'000);
    add(Op::kResetDone);
    t += r.between(10'000, 40'000);
  } else if (u < p_expired + 0.008) {  // typed the user name wrong
    std::string typo = lower(e.name);
    if (typo.size() > 3 && r.chance(0.5)) {
      std::swap(typo[typo.size() - 1], typo[typo.size() - 2]);
    } else {
      typo.pop_back();
    }
    if (typo.empty() || by_name_.count(typo)) typo = lower(e.name) + "1x";
    s.names.push_back(std::move(typo));
    Proto q = p;
    q.user = -2;
    s.steps.push_back(make_step(q, t, Op::kLoginFail, Reason::kUnknownUser));
    t += r.between(4'000, 15'000);
  } else if (u < p_expired + 0.068) {  // an ordinary password typo
    add(Op::kLoginFail, Reason::kBadPassword);
    t += r.between(4'000, 15'000);
    if (r.chance(0.12)) {
      add(Op::kLoginFail, Reason::kBadPassword);
      t += r.between(5'000, 20'000);
    }
    if (r.chance(0.03)) return;  // gives up for now
  }
  p.flags |= kShowRoles;
  add(Op::kLoginOk);

  // Second factor: always on a new device, sometimes on a remembered one.
  if (!a.known_device || r.chance(a.office ? 0.15 : 0.35)) {
    t += r.between(8'000, 35'000);
    const double v = r.uniform();
    if (v < 0.02) {
      add(Op::kMfaFail, Reason::kMfaTimeout);
      t += r.between(20'000, 60'000);
    } else if (v < 0.035) {
      add(Op::kMfaFail, Reason::kMfaDenied);
      t += r.between(5'000, 15'000);
    }
    add(Op::kMfaOk);
  }

  // Pages.
  auto think = [&](double median_ms) {
    const double d = median_ms * std::exp(0.9 * r.normal());
    t += std::clamp<TimeMs>(static_cast<TimeMs>(d), 1'000, 10 * kMinuteMs);
    if (a.cellular && r.chance(0.05)) {  // the phone moved to another tower or gateway
      s.endpoints.push_back(cellular_endpoint(a.carrier, a.city, r));
      p.endpoint = static_cast<std::uint16_t>(s.endpoints.size() - 1);
    }
  };
  auto other_employee = [&]() {
    return static_cast<std::int32_t>(employees_[r.below(employees_.size())].number);
  };
  const bool payday = opt_.paydays && is_payday(lt);
  const bool w2_season = lt.month == 1 || (lt.month == 2 && lt.mday <= 15);

  if (e.role == Role::kHrAdmin && r.chance(0.4)) {
    // Case work: many colleagues' records, a few pages each.
    const int n = 10 + static_cast<int>(r.below(51));
    std::int32_t record = other_employee();
    for (int i = 0; i < n; ++i) {
      think(12'000);
      if (i == 0 || r.chance(0.6)) record = other_employee();
      static constexpr std::array<Page, 4> kHrPages{Page::kHrProfile, Page::kHrPaystub,
                                                    Page::kHrBenefits, Page::kDirectory};
      add(Op::kView, Reason::kNone, kHrPages[r.below(kHrPages.size())], record);
    }
  } else if (e.role == Role::kPayrollAdmin && r.chance(0.4)) {
    const int n = 10 + static_cast<int>(r.below(41));
    for (int i = 0; i < n; ++i) {
      think(15'000);
      add(Op::kView, Reason::kNone,
          r.chance(0.5) ? Page::kPayrollDirectDeposit : Page::kPayrollPaystub, other_employee());
    }
    if (r.chance(0.3)) {
      think(20'000);
      add(Op::kDownload, Reason::kNone, Page::kPayrollRegister);
    }
  } else {
    // Self service: what people come for.
    std::array<double, 12> w{30, 8, w2_season ? 30.0 : 4.0, 6, 3, 6, 6, 9, 8, 5, 3, 0};
    //                     paystub hist  w2                hsa  hsaT ret  dc  prof dir dd  ben
    if (payday) {
      w[0] *= 2.5;
      w[9] *= 2.0;
    }
    static constexpr std::array<Page, 12> kSelfPages{
        Page::kPaystubLatest,   Page::kPaystubHistory, Page::kW2,           Page::kHsaBalance,
        Page::kHsaTransactions, Page::kRetirement,     Page::kDeferredComp, Page::kProfile,
        Page::kDirectory,       Page::kDirectDeposit,  Page::kBeneficiary,  Page::kNone};
    int n = 1;
    while (n < 25 && r.chance(0.7)) ++n;
    for (int i = 0; i < n; ++i) {
      think(i == 0 ? 3'000 : 15'000);
      const Page page = kSelfPages[pick_weighted(r, w)];
      if (page == Page::kDirectory) {
        add(Op::kView, Reason::kNone, page, other_employee());
        continue;
      }
      add(Op::kView, Reason::kNone, page, own);
      if (page == Page::kPaystubLatest && r.chance(0.1)) {
        think(5'000);
        add(Op::kDownload, Reason::kNone, Page::kPaystubPdf, own);
      } else if (page == Page::kW2 && r.chance(w2_season ? 0.6 : 0.2)) {
        think(5'000);
        add(Op::kDownload, Reason::kNone, Page::kW2Pdf, own);
      }
    }
    // Changes: the benign twins of account takeover, from the user's own device and network.
    const double c = r.uniform();
    Page view = Page::kNone, change = Page::kNone;
    if (c < 0.004) {
      view = Page::kProfile, change = Page::kAddressChange;
    } else if (c < 0.004 + (payday ? 0.004 : 0.0015)) {
      view = Page::kDirectDeposit, change = Page::kDirectDepositChange;
    } else if (c < 0.0095) {
      view = Page::kBeneficiary, change = Page::kBeneficiaryChange;
    } else if (c < 0.0115) {
      view = Page::kDeferredComp, change = Page::kDeferredCompChange;
    }
    if (change != Page::kNone) {
      think(10'000);
      add(Op::kView, Reason::kNone, view, own);
      think(40'000);
      add(Op::kChange, Reason::kNone, change, own);
      think(5'000);
      add(Op::kView, Reason::kNone, view, own);
    }
  }
  if (r.chance(0.55)) {
    think(10'000);
    add(Op::kLogout);
  }
}

double PortalSimulator::Impl::mean_events_per_session() {
  // A fixed ordinary weekday morning, so that events_per_second means the same thing whatever the
  // start; paydays, W-2 season and expiry mornings then add load on top, as they do for real.
  constexpr TimeMs kReference = 1'791'990'000'000;  // 2026-10-14 (Wednesday) 10:00 CDT
  Rng r(hash3(opt_.seed, 3));
  Session s;
  std::uint64_t total = 0;
  constexpr int kSamples = 4000;
  for (int i = 0; i < kSamples; ++i) {
    plan_session(s, tickets_[r.below(tickets_.size())], kReference, r, 0);
    total += s.steps.size();
  }
  return std::max(1.0, static_cast<double>(total) / kSamples);
}

double PortalSimulator::Impl::sessions_per_ms(TimeMs t) const {
  double rate = peak_sessions_per_ms_;
  if (!opt_.diurnal && !opt_.paydays) return rate;
  const LocalTime lt = central_time(t);
  if (opt_.diurnal) rate *= std::max(0.01, diurnal_shape(lt));
  if (opt_.paydays && is_payday(lt)) rate *= 1.3;
  return rate;
}

void PortalSimulator::Impl::start_session(TimeMs t, bool prefill) {
  std::uint32_t slot;
  if (!free_sessions_.empty()) {
    slot = free_sessions_.back();
    free_sessions_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(sessions_.size());
    sessions_.emplace_back();
  }
  Session& s = sessions_[slot];
  const std::uint32_t emp = tickets_[benign_.below(tickets_.size())];
  const std::uint32_t id = mix32((benign_sessions_++ & 0x7fffffffu) ^ session_salt_);
  plan_session(s, emp, t, benign_, id);
  if (prefill) {
    while (s.next < s.steps.size() && s.steps[s.next].t < opt_.start) ++s.next;
  }
  if (s.next >= s.steps.size()) {
    free_sessions_.push_back(slot);
    return;
  }
  push(s.steps[s.next].t, kSessionActor | slot);
}

// ---- attacks ---------------------------------------------------------------------------------

namespace {

/// Helpers for writing one attack's plan.
class AttackPlan {
 public:
  AttackPlan(AttackRun& run, std::uint32_t session_salt, std::uint32_t device_salt)
      : run_(run), session_salt_(session_salt), device_salt_(device_salt) {}

  std::uint16_t endpoint(const Endpoint& e) {
    if (run_.endpoints.size() >= 0xffff)
      return static_cast<std::uint16_t>(run_.endpoints.size() - 1);
    run_.endpoints.push_back(e);
    return static_cast<std::uint16_t>(run_.endpoints.size() - 1);
  }
  std::string_view ip(std::uint16_t endpoint) const { return run_.endpoints[endpoint].text(); }
  std::uint32_t session() {
    return mix32((0x80000000u | (run_.uid & 0x7ffu) << 20 | (run_.session_counter++ & 0xfffffu)) ^
                 session_salt_);
  }
  std::uint32_t device() {
    return mix32((0x80000000u | (run_.uid & 0x7ffu) << 20 | (run_.device_counter++ & 0xfffffu)) ^
                 device_salt_);
  }
  std::int32_t name(std::string n) {
    run_.names.push_back(std::move(n));
    return -2 - static_cast<std::int32_t>(run_.names.size() - 1);
  }
  std::uint16_t label(std::string entity_type, std::string entity,
                      std::vector<EntityRef> alternates = {}) {
    LabelTemplate l;
    l.id = "atk" + std::string(run_.spec_index < 10 ? "0" : "") + std::to_string(run_.spec_index);
    if (run_.repeat) l.id += "r" + std::to_string(run_.repeat);
    l.entity_type = std::move(entity_type);
    l.entity = std::move(entity);
    l.alternates = std::move(alternates);
    run_.labels.push_back(std::move(l));
    return static_cast<std::uint16_t>(run_.labels.size() - 1);
  }
  /// Numbers the labels "-001", "-002"... when the attack has more than one.
  void finish() {
    if (run_.labels.size() > 1) {
      for (std::size_t i = 0; i < run_.labels.size(); ++i) {
        std::string n = std::to_string(i + 1);
        run_.labels[i].id += "-" + std::string(n.size() < 3 ? 3 - n.size() : 0, '0') + n;
      }
    }
    std::stable_sort(run_.steps.begin(), run_.steps.end(),
                     [](const Step& a, const Step& b) { return a.t < b.t; });
  }
  void add(const Proto& p, TimeMs t, Op op, Reason reason = Reason::kNone, Page page = Page::kNone,
           std::int32_t record = -1, std::uint16_t status = 0) {
    run_.steps.push_back(make_step(p, t, op, reason, page, record, status));
  }

 private:
  AttackRun& run_;
  std::uint32_t session_salt_;
  std::uint32_t device_salt_;
};

std::int64_t scaled(double base, double intensity, std::int64_t minimum) {
  return std::max<std::int64_t>(minimum, std::llround(base * std::max(0.0, intensity)));
}

}  // namespace

void PortalSimulator::Impl::plan_attack(AttackRun& run) {
  run.planned = true;
  Rng r(hash3(opt_.seed ^ 0xa77ac4, run.spec_index, run.repeat));
  AttackPlan plan(run, session_salt_, device_salt_);
  const AttackSpec& spec = run.spec;
  const TimeMs start = spec.start;
  const TimeMs dur = std::max<TimeMs>(kMinuteMs, spec.duration);
  const double intensity = spec.intensity;
  std::unordered_set<std::uint32_t> taken;
  auto user_of = [](std::uint32_t emp) { return static_cast<std::int32_t>(emp); };
  auto asn_text = [](std::uint16_t asn) { return std::to_string(kAsns[asn].number); };
  auto lt_of = [](TimeMs t) { return central_time(t); };
  // The benign-looking visit of a real employee (unlabelled): login, maybe MFA, a few pages.
  auto own_visit = [&](std::uint32_t emp, TimeMs t, Proto& p, int pages) {
    plan.add(p, t, Op::kLoginOk);
    t += r.between(8'000, 30'000);
    plan.add(p, t, Op::kMfaOk);
    for (int i = 0; i < pages; ++i) {
      t += r.between(3'000, 40'000);
      static constexpr std::array<Page, 4> kPages{Page::kPaystubLatest, Page::kProfile,
                                                  Page::kRetirement, Page::kPaystubHistory};
      plan.add(p, t, Op::kView, Reason::kNone, kPages[r.below(kPages.size())],
               static_cast<std::int32_t>(employees_[emp].number));
    }
    return t;
  };

  switch (spec.kind) {
    case AttackKind::kBruteForce: {
      const std::uint32_t victim = random_victim(r, taken);
      const int sources = r.chance(0.5) ? 1 : 2;
      std::vector<EntityRef> alts;
      std::array<std::uint16_t, 2> eps{};
      for (int i = 0; i < sources; ++i) {
        eps[i] = plan.endpoint(
            r.chance(0.5)
                ? hosting_endpoint(
                      static_cast<std::uint16_t>(kDigitalOcean + r.below(kHostingCount)), r)
                : foreign_endpoint(r));
        alts.push_back({"ip", std::string(plan.ip(eps[i]))});
      }
      Proto p;
      p.user = user_of(victim);
      p.ua = r.pick(kAttackerBrowserUas);
      p.label = plan.label("user", employees_[victim].name, std::move(alts));
      const std::int64_t n = scaled(300, intensity, 20);
      for (std::int64_t i = 0; i < n; ++i) {
        const TimeMs t =
            start + static_cast<TimeMs>((static_cast<double>(i) + 0.8 * r.uniform()) *
                                        static_cast<double>(dur) / static_cast<double>(n));
        p.endpoint = eps[sources == 1 ? 0 : r.below(2)];
        p.session = plan.session();
        p.flags = kHasSession;
        plan.add(p, t, Op::kLoginFail, Reason::kBadPassword);
      }
      break;
    }

    case AttackKind::kPasswordSpray: {
      const bool v6 = spec.variant == 1;
      Proto p;
      p.ua = r.pick(kAttackerBrowserUas);
      std::uint16_t asn = static_cast<std::uint16_t>(r.chance(0.5) ? kHetzner : kOvh);
      std::uint64_t net64 = 0;
      if (v6) {
        net64 = v6_net_in(kAsns[asn], r.next());
        p.label = plan.label("ip", v6_prefix64_text(net64), {{"asn", asn_text(asn)}});
      } else {
        const Endpoint e = r.chance(0.6) ? hosting_endpoint(asn, r) : foreign_endpoint(r);
        asn = e.asn;
        p.endpoint = plan.endpoint(e);
        p.label = plan.label("ip", std::string(e.text()), {{"asn", asn_text(asn)}});
      }
      const std::int64_t accounts = scaled(250, intensity, 10);
      struct Target {
        std::int32_t user;
        bool valid;
      };
      std::vector<Target> targets;
      for (std::int64_t i = 0; i < accounts; ++i) {
        if (r.chance(0.85)) {
          targets.push_back({user_of(random_victim(r, taken)), true});
        } else {
          targets.push_back({plan.name(make_unknown_name(r)), false});
        }
      }
      const std::int64_t want_success =
          accounts >= 50 ? std::max<std::int64_t>(1, accounts / 100) : 0;
      std::int64_t successes = 0;
      auto attempt = [&](const Target& target, TimeMs t, bool may_succeed) {
        p.user = target.user;
        p.session = plan.session();
        p.flags = kHasSession;
        if (v6) p.endpoint = plan.endpoint(endpoint_v6(net64, r.next(), kAsns[asn].cities[0], asn));
        if (!target.valid) {
          plan.add(p, t, Op::kLoginFail, Reason::kUnknownUser);
        } else if (may_succeed && successes < want_success && r.chance(0.02)) {
          ++successes;
          p.flags |= kShowRoles;
          plan.add(p, t, Op::kLoginOk);
          plan.add(p, t + r.between(60'000, 90'000), Op::kMfaFail, Reason::kMfaTimeout);
        } else {
          plan.add(p, t, Op::kLoginFail, Reason::kBadPassword);
        }
      };
      // Round one over every account, round two (another season's password) over a third.
      const TimeMs round1 = dur * 6 / 10;
      for (std::size_t i = 0; i < targets.size(); ++i) {
        attempt(targets[i],
                start + static_cast<TimeMs>((i + r.uniform()) * round1 / targets.size()), true);
      }
      std::vector<std::size_t> second;
      for (std::size_t i = 0; i < targets.size(); ++i)
        if (r.chance(0.3)) second.push_back(i);
      for (std::size_t k = 0; k < second.size(); ++k) {
        attempt(targets[second[k]],
                start + round1 +
                    static_cast<TimeMs>((k + r.uniform()) * (dur - round1) / second.size()),
                false);
      }
      break;
    }

    case AttackKind::kCredentialStuffing:
    case AttackKind::kLowAndSlowStuffing: {
      const bool slow = spec.kind == AttackKind::kLowAndSlowStuffing;
      Proto p;
      p.label = plan.label("global", "global");
      const std::int64_t sources = slow ? scaled(120, intensity, 10) : scaled(400, intensity, 20);
      std::vector<std::uint16_t> eps;
      for (std::int64_t i = 0; i < sources; ++i)
        eps.push_back(plan.endpoint(residential_proxy_endpoint(r)));
      // The combo list: leaked names, most of which are not ours.
      const double unknown_share = slow ? 0.55 : 0.65;
      const double success_rate = slow ? 0.005 : 0.02;
      auto attempt = [&](std::uint16_t ep, TimeMs t) {
        p.endpoint = ep;
        p.ua = static_cast<std::uint8_t>(r.chance(0.8) ? pick_weighted(r, kHomeDesktopWeights)
                                                       : kPhoneUas[r.below(kPhoneUas.size())]);
        p.session = plan.session();
        p.flags = kHasSession;
        if (r.chance(0.5)) {  // tools fake a fresh fingerprint per try
          p.device = plan.device();
          p.flags |= kHasDevice;
        }
        if (r.chance(unknown_share)) {
          p.user = plan.name(make_unknown_name(r));
          plan.add(p, t, Op::kLoginFail, Reason::kUnknownUser);
          return;
        }
        p.user = user_of(regular_[r.below(regular_.size())]);
        if (r.chance(success_rate)) {
          p.flags |= kShowRoles;
          plan.add(p, t, Op::kLoginOk);
          plan.add(p, t + r.between(20'000, 90'000), Op::kMfaFail,
                   r.chance(0.7) ? Reason::kMfaTimeout : Reason::kMfaDenied);
        } else {
          plan.add(p, t, Op::kLoginFail, Reason::kBadPassword);
        }
      };
      if (slow) {
        // Each source tries once about every ten minutes, for hours.
        for (std::uint16_t ep : eps) {
          TimeMs t = start + r.between(0, 10 * kMinuteMs);
          while (t < start + dur) {
            attempt(ep, t);
            t += r.between(8 * kMinuteMs, 12 * kMinuteMs);
          }
        }
      } else {
        // A wave that ramps up and down; no single source is loud.
        const std::int64_t n = scaled(3000, intensity, 100);
        for (std::int64_t i = 0; i < n; ++i) {
          const double x = 0.15 * r.uniform() + 0.7 * r.uniform() + 0.15 * r.uniform();
          attempt(eps[r.below(eps.size())],
                  start + static_cast<TimeMs>(x * static_cast<double>(dur)));
        }
      }
      break;
    }

    case AttackKind::kEnumeration: {
      const std::uint32_t account = random_victim(r, taken);
      Proto p;
      p.endpoint = plan.endpoint(
          hosting_endpoint(static_cast<std::uint16_t>(kDigitalOcean + r.below(kHostingCount)), r));
      p.user = user_of(account);
      p.session = plan.session();
      p.device = plan.device();
      p.ua = r.pick(kAttackerBrowserUas);
      p.flags = kHasSession | kHasDevice | kShowRoles;
      p.label =
          plan.label("ip", std::string(plan.ip(p.endpoint)),
                     {{"session", id_text('s', p.session)}, {"user", employees_[account].name}});
      TimeMs t = start;
      plan.add(p, t, Op::kLoginOk);
      t += r.between(10'000, 25'000);
      plan.add(p, t, Op::kMfaOk);
      const std::int64_t n = scaled(600, intensity, 30);
      const double gap = static_cast<double>(dur - (t - start)) / static_cast<double>(n);
      const std::uint32_t range = number_range_;
      std::uint32_t k = r.below(
          range > static_cast<std::uint32_t>(n) ? range - static_cast<std::uint32_t>(n) : 1);
      for (std::int64_t i = 0; i < n; ++i, ++k) {
        t += std::max<TimeMs>(50, static_cast<TimeMs>(gap * (0.5 + r.uniform())));
        const bool exists = k < range && number_used_[k];
        plan.add(p, t, Op::kView, exists ? Reason::kNone : Reason::kNotFound, Page::kDirectory,
                 static_cast<std::int32_t>(kFirstEmployeeNumber + k), exists ? 200 : 404);
      }
      break;
    }

    case AttackKind::kAutomation: {
      const std::uint32_t account = random_victim(r, taken);
      Proto p;
      p.endpoint = plan.endpoint(hosting_endpoint(r.chance(0.5) ? kAmazon : kVultr, r));
      p.user = user_of(account);
      p.ua = r.pick(kToolUas);
      p.label =
          plan.label("ip", std::string(plan.ip(p.endpoint)), {{"user", employees_[account].name}});
      // A polling script: exact period, re-authenticating every ten minutes.
      const TimeMs period =
          std::max<TimeMs>(250, static_cast<TimeMs>(3000.0 / std::max(0.01, intensity)));
      TimeMs session_end = 0;
      for (TimeMs t = start; t < start + dur; t += period + r.between(-2, 2)) {
        if (t >= session_end) {
          p.session = plan.session();
          p.flags = kHasSession | kShowRoles;
          plan.add(p, t, Op::kLoginOk);
          plan.add(p, t + 1'000, Op::kMfaOk);
          session_end = t + 10 * kMinuteMs;
          t += 1'000;
          continue;
        }
        plan.add(p, t, Op::kView, Reason::kNone,
                 r.chance(0.5) ? Page::kPaystubLatest : Page::kHsaBalance,
                 static_cast<std::int32_t>(employees_[account].number));
      }
      break;
    }

    case AttackKind::kAccountTakeover: {
      // Phished credentials (with the one-time code relayed) used from a few servers of one
      // provider: new device, hosting network, then bank details or savings accounts.
      const std::uint16_t provider = kDigitalOcean;
      std::array<std::uint16_t, 3> hosts{};
      for (auto& h : hosts) h = plan.endpoint(hosting_endpoint(provider, r));
      const std::int64_t victims = std::min<std::int64_t>(
          scaled(50, intensity, 1), static_cast<std::int64_t>(regular_.size()));
      const std::array<std::uint8_t, 2> uas{kAttackerBrowserUas[0], kAttackerBrowserUas[1]};
      for (std::int64_t v = 0; v < victims; ++v) {
        const std::uint32_t victim = random_victim(r, taken);
        const auto own = static_cast<std::int32_t>(employees_[victim].number);
        Proto p;
        p.endpoint = hosts[r.below(hosts.size())];
        p.user = user_of(victim);
        p.session = plan.session();
        p.device = plan.device();
        p.ua = uas[r.below(2)];
        p.flags = kHasSession | kHasDevice;
        p.label =
            plan.label("user", employees_[victim].name,
                       {{"ip", std::string(plan.ip(p.endpoint))}, {"asn", asn_text(provider)}});
        TimeMs t = start + r.between(0, std::max<TimeMs>(0, dur - 10 * kMinuteMs));
        p.flags |= kShowRoles;
        plan.add(p, t, Op::kLoginOk);
        t += r.between(15'000, 45'000);
        plan.add(p, t, Op::kMfaOk);
        t += r.between(3'000, 10'000);
        plan.add(p, t, Op::kView, Reason::kNone, Page::kProfile, own);
        if (r.chance(0.6)) {
          t += r.between(5'000, 20'000);
          plan.add(p, t, Op::kView, Reason::kNone, Page::kDirectDeposit, own);
          t += r.between(30'000, 90'000);
          plan.add(p, t, Op::kChange, Reason::kNone, Page::kDirectDepositChange, own);
          t += r.between(3'000, 10'000);
          plan.add(p, t, Op::kView, Reason::kNone, Page::kDirectDeposit, own);
        } else {
          t += r.between(5'000, 20'000);
          plan.add(p, t, Op::kView, Reason::kNone, Page::kHsaBalance, own);
          t += r.between(5'000, 20'000);
          plan.add(p, t, Op::kView, Reason::kNone, Page::kHsaTransactions, own);
          t += r.between(5'000, 20'000);
          plan.add(p, t, Op::kView, Reason::kNone, Page::kDeferredComp, own);
          if (r.chance(0.3)) {
            t += r.between(5'000, 20'000);
            plan.add(p, t, Op::kView, Reason::kNone, Page::kRetirement, own);
          }
        }
      }
      break;
    }

    case AttackKind::kImpossibleTravel: {
      const std::int64_t victims =
          std::min<std::int64_t>(std::max<std::int64_t>(1, std::llround(intensity)),
                                 static_cast<std::int64_t>(regular_.size()));
      for (std::int64_t v = 0; v < victims; ++v) {
        const std::uint32_t victim = random_victim(r, taken);
        TimeMs t = start + r.between(0, dur / 2);
        // The employee at home in Missouri (unlabelled: that part is genuine).
        std::vector<Endpoint> home;
        Proto own;
        Access a;
        {
          Rng pick(r.next());
          a = pick_access(victim, lt_of(t), pick, home, true);
        }
        own.endpoint = plan.endpoint(home.front());
        own.user = user_of(victim);
        own.session = plan.session();
        own.device = a.device;
        own.ua = a.ua;
        own.flags = kHasSession | kHasDevice | kShowRoles;
        TimeMs home_end = own_visit(victim, t, own, 2);
        // Minutes later, the same account from another continent.
        Proto far;
        Endpoint abroad = foreign_endpoint(r);
        while (abroad.city == kNoCity || std::string_view(kCities[abroad.city].country) == "US")
          abroad = foreign_endpoint(r);
        far.endpoint = plan.endpoint(abroad);
        far.user = own.user;
        far.session = plan.session();
        far.device = plan.device();
        far.ua = r.pick(kAttackerBrowserUas);
        far.flags = kHasSession | kHasDevice | kShowRoles;
        far.label =
            plan.label("user", employees_[victim].name, {{"ip", std::string(abroad.text())}});
        t = home_end + r.between(5 * kMinuteMs, 20 * kMinuteMs);
        plan.add(far, t, Op::kLoginOk);
        t += r.between(10'000, 30'000);
        plan.add(far, t, Op::kMfaOk);
        for (Page page : {Page::kProfile, Page::kPaystubLatest}) {
          t += r.between(5'000, 30'000);
          plan.add(far, t, Op::kView, Reason::kNone, page,
                   static_cast<std::int32_t>(employees_[victim].number));
        }
      }
      break;
    }

    case AttackKind::kMfaFatigue: {
      const std::uint32_t victim = random_victim(r, taken);
      const auto own = static_cast<std::int32_t>(employees_[victim].number);
      Proto p;
      p.endpoint = plan.endpoint(r.chance(0.5) ? foreign_endpoint(r) : hosting_endpoint(kM247, r));
      p.user = user_of(victim);
      p.device = plan.device();
      p.ua = r.pick(kAttackerBrowserUas);
      p.label =
          plan.label("user", employees_[victim].name, {{"ip", std::string(plan.ip(p.endpoint))}});
      const std::int64_t pushes = scaled(12, intensity, 3);
      const double gap = static_cast<double>(dur) * 0.8 / static_cast<double>(pushes);
      TimeMs t = start;
      for (std::int64_t i = 0; i < pushes; ++i) {
        p.session = plan.session();
        p.flags = kHasSession | kHasDevice | kShowRoles;
        plan.add(p, t, Op::kLoginOk);
        if (r.chance(0.4)) {
          plan.add(p, t + r.between(3'000, 15'000), Op::kMfaFail, Reason::kMfaDenied);
        } else {
          plan.add(p, t + 60'000, Op::kMfaFail, Reason::kMfaTimeout);
        }
        t += std::max<TimeMs>(61'000, static_cast<TimeMs>(gap * (0.6 + 0.8 * r.uniform())));
      }
      // Worn down, the employee approves.
      p.session = plan.session();
      plan.add(p, t, Op::kLoginOk);
      t += r.between(5'000, 20'000);
      plan.add(p, t, Op::kMfaOk);
      t += r.between(5'000, 20'000);
      plan.add(p, t, Op::kView, Reason::kNone, Page::kDirectDeposit, own);
      t += r.between(30'000, 90'000);
      plan.add(p, t, Op::kChange, Reason::kNone, Page::kDirectDepositChange, own);
      break;
    }

    case AttackKind::kSessionHijack: {
      const std::uint32_t victim = random_victim(r, taken);
      const auto own_record = static_cast<std::int32_t>(employees_[victim].number);
      TimeMs t = start;
      std::vector<Endpoint> home;
      Access a;
      {
        Rng pick(r.next());
        a = pick_access(victim, lt_of(t), pick, home, true);
      }
      Proto own;
      own.endpoint = plan.endpoint(home.front());
      own.user = user_of(victim);
      own.session = plan.session();
      own.device = a.device;
      own.ua = a.ua;
      own.flags = kHasSession | kHasDevice | kShowRoles;
      t = own_visit(victim, t, own, 3);
      // The stolen cookie replayed from elsewhere, by another browser.
      Proto thief = own;
      thief.endpoint =
          plan.endpoint(r.chance(0.5) ? hosting_endpoint(kM247, r) : foreign_endpoint(r));
      do {
        thief.ua = static_cast<std::uint8_t>(r.below(kAttackerBrowserUas.back() + 1));
      } while (kUserAgents[thief.ua].cls == UaClass::kTool ||
               kUserAgents[thief.ua].cls == kUserAgents[a.ua].cls);
      thief.label = plan.label(
          "session", id_text('s', own.session),
          {{"user", employees_[victim].name}, {"ip", std::string(plan.ip(thief.endpoint))}});
      const std::int64_t n = scaled(8, intensity, 3);
      TimeMs th = t + r.between(60'000, 5 * kMinuteMs);
      static constexpr std::array<Page, 5> kLoot{Page::kHsaBalance, Page::kDirectDeposit,
                                                 Page::kDeferredComp, Page::kProfile,
                                                 Page::kHsaTransactions};
      for (std::int64_t i = 0; i < n; ++i) {
        if (i == n * 2 / 3) {
          plan.add(thief, th, Op::kChange, Reason::kNone, Page::kDirectDepositChange, own_record);
        } else {
          plan.add(thief, th, Op::kView, Reason::kNone, kLoot[r.below(kLoot.size())], own_record);
        }
        th += r.between(10'000, 40'000);
      }
      // Meanwhile the employee keeps reading.
      for (int i = 0; i < 2; ++i) {
        t += r.between(30'000, 120'000);
        plan.add(own, t, Op::kView, Reason::kNone, Page::kPaystubHistory, own_record);
      }
      break;
    }

    case AttackKind::kMultiAccountSource: {
      Proto p;
      Endpoint e = residential_proxy_endpoint(r);
      p.endpoint = plan.endpoint(e);
      p.device = plan.device();
      p.ua = r.pick(kAttackerBrowserUas);
      p.label = plan.label("ip", std::string(e.text()),
                           {{"device", id_text('d', p.device)}, {"asn", asn_text(e.asn)}});
      const std::int64_t accounts = std::min<std::int64_t>(
          scaled(30, intensity, 3), static_cast<std::int64_t>(regular_.size()));
      for (std::int64_t i = 0; i < accounts; ++i) {
        const std::uint32_t victim = random_victim(r, taken);
        const auto own = static_cast<std::int32_t>(employees_[victim].number);
        p.user = user_of(victim);
        p.session = plan.session();
        p.flags = kHasSession | kHasDevice | kShowRoles;
        TimeMs t = start + static_cast<TimeMs>((i + 0.7 * r.uniform()) * static_cast<double>(dur) /
                                               static_cast<double>(accounts));
        plan.add(p, t, Op::kLoginOk);
        t += r.between(15'000, 40'000);
        plan.add(p, t, Op::kMfaOk);
        t += r.between(3'000, 8'000);
        plan.add(p, t, Op::kView, Reason::kNone, Page::kPaystubLatest, own);
        if (r.chance(0.5)) {
          t += r.between(5'000, 20'000);
          plan.add(p, t, Op::kView, Reason::kNone, Page::kDirectDeposit, own);
        }
      }
      break;
    }
  }
  plan.finish();
  // Nothing before the stream starts.
  while (run.next < run.steps.size() && run.steps[run.next].t < opt_.start) ++run.next;
}

// ---- output ----------------------------------------------------------------------------------

void PortalSimulator::Impl::write(std::string& out, const Step& s, const std::vector<Endpoint>& eps,
                                  const std::vector<std::string>& names,
                                  const AttackLabel* label) const {
  const Employee* emp = s.user >= 0 ? &employees_[static_cast<std::size_t>(s.user)] : nullptr;
  const std::string_view name = emp ? std::string_view(emp->name)
                                : s.user <= -2
                                    ? std::string_view(names[static_cast<std::size_t>(-2 - s.user)])
                                    : std::string_view();
  last_user_.assign(name);
  std::string_view action, path, method = "POST";
  bool failure = false;
  std::uint16_t status = s.status;
  switch (s.op) {
    case Op::kLoginOk:
      action = "login", path = "/ess/login", status = 302;
      break;
    case Op::kLoginFail:
      action = "login", path = "/ess/login", failure = true;
      status = s.reason == Reason::kLocked ? 423 : s.reason == Reason::kExpiredPassword ? 403 : 401;
      break;
    case Op::kMfaOk:
      action = "mfa", path = "/ess/mfa/verify", status = 302;
      break;
    case Op::kMfaFail:
      action = "mfa", path = "/ess/mfa/verify", failure = true, status = 401;
      break;
    case Op::kResetRequest:
      action = "password_reset", path = "/ess/password/forgot", status = 200;
      break;
    case Op::kResetDone:
      action = "password_reset", path = "/ess/password/reset", status = 200;
      break;
    case Op::kExpiredChange:
      action = "password_reset", path = "/ess/password/expired", status = 200;
      break;
    case Op::kView:
      action = "view", method = "GET";
      break;
    case Op::kDownload:
      action = "download", method = "GET";
      break;
    case Op::kChange:
      action = "change";
      break;
    case Op::kLogout:
      action = "logout", path = "/ess/logout", method = "GET", status = 302;
      break;
  }
  const PageInfo& page = kPages[static_cast<std::size_t>(s.page)];
  if (s.page != Page::kNone) {
    path = page.path;
    if (status == 0) status = 200;
    failure = status >= 400;
  }

  out.clear();
  out += "{\"@timestamp\":\"";
  append_rfc3339(out, s.t);
  out += "\",\"event\":{\"action\":\"";
  out += action;
  out += failure ? "\",\"outcome\":\"failure\"" : "\",\"outcome\":\"success\"";
  if (s.reason != Reason::kNone) {
    out += ",\"reason\":\"";
    out += kReasonText[static_cast<std::size_t>(s.reason)];
    out += '"';
  }
  out += "},\"user\":{\"name\":";
  append_json_string(out, name);
  if (emp) {
    out += ",\"id\":\"";
    append_employee_id(out, emp->number);
    out += '"';
    if (s.flags & kShowRoles) {
      out += ",\"roles\":";
      out += roles_json_[static_cast<std::size_t>(emp->role)];
    }
  }
  const Endpoint& ep = eps[s.endpoint];
  out += "},\"source\":{\"ip\":\"";
  out.append(ep.ip.data(), ep.ip_len);
  out += '"';
  if (ep.city != kNoCity) {
    out += ',';
    out += geo_json_[static_cast<std::size_t>(ep.city)];
  }
  out += ',';
  out += as_json_[ep.asn];
  out += "},";
  out += ua_json_[s.ua];
  if (s.flags & kHasDevice) {
    out += ",\"device\":{\"id\":\"d-";
    append_hex8(out, s.device);
    out += "\"}";
  }
  if (s.flags & kHasSession) {
    out += ",\"session\":{\"id\":\"s-";
    append_hex8(out, s.session);
    out += "\"}";
  }
  out += ",\"url\":{\"path\":\"";
  out += path;
  if (page.record_in_path && s.record >= 0) {
    append_employee_id(out, static_cast<std::uint32_t>(s.record));
    out += page.suffix;
  }
  out += "\"},\"http\":{\"request\":{\"method\":\"";
  out += method;
  out += "\"},\"response\":{\"status_code\":";
  append_json_int(out, status);
  out += "}}";
  if (s.page != Page::kNone) {
    out += ",\"portal\":{\"app\":\"";
    out += page.app;
    out += '"';
    if (s.record >= 0) {
      out += ",\"record\":{\"id\":\"";
      append_employee_id(out, static_cast<std::uint32_t>(s.record));
      out += "\"}";
    }
    out += '}';
  }
  if (label && opt_.label_events) {
    out += ",\"labels\":{\"attack_id\":";
    append_json_string(out, label->id);
    out += ",\"attack\":\"";
    out += to_string(label->kind);
    out += "\"}";
  }
  out += '}';
}

void PortalSimulator::Impl::write_flood(std::string& out) {
  const std::uint64_t n = flood_events_++;
  // Every source once a round, each round shifted by one, so that (with as many names as
  // sources) a source tries the next name each round, not the same one again. An odd multiplier
  // permutes the 2^23 addresses of the blocks.
  const std::uint64_t source = (n % opt_.flood_sources + n / opt_.flood_sources) % opt_.flood_sources;
  const auto slot = static_cast<std::uint32_t>((source * 0x9e3779b1ull) & (kMaxFloodSources - 1));
  const FloodBlock& block = kFloodBlocks[slot >> 20];
  const std::uint32_t h = mix32(slot);
  flood_endpoint_[0] = endpoint_v4(block.base + (slot & 0xfffff), static_cast<std::int16_t>(kFirstUsCity + h % kUsCities),
                                   block.asn);
  // Name n mod flood_accounts: first, last and number are a bijection of the index.
  const std::uint64_t a = n % opt_.flood_accounts;
  std::string& name = flood_name_[0];
  name = kFirstNames[a % kFirstNames.size()];
  name += '.';
  name += kSurnames[a / kFirstNames.size() % kSurnames.size()];
  name += std::to_string(a / (kFirstNames.size() * kSurnames.size()));
  name += '@';
  name += kMailDomains[mix32(static_cast<std::uint32_t>(a)) % kMailDomains.size()];

  // Each bot (source) keeps its client: a session cookie, a user agent, and for half of them a
  // device fingerprint, so the flood's keys of every kind grow with its sources, not its events.
  Step step;
  step.t = last_t_;
  step.user = -2;  // flood_name_[0]
  step.session = mix32(static_cast<std::uint32_t>(source) ^ session_salt_ ^ 0x5bd1e995u);
  step.flags = kHasSession;
  if (h & 0x100) {
    step.device = mix32(static_cast<std::uint32_t>(source) ^ device_salt_ ^ 0x5bd1e995u);
    step.flags |= kHasDevice;
  }
  step.ua = (h >> 12) % 10 < 8 ? static_cast<std::uint8_t>((h >> 16) % kHomeDesktopWeights.size())
                               : kPhoneUas[(h >> 16) % kPhoneUas.size()];
  const double u = flood_.uniform();
  step.op = u < 0.01 ? Op::kLoginOk : Op::kLoginFail;
  step.reason = u < 0.01 ? Reason::kNone : u < 0.35 ? Reason::kBadPassword : Reason::kUnknownUser;

  if (flood_label_ < 0) {
    AttackLabel l;
    l.id = "flood";
    l.kind = AttackKind::kCredentialStuffing;
    l.start = step.t;
    l.entity_type = "global";
    l.entity = "global";
    l.spec_index = opt_.attacks.size();
    flood_label_ = static_cast<std::int64_t>(labels_.size());
    labels_.push_back(std::move(l));
  }
  AttackLabel& label = labels_[static_cast<std::size_t>(flood_label_)];
  label.end = step.t;
  ++label.events;
  if (step.op == Op::kLoginOk) ++label.successful_logins;
  write(out, step, flood_endpoint_, flood_name_, &label);
}

TimeMs PortalSimulator::Impl::next(std::string& line) {
  if (opt_.flood_share > 0 && flood_.uniform() < opt_.flood_share) {
    write_flood(line);
    ++events_;
    return last_t_;
  }
  while (!queue_.empty()) {
    const QueueItem item = queue_.top();
    queue_.pop();
    if (item.actor == kArrivalActor) {
      start_session(item.t, false);
      const double rate = sessions_per_ms(item.t);
      next_arrival_ = item.t + std::max<TimeMs>(0, std::llround(benign_.exponential(1.0 / rate)));
      push(next_arrival_, kArrivalActor);
      continue;
    }
    if (item.actor & kSessionActor) {
      const std::uint32_t slot = item.actor & ~kSessionActor;
      Session& s = sessions_[slot];
      const Step& step = s.steps[s.next++];
      write(line, step, s.endpoints, s.names, nullptr);
      last_t_ = step.t;
      if (s.next < s.steps.size()) {
        push(s.steps[s.next].t, item.actor);
      } else {
        free_sessions_.push_back(slot);
      }
      ++events_;
      return last_t_;
    }
    // An attack.
    const std::uint32_t index = item.actor;
    if (!runs_[index].planned) {
      if (opt_.repeat_attacks_every > 0) {
        AttackRun again;
        again.spec = runs_[index].spec;
        again.spec.start += opt_.repeat_attacks_every;
        again.spec_index = runs_[index].spec_index;
        again.repeat = runs_[index].repeat + 1;
        again.uid = static_cast<std::uint32_t>(runs_.size());
        runs_.push_back(std::move(again));
        push(runs_.back().spec.start, static_cast<std::uint32_t>(runs_.size() - 1));
      }
      AttackRun& run = runs_[index];
      plan_attack(run);
      if (run.next < run.steps.size()) push(run.steps[run.next].t, index);
      continue;
    }
    AttackRun& run = runs_[index];
    const Step& step = run.steps[run.next++];
    const AttackLabel* label = nullptr;
    if (step.label != kNoLabel) {
      LabelTemplate& tpl = run.labels[step.label];
      if (tpl.global < 0) {
        AttackLabel l;
        l.id = tpl.id;
        l.kind = run.spec.kind;
        l.start = step.t;
        l.entity_type = tpl.entity_type;
        l.entity = tpl.entity;
        l.spec_index = run.spec_index;
        l.alternates = tpl.alternates;
        tpl.global = static_cast<std::int64_t>(labels_.size());
        labels_.push_back(std::move(l));
      }
      AttackLabel& l = labels_[static_cast<std::size_t>(tpl.global)];
      l.end = step.t;
      ++l.events;
      if (step.op == Op::kLoginOk) ++l.successful_logins;
      label = &l;
    }
    write(line, step, run.endpoints, run.names, label);
    last_t_ = step.t;
    if (run.next < run.steps.size()) {
      push(run.steps[run.next].t, index);
    } else {
      // Free the plan's memory; the labels stay.
      run.steps = {};
      run.endpoints = {};
      run.names = {};
    }
    ++events_;
    return last_t_;
  }
  line.clear();
  return -1;
}

// ---------------------------------------------------------------------------------------------

PortalSimulator::PortalSimulator(SimulatorOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
PortalSimulator::~PortalSimulator() = default;
PortalSimulator::PortalSimulator(PortalSimulator&&) noexcept = default;
PortalSimulator& PortalSimulator::operator=(PortalSimulator&&) noexcept = default;

TimeMs PortalSimulator::next(std::string& line) { return impl_->next(line); }
std::string_view PortalSimulator::last_user() const { return impl_->last_user_; }
const std::vector<AttackLabel>& PortalSimulator::attacks() const { return impl_->labels_; }
std::uint64_t PortalSimulator::events_generated() const { return impl_->events_; }
bool PortalSimulator::exhausted() const { return impl_->queue_.empty(); }
const SimulatorOptions& PortalSimulator::options() const { return impl_->opt_; }

std::vector<std::string> PortalSimulator::office_nat_ips() {
  std::vector<std::string> out;
  for (const Office& o : kOffices) out.emplace_back(endpoint_v4(o.ip, o.city, kStateAsn).text());
  return out;
}

}  // namespace portalwatch::sim
