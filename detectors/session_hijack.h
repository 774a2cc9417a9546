// session_hijack (entity: session): one session id used from a different network *and* a
// different client than the ones it was established with — a stolen session cookie replayed
// elsewhere. A phone moving between Wi-Fi and cellular changes network but not client; a browser
// update changes neither family; so neither alone is a hijack.
//
// Network: the autonomous system when both sides have one, else the address prefix (/24, /48).
// Client: the device id when both sides have one, and the user-agent family (browser and system).
// Critical when the other side changes something (direct deposit, beneficiary...).
#pragma once

#include <memory>
#include <string>

#include "detectors/detector.h"
#include "detectors/severity_ladder.h"
#include "detectors/user_agent.h"

namespace portalwatch {

struct SessionHijackConfig {
  /// A session not seen for this long is forgotten (portal sessions expire well before).
  TimeMs session_idle_ms = 12 * kHourMs;
  int ipv4_network_prefix = 24;
  int ipv6_network_prefix = 48;
  std::size_t max_sessions = 500'000;
};

SessionHijackConfig read_session_hijack_config(MapReader& cfg);
std::unique_ptr<Detector> make_session_hijack(MapReader& cfg, const DetectorCommon& common);

class SessionHijackDetector final : public Detector {
 public:
  SessionHijackDetector(SessionHijackConfig config, std::string name);
  std::string_view detector() const override { return "session_hijack"; }
  void on_event(const Event& ev, FindingSink& out) override;
  void on_time(TimeMs watermark, FindingSink& out) override;
  FieldSet fields_used() const override;
  std::vector<TableStats> tables() const override;
  bool adopt_settings(Detector& next) override;

  /// How the session was established (its first event).
  struct Session {
    IpAddress network;           // source aggregated to the network prefix
    std::uint32_t asn = 0;       // 0 when unknown
    std::uint64_t device = 0;    // hash of device.id, 0 when absent
    std::uint64_t ua_print = 0;  // cheap fingerprint of the user agent, to skip re-classifying it
    UaFamily family;
    TimeMs established = 0;
    Episode episode;
  };

 private:
  IpAddress network_of(const IpAddress& ip) const {
    return ip.masked(ip.v4 ? config_.ipv4_network_prefix : config_.ipv6_network_prefix);
  }

  SessionHijackConfig config_;
  std::string name_;
  KeyedTable<Session> sessions_;
};

}  // namespace portalwatch
