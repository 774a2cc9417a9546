// The control protocol on the wire: newline-delimited JSON, one request per line, one reply line
// per request, then (for follow) one line per streamed item. Pure functions over bytes, no I/O:
// the request parser is what a hostile client reaches first, so it is also the fuzzing target.
//
//   request:
//   {"command":"lockdown","state":"on","scope":"app:hsa","reason":"...","ttl_seconds":3600} reply:
//   {"ok":true,"result":{...}}
//             {"ok":false,"error":{"code":"bad_request","message":"..."}}
//   streamed: {"finding":{...}}  {"decision":{...}}
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/control.h"
#include "detectors/time.h"

namespace portalwatch {

/// The longest request line accepted, without its newline.
inline constexpr std::size_t kMaxControlLineBytes = 64 * 1024;
/// The longest token accepted (a token file holds one line).
inline constexpr std::size_t kMaxControlTokenBytes = 1024;

/// What the parser made of one request line.
struct ControlParseResult {
  std::optional<ControlRequest> request;  ///< set when the request is valid
  /// The "token" field when the line was a JSON object with a string token (even when the rest
  /// is invalid, so a TCP server can refuse an unauthenticated client before saying more). Only
  /// ever compared, never logged.
  std::optional<std::string> token;
  /// The command named by the line, when it names a known one (for the audit of a bad request).
  std::optional<ControlCommand> command;
  std::string error;  ///< !request: why, for a bad_request reply
};

/// Parses and validates one request line (without its newline). Never throws and never crashes,
/// whatever the bytes: anything but a valid request is an error with a message for the client.
ControlParseResult parse_control_request(std::string_view line) noexcept;

/// The request as a protocol line (no newline), with token when not empty. Canonical: parsing it
/// gives the same request back.
std::string control_request_json(const ControlRequest& request, std::string_view token = {});
/// The request's arguments (its fields without "command" and never the token) as a JSON object,
/// for the audit log.
std::string control_request_args_json(const ControlRequest& request);

/// Reply lines (no newline). result_json must be one JSON object.
std::string control_ok_line(std::string_view result_json);
std::string control_error_line(std::string_view code, std::string_view message);
/// A streamed item's line: {"finding":<item>} or {"decision":<item>}.
std::string control_stream_line(ControlStream stream, std::string_view item_json);

/// Parses a reply line (client side). A line that is not a reply gives !ok with code "failed".
ControlReply parse_control_reply(std::string_view line);

/// One line received while following.
struct ControlStreamLine {
  enum class Kind : std::uint8_t { kItem, kError, kInvalid } kind = Kind::kInvalid;
  ControlStream stream = ControlStream::kFindings;  ///< kItem
  std::string item_json;                            ///< kItem: the finding or decision object
  std::string error_code, error_message;            ///< kError: the server's last word
};
ControlStreamLine parse_control_stream_line(std::string_view line);

/// Whether text is one JSON object (the check the server applies to what a handler returns and
/// to what is published, so a bug there cannot break the line protocol).
bool is_json_object(std::string_view text) noexcept;

/// One audit record (one JSON line, no newline): when, who, what (arguments without the token),
/// and the outcome ("ok" or an error code, with its message).
std::string control_audit_record(TimeMs at, const ControlPeer& peer, std::string_view command,
                                 std::string_view args_json, std::string_view outcome,
                                 std::string_view message);

/// Parses an operator's duration: a sequence of NUMBER UNIT with units s, m, h, d ("90s", "30m",
/// "2h", "1d", "1h30m"). nullopt (with why) for anything else, for zero, or beyond ten years.
std::optional<std::int64_t> parse_duration_seconds(std::string_view text,
                                                   std::string* why = nullptr);

}  // namespace portalwatch
