// Operator control: the types shared by the control server (daemon/control_server.h), the client
// (daemon/control_client.h), the wire protocol (daemon/control_protocol.h) and whoever executes
// commands inside the daemon (a ControlHandler).
//
// The server owns sockets, authentication, parsing and the audit log; the handler only sees
// requests that are already validated, together with who sent them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "detectors/decision.h"
#include "detectors/ip.h"

namespace portalwatch {

/// Who sent a request.
struct ControlPeer {
  /// No uid/gid: the peer came over TCP, where only the token vouches for it.
  static constexpr uid_t kNoUid = static_cast<uid_t>(-1);
  static constexpr gid_t kNoGid = static_cast<gid_t>(-1);

  uid_t uid = kNoUid;  ///< from SO_PEERCRED (Unix socket)
  gid_t gid = kNoGid;  ///< from SO_PEERCRED (Unix socket)
  pid_t pid = 0;       ///< from SO_PEERCRED; 0 over TCP
  /// The account name of uid (getpwuid), or the uid as text when it has none; over TCP
  /// "remote@<address>".
  std::string user;
  /// "unix" or "tcp:<address>:<port>".
  std::string transport;

  /// What decisions record in their "by": "operator:<user>".
  std::string operator_name() const { return "operator:" + user; }
};

/// The commands of the control protocol.
enum class ControlCommand : std::uint8_t {
  kStatus,     ///< lockdowns on, silences, recent findings and decisions, lag, health
  kLockdown,   ///< a manual lockdown on or off
  kFindings,   ///< recent findings; optionally followed live
  kDecisions,  ///< recent decisions; optionally followed live
  kAllowlist,  ///< networks never locked down: add, remove, list
  kSilence,    ///< a detector's findings lead to no decision for a while
  kReload,     ///< re-read the configuration file
};
inline constexpr std::size_t kControlCommandCount = 7;
std::string_view to_string(ControlCommand c) noexcept;
std::optional<ControlCommand> parse_control_command(std::string_view s) noexcept;

enum class AllowlistOp : std::uint8_t { kAdd, kRemove, kList };
std::string_view to_string(AllowlistOp op) noexcept;

/// A validated request. Only the fields of its command are meaningful; the parser has rejected
/// every field that does not belong to the command, every value of the wrong type or out of
/// range, and every request that lacks a required field.
struct ControlRequest {
  ControlCommand command = ControlCommand::kStatus;

  // lockdown
  bool on = true;  ///< "state": "on" | "off"
  Scope scope;     ///< canonical (an IPv6 address in its RFC 5952 form)
  /// lockdown (required, on and off) and silence (optional): one line, no control characters.
  std::string reason;
  std::int64_t ttl_seconds = 0;  ///< lockdown on: 0 = until lifted, else 1..kMaxTtlSeconds

  // findings, decisions
  int limit = 50;       ///< 0..kMaxLimit most recent items (0 with follow: only new ones)
  bool follow = false;  ///< after the reply, stream new items until the client disconnects

  // allowlist
  AllowlistOp op = AllowlistOp::kList;
  IpNetwork network;    ///< add, remove: canonical (no host bits set)
  std::string comment;  ///< add: optional

  // silence
  std::string detector;      ///< canonical detector name or instance name: [a-z0-9_]+
  std::int64_t seconds = 0;  ///< 0 lifts the silence, else 1..kMaxSilenceSeconds

  static constexpr int kMaxLimit = 1000;
  static constexpr std::int64_t kMaxTtlSeconds = 366 * 86400;
  static constexpr std::int64_t kMaxSilenceSeconds = 31 * 86400;
  static constexpr std::size_t kMaxTextBytes = 1000;  ///< reason, comment
  static constexpr std::size_t kMaxDetectorBytes = 64;

  /// Whether the command changes the daemon's state (lockdown, allowlist add/remove, silence,
  /// reload). The handler records the peer's operator_name() on what such a command changes.
  bool mutating() const noexcept;
};

/// Error codes of the protocol.
namespace control_error {
inline constexpr std::string_view kBadRequest = "bad_request";     ///< the request is not valid
inline constexpr std::string_view kUnauthorized = "unauthorized";  ///< TCP: missing or wrong token
inline constexpr std::string_view kForbidden = "forbidden";        ///< valid, but not allowed
inline constexpr std::string_view kUnavailable = "unavailable";  ///< busy, shutting down, too slow
inline constexpr std::string_view kFailed = "failed";            ///< valid, but it did not work
/// Whether code is one of the above.
bool known(std::string_view code) noexcept;
}  // namespace control_error

/// The outcome of one request.
struct ControlReply {
  bool ok = false;
  /// ok: the result, one JSON object (no newline) in the schema of its command (README).
  std::string result_json;
  std::string error_code;  ///< !ok: one of control_error
  std::string error_message;

  static ControlReply success(std::string result_json) {
    return {true, std::move(result_json), {}, {}};
  }
  static ControlReply failure(std::string_view code, std::string message) {
    return {false, {}, std::string(code), std::move(message)};
  }
};

/// Executes control commands inside the daemon. Implemented by the daemon's response side; tests
/// use a fake.
class ControlHandler {
 public:
  virtual ~ControlHandler() = default;
  /// Executes one validated request from peer. Called on the control server's handler thread, one
  /// request at a time; an implementation marshals onto its own loop and may block until that is
  /// done, for a bounded time (the client waits; other clients and followers do not). Must not
  /// throw (the server turns an exception into "failed", but it is a bug).
  ///
  /// For findings/decisions with follow, the server streams what is published after this call
  /// begins; an item may then arrive both in the result and streamed (clients skip repeated ids).
  virtual ControlReply handle(const ControlPeer& peer, const ControlRequest& request) = 0;
};

/// The live streams a client can follow.
enum class ControlStream : std::uint8_t { kFindings, kDecisions };
std::string_view to_string(ControlStream s) noexcept;

}  // namespace portalwatch
