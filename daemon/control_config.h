// The `control:` section: where the operator control server listens, who may connect, where the
// audit log goes, and the optional remote (TCP + TLS + token) listener.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace portalwatch {

class MapReader;

struct ControlTcpConfig {
  bool enabled = false;
  std::string listen = "127.0.0.1:9742";  ///< ADDRESS:PORT ("[::1]:9742" for IPv6); port 0 in tests
  std::string token_file;                 ///< one line: the shared secret every request must carry
  std::string tls_certificate;            ///< PEM certificate chain
  std::string tls_private_key;            ///< PEM private key
};

struct ControlConfig {
  /// The Unix socket; empty: no control socket.
  std::string socket = "/run/portalwatch/control.sock";
  /// Permissions of the socket file: only its owner and group may connect.
  mode_t socket_mode = 0660;
  /// Group the socket file is given (e.g. portalwatch-operators); empty: the daemon's own.
  std::string socket_group;
  /// JSON lines, one per request, appended; empty: the journal only.
  std::string audit_log;
  ControlTcpConfig tcp;

  // Limits. Not in the YAML (the defaults suit every deployment); tests lower them.
  std::size_t max_connections = 16;   ///< beyond: refused with "unavailable"
  int idle_timeout_ms = 60'000;       ///< a connection with no request for this long is closed
  int handshake_timeout_ms = 10'000;  ///< TLS handshake
  int write_timeout_ms = 10'000;      ///< a reply or streamed lines not taken for this long: closed
  std::size_t follower_buffer_bytes =
      1 << 20;                        ///< streamed lines queued per follower; beyond: cut off
  int token_failure_delay_ms = 1000;  ///< a wrong token is answered after this long
  int token_failures_allowed = 5;     ///< per address per minute; then refused for a minute
};

/// Reads `control:` from the root mapping; errors (with file:line:col and key path) go to the
/// root's diagnostics. With tcp.enabled, the token file and the TLS certificate and key are
/// required and must exist.
ControlConfig read_control(MapReader& root);

/// "0660" → 0660; -1 for text that is not 3 or 4 octal digits up to 0777.
int parse_socket_mode(std::string_view text);

/// Splits "ADDRESS:PORT" or "[IPV6]:PORT" (an IP literal, not a host name); false if it is not.
bool parse_listen_address(std::string_view text, std::string& address, unsigned short& port);

}  // namespace portalwatch
