// Logging to stderr: journald-friendly (syslog priority prefixes when run under systemd), optional
// JSON lines, and a per-key rate limiter for floods (rejected messages, broker errors).
#pragma once

#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <cstdint>

#include "daemon/config.h"

namespace portalwatch {

/// Configures the default spdlog logger from config. Call once at start-up (and on reload).
void init_logging(const LogConfig& config);

/// Allows one log line per key per interval and counts what it held back, so a flood of bad input
/// cannot flood the journal. Not thread-safe; one per thread.
template <std::size_t kKeys>
class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::milliseconds interval) : interval_(interval) {}
  /// Whether to log now; if so, suppressed is set to the lines held back since the last one.
  bool allow(std::size_t key, std::uint64_t& suppressed) {
    const auto now = std::chrono::steady_clock::now();
    Slot& s = slots_[key];
    if (s.logged && now - s.last < interval_) {
      ++s.suppressed;
      return false;
    }
    suppressed = s.suppressed;
    s = Slot{now, 0, true};
    return true;
  }

 private:
  struct Slot {
    std::chrono::steady_clock::time_point last{};
    std::uint64_t suppressed = 0;
    bool logged = false;
  };
  std::chrono::milliseconds interval_;
  std::array<Slot, kKeys> slots_{};
};

}  // namespace portalwatch
