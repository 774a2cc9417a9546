// Telling systemd the truth about the daemon (Type=notify): READY once it consumes, STATUS with
// what it is doing, WATCHDOG pings from the event loop (a loop that stalls stops pinging and
// systemd restarts the service), STOPPING when it shuts down. Without NOTIFY_SOCKET (not started
// by systemd) every call does nothing.
#pragma once

#include <chrono>
#include <string>

namespace portalwatch {

class ServiceNotifier {
 public:
  ServiceNotifier();
  void ready(const std::string& status);
  void status(const std::string& status);
  void stopping(const std::string& status);
  /// Pings the watchdog when half its interval has passed since the last ping. Cheap enough to
  /// call on every turn of the event loop.
  void keepalive();
  /// The interval systemd expects pings within (WatchdogSec=), zero when none.
  std::chrono::microseconds watchdog_interval() const { return interval_; }

 private:
  void send(const std::string& message);
  std::chrono::microseconds interval_{0};
  std::chrono::steady_clock::time_point last_ping_{};
};

}  // namespace portalwatch
