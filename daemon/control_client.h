// The control client: connects to portalwatchd's control socket (or its TLS listener), sends
// requests and reads replies and streamed lines, each with a deadline. portalwatchctl and the
// tests use it.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/control.h"

namespace portalwatch {

/// Why a connection could not be made (portalwatchctl exits 3 with message).
struct ControlConnectError {
  int sys_errno = 0;    ///< the errno of a failed connect, 0 for other failures (TLS)
  std::string message;  ///< says where, why, and what to check
};

struct ControlTlsOptions {
  std::string ca_file;  ///< PEM certificates to verify the server with; empty: the system's
};

struct ControlClientImpl;

class ControlClient {
 public:
  using Timeout = std::chrono::milliseconds;
  static constexpr Timeout kDefaultTimeout{30'000};

  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  /// Connects to the Unix socket at path; nullptr with error when it cannot.
  static std::unique_ptr<ControlClient> connect_unix(const std::string& path,
                                                     ControlConnectError& error,
                                                     Timeout timeout = kDefaultTimeout);
  /// Connects to HOST:PORT over TLS (the certificate is verified against ca_file and host); every
  /// request then carries token.
  static std::unique_ptr<ControlClient> connect_tcp(const std::string& host_port,
                                                    const ControlTlsOptions& tls, std::string token,
                                                    ControlConnectError& error,
                                                    Timeout timeout = kDefaultTimeout);

  /// Sends request and waits for its reply. A transport failure (the daemon went away, the
  /// deadline passed) is !ok with error_code "disconnected".
  ControlReply call(const ControlRequest& request, Timeout timeout = kDefaultTimeout);
  /// Sends bytes as they are (tests of hostile input); false if the connection failed.
  bool send_raw(std::string_view bytes, Timeout timeout = kDefaultTimeout);
  /// The next line received (without its newline); nullopt at end of stream, on error, or when
  /// timeout (none: wait for ever) passes.
  std::optional<std::string> read_line(std::optional<Timeout> timeout = kDefaultTimeout);
  /// The line call() sends for request (with the token over TCP).
  std::string request_line(const ControlRequest& request) const;

 private:
  explicit ControlClient(std::unique_ptr<ControlClientImpl> impl);
  std::unique_ptr<ControlClientImpl> impl_;
};

/// The error code call() uses for a failed transport.
inline constexpr std::string_view kControlDisconnected = "disconnected";

}  // namespace portalwatch
