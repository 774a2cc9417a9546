// The operator control server: a Unix socket (and optionally TCP with TLS and a token) speaking
// the line protocol of daemon/control_protocol.h, on its own thread (Boost.Asio).
//
// It authenticates (SO_PEERCRED on the Unix socket; token and TLS over TCP), parses and validates
// every request, audits every request (accepted or refused) to the audit log and the journal,
// hands valid requests to a ControlHandler on a handler thread, and streams published findings
// and decisions to followers. Nothing a client sends blocks the daemon: connections are capped,
// idle ones closed, and a follower that does not keep up is cut off.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "daemon/control.h"
#include "daemon/control_config.h"
#include "detectors/time.h"

namespace portalwatch {

struct ControlServerImpl;

class ControlServer {
 public:
  /// clock stamps audit records (wall time; injected like everywhere else).
  explicit ControlServer(const Clock& clock);
  ~ControlServer();  ///< stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  /// Opens the audit log, creates the socket (mode and group set before it accepts anyone) and
  /// the TCP listener if enabled, and starts the server's threads. false with error (naming the
  /// configuration key) when any of it fails; nothing is left listening then. handler must
  /// outlive the server (until stop() returns).
  bool start(const ControlConfig& config, ControlHandler& handler, std::string& error);
  /// Closes every connection, drops requests not yet handed to the handler, waits for a handler
  /// call in progress (so a handler must not wait without bound for the thread calling stop()),
  /// and removes the socket file. Idempotent.
  void stop();

  /// Streams one finding or decision (one JSON object, no newline) to the followers of stream.
  /// Thread-safe and never blocks: with no followers it costs an atomic load; a follower whose
  /// queue is full is cut off instead of waited for. Does nothing before start() or after stop();
  /// must not run concurrently with start() itself.
  void publish(ControlStream stream, std::string_view json_object);

  /// The TCP port listened on (0 if none): tests listen on port 0.
  int tcp_port() const;

  /// Counters since the last start().
  struct Stats {
    std::uint64_t requests = 0;             ///< request lines handled (any outcome)
    std::uint64_t refused_connections = 0;  ///< beyond max_connections
    std::uint64_t followers_cut_off = 0;    ///< followers disconnected for being too slow
    std::uint64_t token_failures = 0;       ///< TCP requests with a missing or wrong token
    std::uint64_t followers = 0;            ///< following now
  };
  Stats stats() const;

 private:
  std::unique_ptr<ControlServerImpl> impl_;
};

}  // namespace portalwatch
