#include "detectors/profile.h"

#include <bit>
#include <cstring>

#include "detectors/distinct_counter.h"

namespace portalwatch {

std::uint64_t AccountProfile::device_key(const Event& ev) {
  return ev.device_id.empty() ? 0 : hash_bytes(ev.device_id) | 1;
}

std::uint64_t AccountProfile::network_key(const Event& ev) {
  // The AS when known (a carrier's rotating addresses are one network), else the /24 or /48.
  if (ev.as_number != 0) return (std::uint64_t{1} << 63) | ev.as_number;
  return (ev.source_ip.masked(ev.source_ip.v4 ? 24 : 48).hash() & ~(std::uint64_t{1} << 63)) | 1;
}

std::uint64_t AccountProfile::country_key(const Event& ev) {
  if (ev.geo_country.empty()) return 0;
  std::uint64_t k = 0;
  for (size_t i = 0; i < std::min<size_t>(ev.geo_country.size(), 7); ++i)
    k |= static_cast<std::uint64_t>(static_cast<unsigned char>(ev.geo_country[i])) << (8 * i);
  return k;
}

std::uint64_t AccountProfile::client_key(const Event& ev) {
  return static_cast<std::uint64_t>(classify_user_agent(ev.user_agent).packed()) + 1;
}

SignInKeys SignInKeys::of(const Event& ev) {
  SignInKeys k;
  k.device = AccountProfile::device_key(ev);
  k.network = AccountProfile::network_key(ev);
  k.country = AccountProfile::country_key(ev);
  k.client = AccountProfile::client_key(ev);
  k.hour = static_cast<std::size_t>(((ev.time / kHourMs) % 24 + 24) % 24);
  return k;
}

Novelty AccountProfile::novelty(const SignInKeys& k) const {
  Novelty n;
  if (k.device) n.device = !devices.find(k.device);
  n.network = !networks.find(k.network);
  // A country is new only to an account whose sign-ins were placed before.
  if (k.country && countries.size > 0) n.country = !countries.find(k.country);
  n.client = !clients.find(k.client);
  if (sign_ins >= 50) {
    std::uint32_t total = 0;
    for (auto h : hours) total += h;
    n.hour = total > 0 && hours[k.hour] * 50 < total;
  }
  return n;
}

Novelty AccountProfile::novelty_as_of(const SignInKeys& k, TimeMs t) const {
  const auto new_then = [t](const Seen* s) { return !s || s->first >= t; };
  Novelty n;
  if (k.device) n.device = new_then(devices.find(k.device));
  n.network = new_then(networks.find(k.network));
  if (k.country) {
    bool placed_before = false;
    for (int i = 0; i < countries.size; ++i) placed_before |= countries.items[static_cast<size_t>(i)].first < t;
    n.country = placed_before && new_then(countries.find(k.country));
  }
  n.client = new_then(clients.find(k.client));
  return n;
}

Novelty AccountProfile::observe_sign_in(const SignInKeys& k, const Event& ev) {
  const Novelty n = novelty(k);
  if (k.device) devices.note(k.device, ev.time);
  networks.note(k.network, ev.time);
  if (k.country) countries.note(k.country, ev.time);
  clients.note(k.client, ev.time);
  if (hours[k.hour] < UINT16_MAX) ++hours[k.hour];
  if (sign_ins < UINT32_MAX) ++sign_ins;
  if (first_seen == 0) first_seen = ev.time;
  last_sign_in = std::max(last_sign_in, ev.time);
  if (ev.has_geo_location) {
    last_lat = static_cast<float>(ev.geo_lat);
    last_lon = static_cast<float>(ev.geo_lon);
    last_located = true;
  }
  return n;
}

void AccountProfile::expire(TimeMs now, TimeMs ttl) {
  devices.expire(now - ttl);
  networks.expire(now - ttl);
  countries.expire(now - ttl);
  clients.expire(now - ttl);
}

namespace {

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (x86-64, arm64): checked below
  out.append(b, sizeof(T));
}
static_assert(std::endian::native == std::endian::little, "profiles are stored little-endian");

struct Reader {
  std::string_view in;
  bool ok = true;
  template <typename T>
  T get() {
    T v{};
    if (in.size() < sizeof(T)) {
      ok = false;
      return v;
    }
    std::memcpy(&v, in.data(), sizeof(T));
    in.remove_prefix(sizeof(T));
    return v;
  }
};

template <int N>
void put_set(std::string& out, const SeenSet<N>& s) {
  put<std::uint8_t>(out, s.size);
  for (int i = 0; i < s.size; ++i) {
    const Seen& e = s.items[static_cast<size_t>(i)];
    put(out, e.key);
    put(out, e.first);
    put(out, e.last);
    put(out, e.count);
  }
}

template <int N>
bool get_set(Reader& r, SeenSet<N>& s) {
  const auto n = r.get<std::uint8_t>();
  if (!r.ok || n > N) return false;
  s.size = n;
  for (int i = 0; i < n; ++i) {
    Seen& e = s.items[static_cast<size_t>(i)];
    e.key = r.get<std::uint64_t>();
    e.first = r.get<TimeMs>();
    e.last = r.get<TimeMs>();
    e.count = r.get<std::uint32_t>();
    if (!r.ok || e.first > e.last) return false;
  }
  return true;
}

}  // namespace

std::string AccountProfile::encode() const {
  std::string out;
  out.reserve(128);
  put(out, kFormat);
  put(out, sign_ins);
  put(out, first_seen);
  put(out, last_sign_in);
  put(out, last_lat);
  put(out, last_lon);
  put<std::uint8_t>(out, last_located ? 1 : 0);
  for (auto h : hours) put(out, h);
  put_set(out, devices);
  put_set(out, networks);
  put_set(out, countries);
  put_set(out, clients);
  return out;
}

std::optional<AccountProfile> AccountProfile::decode(std::string_view bytes) {
  Reader r{bytes};
  AccountProfile p;
  if (r.get<std::uint8_t>() != kFormat || !r.ok) return std::nullopt;
  p.sign_ins = r.get<std::uint32_t>();
  p.first_seen = r.get<TimeMs>();
  p.last_sign_in = r.get<TimeMs>();
  p.last_lat = r.get<float>();
  p.last_lon = r.get<float>();
  const auto located = r.get<std::uint8_t>();
  if (located > 1) return std::nullopt;
  p.last_located = located == 1;
  for (auto& h : p.hours) h = r.get<std::uint16_t>();
  if (!r.ok || !get_set(r, p.devices) || !get_set(r, p.networks) || !get_set(r, p.countries) ||
      !get_set(r, p.clients) || !r.in.empty())
    return std::nullopt;
  return p;
}

}  // namespace portalwatch
