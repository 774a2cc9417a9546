#include "detectors/session_hijack.h"

#include "detectors/distinct_counter.h"

namespace portalwatch {

SessionHijackConfig read_session_hijack_config(MapReader& cfg) {
  SessionHijackConfig c;
  c.session_idle_ms =
      cfg.get_int("session_idle_seconds", c.session_idle_ms / kSecondMs, 60, 30 * 86400) *
      kSecondMs;
  c.ipv4_network_prefix =
      static_cast<int>(cfg.get_int("ipv4_network_prefix", c.ipv4_network_prefix, 8, 32));
  c.ipv6_network_prefix =
      static_cast<int>(cfg.get_int("ipv6_network_prefix", c.ipv6_network_prefix, 16, 128));
  c.max_sessions = static_cast<std::size_t>(
      cfg.get_int("max_sessions", static_cast<std::int64_t>(c.max_sessions), 16, 100'000'000));
  return c;
}

std::unique_ptr<Detector> make_session_hijack(MapReader& cfg, const DetectorCommon& common) {
  return std::make_unique<SessionHijackDetector>(read_session_hijack_config(cfg), common.name);
}

SessionHijackDetector::SessionHijackDetector(SessionHijackConfig config, std::string name)
    : config_(std::move(config)),
      name_(std::move(name)),
      sessions_("sessions", config_.max_sessions, config_.session_idle_ms) {}

FieldSet SessionHijackDetector::fields_used() const {
  return kAlwaysDecodedFields | field_bit(Field::kSessionId) | field_bit(Field::kUserAgent) |
         field_bit(Field::kDeviceId) | field_bit(Field::kAsNumber) | field_bit(Field::kGeoCountry) |
         field_bit(Field::kPortalApp);
}

namespace {

// Length and three 8-byte samples of the user agent: equal for the same header, and for two
// different browsers or systems practically never (their tokens differ at the start or the end).
std::uint64_t ua_print(std::string_view ua) {
  if (ua.size() < 8) return hash_bytes(ua) | 1;
  std::uint64_t a, b, c;
  __builtin_memcpy(&a, ua.data(), 8);
  __builtin_memcpy(&b, ua.data() + ua.size() / 2 - 4, 8);
  __builtin_memcpy(&c, ua.data() + ua.size() - 8, 8);
  std::uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull) ^ (c * 0xC2B2AE3D27D4EB4Full)) + ua.size();
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  return (h ^ (h >> 33)) | 1;
}

}  // namespace

void SessionHijackDetector::on_event(const Event& ev, FindingSink& out) {
  if (ev.session_id.empty()) return;
  Session& s = sessions_.upsert(ev.session_id, ev.time);
  const std::uint64_t print = ev.user_agent.empty() ? 0 : ua_print(ev.user_agent);
  const std::uint64_t device = ev.device_id.empty() ? 0 : hash_bytes(ev.device_id) | 1;
  if (s.established == 0) {
    s.network = network_of(ev.source_ip);
    s.asn = ev.as_number;
    s.device = device;
    s.ua_print = print;
    s.family = classify_user_agent(ev.user_agent);
    s.established = ev.time;
    return;
  }
  // Network first: the cheap test, and the one that almost always says "same".
  const bool other_network = (s.asn != 0 && ev.as_number != 0)
                                 ? s.asn != ev.as_number
                                 : !(network_of(ev.source_ip) == s.network);
  if (!other_network) return;
  const bool other_device = s.device != 0 && device != 0 && s.device != device;
  UaFamily family = s.family;
  if (print != s.ua_print) family = classify_user_agent(ev.user_agent);
  const bool other_browser = !(family == s.family);
  if (!other_device && !other_browser)
    return;  // the same client on another network: a phone on cellular

  const bool change = ev.action == Action::kChange;
  const Severity severity = change ? Severity::kCritical : Severity::kHigh;
  if (!s.episode.report(severity, ev.time, config_.session_idle_ms)) return;
  Finding f = make_finding(detector(), name_, severity, EntityType::kSession,
                           std::string(ev.session_id), ev.time, ev.time - s.established);
  f.summary = "session " + f.entity + " established on " + s.family.text() + " was used from " +
              ev.source_ip.to_string() + " on " + family.text();
  if (change)
    f.summary +=
        ", which changed " + (ev.app.empty() ? std::string("something") : std::string(ev.app));
  if (!ev.user_name.empty()) f.evidence.add("user", ev.user_name);
  f.evidence.add("established_network", s.network.to_string());
  f.evidence.add("established_asn", static_cast<std::int64_t>(s.asn));
  f.evidence.add("established_client", s.family.text());
  f.evidence.add("source", ev.source_ip.to_string());
  f.evidence.add("asn", static_cast<std::int64_t>(ev.as_number));
  f.evidence.add("client", family.text());
  f.evidence.add("other_device", other_device);
  if (!ev.geo_country.empty()) f.evidence.add("country", ev.geo_country);
  f.evidence.add("action", to_string(ev.action));
  if (!ev.app.empty()) f.evidence.add("app", ev.app);
  f.evidence.add("session_age_seconds", (ev.time - s.established) / kSecondMs);
  out.emit(std::move(f));
}

void SessionHijackDetector::on_time(TimeMs watermark, FindingSink&) {
  sessions_.maybe_expire(watermark);
}

std::vector<TableStats> SessionHijackDetector::tables() const {
  return {sessions_.stats(KeyedTable<Session>::kBytesPerKey)};
}

// A reload keeps the counted state unless the new settings change its layout (see Detector).
bool SessionHijackDetector::adopt_settings(Detector& next) {
  auto* n = dynamic_cast<SessionHijackDetector*>(&next);
  if (!n || !(config_.session_idle_ms == n->config_.session_idle_ms && config_.ipv4_network_prefix == n->config_.ipv4_network_prefix &&
      config_.ipv6_network_prefix == n->config_.ipv6_network_prefix)) return false;
  config_ = n->config_;
  sessions_.set_capacity(config_.max_sessions);
  return true;
}

}  // namespace portalwatch
