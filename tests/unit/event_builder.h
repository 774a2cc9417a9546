// Builds contract events (../shared/event-schema.md) as JSON text for detector tests, and an
// engine around one detector. Event time is the test's clock: the engine is given stream time,
// so nothing sleeps and nothing reads the wall clock.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "detectors/engine.h"

namespace portalwatch::test {

struct Collect final : FindingSink {
  std::vector<Finding> findings;
  void emit(Finding&& f) override { findings.push_back(std::move(f)); }
  std::vector<Finding> of(EntityType type) const {
    std::vector<Finding> out;
    for (const auto& f : findings)
      if (f.entity_type == type) out.push_back(f);
    return out;
  }
  int at_least(Severity s) const {
    int n = 0;
    for (const auto& f : findings) n += f.severity >= s;
    return n;
  }
};

struct Ev {
  TimeMs t = 0;
  std::string action = "login";
  std::string outcome = "success";
  std::string reason;
  std::string user;
  std::string user_id;
  std::vector<std::string> roles;
  std::string ip = "198.51.100.7";
  int asn = 0;
  std::string ua =
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
  std::string device;
  std::string session;
  std::string app;
  std::string record;
  int status = 0;
  bool located = false;
  double lat = 0, lon = 0;
  std::string country;
  std::string as_org = "Example ISP";

  Ev& at(TimeMs time) {
    t = time;
    return *this;
  }
  Ev& fail(std::string why = "bad_password") {
    outcome = "failure";
    reason = std::move(why);
    return *this;
  }
  Ev& ok() {
    outcome = "success";
    reason.clear();
    return *this;
  }
  Ev& as(std::string name) {
    user = std::move(name);
    return *this;
  }
  Ev& from(std::string address) {
    ip = std::move(address);
    return *this;
  }
  Ev& at_place(double latitude, double longitude, std::string iso_country = "US") {
    located = true, lat = latitude, lon = longitude, country = std::move(iso_country);
    return *this;
  }
  Ev& view(std::string rec, std::string application = "directory") {
    action = "view";
    outcome = "success";
    reason.clear();
    record = std::move(rec);
    app = std::move(application);
    return *this;
  }

  std::string json() const {
    std::string j = R"({"@timestamp":")" + format_rfc3339(t) + R"(","event":{"action":")" + action +
                    R"(","outcome":")" + outcome + "\"";
    if (!reason.empty()) j += R"(,"reason":")" + reason + "\"";
    j += R"(},"user":{"name":")" + user + "\"";
    if (!user_id.empty()) j += R"(,"id":")" + user_id + "\"";
    if (!roles.empty()) {
      j += R"(,"roles":[)";
      for (size_t i = 0; i < roles.size(); ++i) j += (i ? ",\"" : "\"") + roles[i] + "\"";
      j += "]";
    }
    j += R"(},"source":{"ip":")" + ip + "\"";
    if (located)
      j += R"(,"geo":{"country_iso_code":")" + country + R"(","location":{"lat":)" + std::to_string(lat) +
           R"(,"lon":)" + std::to_string(lon) + "}}";
    if (asn) j += R"(,"as":{"number":)" + std::to_string(asn) + R"(,"organization":{"name":")" + as_org + "\"}}";
    j += "}";
    if (!ua.empty()) j += R"(,"user_agent":{"original":")" + ua + "\"}";
    if (!device.empty()) j += R"(,"device":{"id":")" + device + "\"}";
    if (!session.empty()) j += R"(,"session":{"id":")" + session + "\"}";
    if (status) j += R"(,"http":{"response":{"status_code":)" + std::to_string(status) + "}}";
    if (!app.empty() || !record.empty()) {
      j += R"(,"portal":{"app":")" + app + "\"";
      if (!record.empty()) j += R"(,"record":{"id":")" + record + "\"}";
      j += "}";
    }
    return j + "}";
  }
};

/// An engine running one detector on stream time, with optional trusted networks.
inline Engine engine_with(std::unique_ptr<Detector> d, std::vector<TrustedNetwork> trusted = {}) {
  EngineOptions o;
  o.time.reference = TimeOptions::Reference::kStream;
  o.sources.trusted_networks = std::move(trusted);
  std::vector<DetectorInstance> list;
  const std::string name(d->detector());
  list.push_back({DetectorCommon{name, name}, std::move(d)});
  return Engine(o, std::move(list), nullptr);
}

/// Feeds one event; fails the test if the engine rejects it.
inline void feed(Engine& e, const Ev& ev, Collect& out) {
  const auto r = e.process(ev.json(), false, out);
  if (!r.accepted)
    throw std::runtime_error("test event rejected: " + std::string(r.detail) + ": " + ev.json());
}

/// Moves stream time to t with a few unrelated events: replay takes the stream's own median as
/// "now", so a lone event hours ahead would be clamped as a forged future timestamp.
inline void advance(Engine& e, TimeMs t, Collect& out) {
  for (int i = 0; i < 3; ++i) {
    Ev filler = Ev{}.at(t).as("clock").from("192.0.2.1");
    filler.action = "logout";
    feed(e, filler, out);
  }
}

/// A deterministic pseudo-random generator for test traffic.
struct TestRng {
  std::uint64_t s;
  explicit TestRng(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  double uniform() { return static_cast<double>(next() >> 11) / 9007199254740992.0; }
  bool chance(double p) { return uniform() < p; }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
};

inline std::string ipv4(int a, int b, int c, int d) {
  return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + "." +
         std::to_string(d);
}

}  // namespace portalwatch::test
