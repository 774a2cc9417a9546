#include "daemon/service_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdint>

namespace portalwatch {

ServiceNotifier::ServiceNotifier() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0) interval_ = std::chrono::microseconds(usec);
}

void ServiceNotifier::send(const std::string& message) { sd_notify(0, message.c_str()); }

void ServiceNotifier::ready(const std::string& status) {
  send("READY=1\nSTATUS=" + status);
  last_ping_ = std::chrono::steady_clock::now();
}

void ServiceNotifier::status(const std::string& status) { send("STATUS=" + status); }

void ServiceNotifier::stopping(const std::string& status) { send("STOPPING=1\nSTATUS=" + status); }

void ServiceNotifier::keepalive() {
  if (interval_.count() == 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ping_ < interval_ / 2) return;
  last_ping_ = now;
  send("WATCHDOG=1");
}

}  // namespace portalwatch
