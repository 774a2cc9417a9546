// Fuzz harness: the control protocol (daemon/control_protocol.h), one input = one line a client
// sent (the request parser, what a hostile client reaches first) and, through the same bytes, the
// client's parsers of what a server sent (reply and streamed lines) and operator durations.
//
// A request line is either a valid request or an error, never both. A valid request prints to a
// canonical line that parses to the same request, and that line and its audit arguments are one
// JSON object each.
#include <string>

#include "daemon/control_protocol.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portalwatch;
  const std::string_view line(reinterpret_cast<const char*>(data), size);

  const ControlParseResult r = parse_control_request(line);
  FUZZ_CHECK(r.request.has_value() == r.error.empty());
  if (r.token) FUZZ_CHECK(r.token->size() <= kMaxControlTokenBytes);
  if (r.request) {
    const std::string canonical = control_request_json(*r.request, r.token.value_or(""));
    FUZZ_CHECK(is_json_object(canonical));
    const ControlParseResult again = parse_control_request(canonical);
    FUZZ_CHECK(again.request.has_value());
    FUZZ_CHECK(control_request_json(*again.request, again.token.value_or("")) == canonical);
    FUZZ_CHECK(again.token == r.token);
    const std::string args = control_request_args_json(*r.request);
    FUZZ_CHECK(is_json_object(args));
    FUZZ_CHECK(is_json_object(control_audit_record(0, ControlPeer{}, to_string(r.request->command), args, "ok", "")));
  } else {
    // The error goes back to the client in a reply line, which the client must read back.
    const ControlReply reply = parse_control_reply(control_error_line(control_error::kBadRequest, r.error));
    FUZZ_CHECK(!reply.ok && reply.error_code == control_error::kBadRequest && reply.error_message == r.error);
  }

  // The same bytes as a server's reply or streamed line, as the client reads them.
  const ControlReply reply = parse_control_reply(line);
  if (reply.ok) FUZZ_CHECK(is_json_object(reply.result_json));
  const ControlStreamLine streamed = parse_control_stream_line(line);
  if (streamed.kind == ControlStreamLine::Kind::kItem) FUZZ_CHECK(is_json_object(streamed.item_json));

  std::string why;
  const auto seconds = parse_duration_seconds(line, &why);
  FUZZ_CHECK(seconds.has_value() == why.empty());
  if (seconds) FUZZ_CHECK(*seconds > 0 && *seconds <= 10LL * 366 * 86400);
  return 0;
}
