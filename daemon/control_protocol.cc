#include "daemon/control_protocol.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <vector>

#include "detectors/config_node.h"
#include "detectors/json_writer.h"

namespace portalwatch {

// ---- names -----------------------------------------------------------------------------------

std::string_view to_string(ControlCommand c) noexcept {
  switch (c) {
    case ControlCommand::kStatus:
      return "status";
    case ControlCommand::kLockdown:
      return "lockdown";
    case ControlCommand::kFindings:
      return "findings";
    case ControlCommand::kDecisions:
      return "decisions";
    case ControlCommand::kAllowlist:
      return "allowlist";
    case ControlCommand::kSilence:
      return "silence";
    case ControlCommand::kReload:
      return "reload";
  }
  return "status";
}

std::optional<ControlCommand> parse_control_command(std::string_view s) noexcept {
  for (std::size_t i = 0; i < kControlCommandCount; ++i)
    if (to_string(static_cast<ControlCommand>(i)) == s) return static_cast<ControlCommand>(i);
  return std::nullopt;
}

std::string_view to_string(AllowlistOp op) noexcept {
  switch (op) {
    case AllowlistOp::kAdd:
      return "add";
    case AllowlistOp::kRemove:
      return "remove";
    case AllowlistOp::kList:
      return "list";
  }
  return "list";
}

std::string_view to_string(ControlStream s) noexcept {
  return s == ControlStream::kDecisions ? "decisions" : "findings";
}

bool ControlRequest::mutating() const noexcept {
  switch (command) {
    case ControlCommand::kLockdown:
    case ControlCommand::kSilence:
    case ControlCommand::kReload:
      return true;
    case ControlCommand::kAllowlist:
      return op != AllowlistOp::kList;
    case ControlCommand::kStatus:
    case ControlCommand::kFindings:
    case ControlCommand::kDecisions:
      return false;
  }
  return true;
}

bool control_error::known(std::string_view code) noexcept {
  return code == kBadRequest || code == kUnauthorized || code == kForbidden ||
         code == kUnavailable || code == kFailed;
}

// ---- request parsing -------------------------------------------------------------------------

namespace {

// Requests are flat objects; anything nested deeper than this is refused by simdjson itself
// before it costs memory.
constexpr std::size_t kMaxDepth = 8;
constexpr std::size_t kMaxFields = 16;

/// The fields each command takes, besides "command" and "token".
const std::vector<std::string>& fields_of(ControlCommand c) {
  static const std::array<std::vector<std::string>, kControlCommandCount> kFields = {{
      /* status */ {},
      /* lockdown */ {"state", "scope", "reason", "ttl_seconds"},
      /* findings */ {"limit", "follow"},
      /* decisions */ {"limit", "follow"},
      /* allowlist */ {"op", "network", "comment"},
      /* silence */ {"detector", "seconds", "reason"},
      /* reload */ {},
  }};
  return kFields[static_cast<std::size_t>(c)];
}

/// A client's text (a field name, a value) quoted for an error message: escaped and cut short, so
/// an error never echoes kilobytes or control characters back.
std::string quoted(std::string_view s) {
  constexpr std::size_t kMax = 64;
  std::string out;
  append_json_string(out, s.substr(0, kMax));
  if (s.size() > kMax) out.insert(out.size() - 1, "...");
  return out;
}

/// A parse failure: the message for the client.
struct Invalid {
  std::string message;
};

class RequestFields {
 public:
  /// Collects the object's fields; false (with why) on a duplicate or too many.
  bool collect(simdjson::dom::object object, std::string& why) {
    for (auto field : object) {
      if (fields_.size() == kMaxFields) {
        why = "too many fields";
        return false;
      }
      for (const auto& [name, value] : fields_)
        if (name == field.key) {
          why = "duplicate field " + quoted(field.key);
          return false;
        }
      fields_.emplace_back(field.key, field.value);
    }
    return true;
  }

  const std::vector<std::pair<std::string_view, simdjson::dom::element>>& all() const {
    return fields_;
  }

  std::optional<simdjson::dom::element> find(std::string_view name) const {
    for (const auto& [n, v] : fields_)
      if (n == name) return v;
    return std::nullopt;
  }

  /// A string field; nullopt when absent. Throws Invalid on another type, and on control
  /// characters: no field of the protocol has a use for them, and an escaped NUL or ESC must not
  /// reach a parser that stops at NUL (IpAddress::parse) or an operator's terminal.
  std::optional<std::string_view> string(std::string_view name) const {
    const auto v = find(name);
    if (!v) return std::nullopt;
    std::string_view s;
    if (v->get_string().get(s)) throw Invalid{"\"" + std::string(name) + "\": expected a string"};
    if (name != "token" && std::any_of(s.begin(), s.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        }))
      throw Invalid{"\"" + std::string(name) + "\" must be one line without control characters"};
    return s;
  }
  std::string_view required_string(std::string_view name, std::string_view command) const {
    const auto s = string(name);
    if (!s) throw Invalid{"\"" + std::string(name) + "\" is required for " + std::string(command)};
    return *s;
  }
  /// An integer field in [min, max]; nullopt when absent. Throws Invalid otherwise.
  std::optional<std::int64_t> integer(std::string_view name, std::int64_t min,
                                      std::int64_t max) const {
    const auto v = find(name);
    if (!v) return std::nullopt;
    const std::string range = "\"" + std::string(name) + "\": expected an integer from " +
                              std::to_string(min) + " to " + std::to_string(max);
    std::int64_t i = 0;
    switch (v->type()) {
      case simdjson::dom::element_type::INT64:
        if (v->get_int64().get(i)) throw Invalid{range};
        break;
      case simdjson::dom::element_type::UINT64:  // beyond int64: out of range whatever max is
        throw Invalid{range};
      default:
        throw Invalid{range};
    }
    if (i < min || i > max) throw Invalid{range};
    return i;
  }
  std::optional<bool> boolean(std::string_view name) const {
    const auto v = find(name);
    if (!v) return std::nullopt;
    bool b = false;
    if (v->get_bool().get(b))
      throw Invalid{"\"" + std::string(name) + "\": expected true or false"};
    return b;
  }

 private:
  std::vector<std::pair<std::string_view, simdjson::dom::element>> fields_;
};

/// Operator text that ends up in decisions, logs and the audit log: valid UTF-8 (simdjson checks
/// the document, this also catches escaped lone surrogates), one line, bounded.
std::string checked_text(std::string_view s, std::string_view name, bool required) {
  const std::string quoted_name = "\"" + std::string(name) + "\"";
  if (s.size() > ControlRequest::kMaxTextBytes)
    throw Invalid{quoted_name + " is longer than " + std::to_string(ControlRequest::kMaxTextBytes) +
                  " bytes"};
  if (!simdjson::validate_utf8(s.data(), s.size()))
    throw Invalid{quoted_name + " is not valid UTF-8"};
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      throw Invalid{quoted_name + " must be one line without control characters"};
  const bool blank = std::all_of(s.begin(), s.end(), [](char c) { return c == ' '; });
  if (required && blank)
    throw Invalid{quoted_name + " must say why (it is recorded with the decision)"};
  return std::string(s);
}

void read_lockdown(const RequestFields& f, ControlRequest& r) {
  const auto state = f.required_string("state", "lockdown");
  if (state != "on" && state != "off") throw Invalid{"\"state\": expected \"on\" or \"off\""};
  r.on = state == "on";
  const auto scope_text = f.required_string("scope", "lockdown");
  std::string why;
  auto scope = Scope::parse(scope_text, &why);
  if (!scope) throw Invalid{"\"scope\": " + quoted(scope_text) + ": " + why};
  r.scope = std::move(*scope);
  r.reason = checked_text(f.required_string("reason", "lockdown"), "reason", true);
  if (const auto ttl = f.integer("ttl_seconds", 0, ControlRequest::kMaxTtlSeconds)) {
    if (!r.on && *ttl != 0) throw Invalid{"\"ttl_seconds\" applies only to lockdown on"};
    r.ttl_seconds = *ttl;
  }
}

void read_listing(const RequestFields& f, ControlRequest& r) {
  if (const auto limit = f.integer("limit", 0, ControlRequest::kMaxLimit))
    r.limit = static_cast<int>(*limit);
  if (const auto follow = f.boolean("follow")) r.follow = *follow;
}

void read_allowlist(const RequestFields& f, ControlRequest& r) {
  const auto op = f.required_string("op", "allowlist");
  if (op == "add") {
    r.op = AllowlistOp::kAdd;
  } else if (op == "remove") {
    r.op = AllowlistOp::kRemove;
  } else if (op == "list") {
    r.op = AllowlistOp::kList;
  } else {
    throw Invalid{"\"op\": expected \"add\", \"remove\" or \"list\""};
  }
  if (r.op == AllowlistOp::kList) {
    if (f.find("network")) throw Invalid{"\"network\" does not apply to allowlist list"};
  } else {
    const auto text = f.required_string("network", "allowlist " + std::string(op));
    const auto net = IpNetwork::parse(text);
    if (!net)
      throw Invalid{"\"network\": " + quoted(text) +
                    " is not an address or a network (ADDRESS/PREFIX)"};
    // IpNetwork::parse masks host bits away; an operator who typed them probably meant another
    // network, so say which one this would be rather than guess.
    const auto address = IpAddress::parse(text.substr(0, text.find('/')));
    if (!address || !(*address == net->base))
      throw Invalid{"\"network\": " + quoted(text) + " has host bits set (the network would be " +
                    net->to_string() + ")"};
    r.network = *net;
  }
  if (const auto comment = f.string("comment")) {
    if (r.op != AllowlistOp::kAdd) throw Invalid{"\"comment\" applies only to allowlist add"};
    r.comment = checked_text(*comment, "comment", false);
  }
}

void read_silence(const RequestFields& f, ControlRequest& r) {
  const auto detector = f.required_string("detector", "silence");
  const bool word = !detector.empty() && detector.size() <= ControlRequest::kMaxDetectorBytes &&
                    std::all_of(detector.begin(), detector.end(), [](char c) {
                      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                    });
  if (!word)
    throw Invalid{"\"detector\": " + quoted(detector) +
                  " is not a detector name (lower-case letters, digits and _, at most " +
                  std::to_string(ControlRequest::kMaxDetectorBytes) + ")"};
  r.detector = std::string(detector);
  const auto seconds = f.integer("seconds", 0, ControlRequest::kMaxSilenceSeconds);
  if (!seconds) throw Invalid{"\"seconds\" is required for silence (0 lifts the silence)"};
  r.seconds = *seconds;
  if (const auto reason = f.string("reason")) r.reason = checked_text(*reason, "reason", false);
}

void parse_into(std::string_view line, ControlParseResult& out) {
  if (line.size() > kMaxControlLineBytes) {
    out.error = "request longer than " + std::to_string(kMaxControlLineBytes) + " bytes";
    return;
  }
  simdjson::dom::parser parser;
  if (parser.allocate(std::max<std::size_t>(line.size(), 64), kMaxDepth)) {
    out.error = "cannot allocate the parser";
    return;
  }
  simdjson::dom::element doc;
  if (const auto err = parser.parse(line.data(), line.size(), true).get(doc)) {
    out.error = err == simdjson::DEPTH_ERROR
                    ? "not valid JSON: nested too deeply"
                    : std::string("not valid JSON: ") + simdjson::error_message(err);
    return;
  }
  simdjson::dom::object object;
  if (doc.get_object().get(object)) {
    out.error = "expected a JSON object";
    return;
  }
  RequestFields fields;
  if (!fields.collect(object, out.error)) return;

  try {
    // The token first: a TCP server needs it to decide whether to answer at all.
    if (const auto token = fields.string("token")) {
      if (token->size() > kMaxControlTokenBytes) throw Invalid{"\"token\" is too long"};
      // Written out, an empty token is no token: a request either carries one or does not.
      if (token->empty()) throw Invalid{"\"token\" is empty"};
      out.token = std::string(*token);
    }
    const auto name = fields.string("command");
    if (!name) throw Invalid{"\"command\" is required"};
    const auto command = parse_control_command(*name);
    if (!command) {
      std::vector<std::string> names;
      for (std::size_t i = 0; i < kControlCommandCount; ++i)
        names.emplace_back(to_string(static_cast<ControlCommand>(i)));
      std::string msg = "unknown command " + quoted(*name);
      if (auto near = closest_word(*name, names)) msg += " (did you mean \"" + *near + "\"?)";
      throw Invalid{
          msg + "; commands: status, lockdown, findings, decisions, allowlist, silence, reload"};
    }
    out.command = command;
    const auto& allowed = fields_of(*command);
    for (const auto& [key, value] : fields.all()) {
      if (key == "command" || key == "token") continue;
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string msg = "unknown field " + quoted(key) + " for " + std::string(*name);
      if (auto near = closest_word(key, allowed)) msg += " (did you mean \"" + *near + "\"?)";
      throw Invalid{msg};
    }
    ControlRequest r;
    r.command = *command;
    switch (*command) {
      case ControlCommand::kLockdown:
        read_lockdown(fields, r);
        break;
      case ControlCommand::kFindings:
      case ControlCommand::kDecisions:
        read_listing(fields, r);
        break;
      case ControlCommand::kAllowlist:
        read_allowlist(fields, r);
        break;
      case ControlCommand::kSilence:
        read_silence(fields, r);
        break;
      case ControlCommand::kStatus:
      case ControlCommand::kReload:
        break;
    }
    out.request = std::move(r);
  } catch (const Invalid& e) {
    out.error = e.message;
  }
}

}  // namespace

ControlParseResult parse_control_request(std::string_view line) noexcept {
  ControlParseResult out;
  try {
    parse_into(line, out);
  } catch (...) {  // std::bad_alloc: refuse the request, never the daemon
    out.request.reset();
    out.error = "cannot parse the request";
  }
  if (out.request) out.error.clear();
  return out;
}

// ---- request serialisation -------------------------------------------------------------------

namespace {

void append_field(std::string& out, std::string_view key) {
  if (out.back() != '{') out.push_back(',');
  append_json_string(out, key);
  out.push_back(':');
}

void append_args(std::string& out, const ControlRequest& r) {
  switch (r.command) {
    case ControlCommand::kLockdown:
      append_field(out, "state");
      out += r.on ? "\"on\"" : "\"off\"";
      append_field(out, "scope");
      append_json_string(out, r.scope.key());
      append_field(out, "reason");
      append_json_string(out, r.reason);
      if (r.ttl_seconds > 0) {
        append_field(out, "ttl_seconds");
        append_json_int(out, r.ttl_seconds);
      }
      break;
    case ControlCommand::kFindings:
    case ControlCommand::kDecisions:
      append_field(out, "limit");
      append_json_int(out, r.limit);
      if (r.follow) {
        append_field(out, "follow");
        out += "true";
      }
      break;
    case ControlCommand::kAllowlist:
      append_field(out, "op");
      append_json_string(out, to_string(r.op));
      if (r.op != AllowlistOp::kList) {
        append_field(out, "network");
        append_json_string(out, r.network.to_string());
      }
      if (r.op == AllowlistOp::kAdd && !r.comment.empty()) {
        append_field(out, "comment");
        append_json_string(out, r.comment);
      }
      break;
    case ControlCommand::kSilence:
      append_field(out, "detector");
      append_json_string(out, r.detector);
      append_field(out, "seconds");
      append_json_int(out, r.seconds);
      if (!r.reason.empty()) {
        append_field(out, "reason");
        append_json_string(out, r.reason);
      }
      break;
    case ControlCommand::kStatus:
    case ControlCommand::kReload:
      break;
  }
}

}  // namespace

std::string control_request_json(const ControlRequest& request, std::string_view token) {
  std::string out = "{\"command\":";
  append_json_string(out, to_string(request.command));
  append_args(out, request);
  if (!token.empty()) {
    append_field(out, "token");
    append_json_string(out, token);
  }
  out.push_back('}');
  return out;
}

std::string control_request_args_json(const ControlRequest& request) {
  std::string out = "{";
  append_args(out, request);
  out.push_back('}');
  return out;
}

// ---- replies and streamed lines --------------------------------------------------------------

std::string control_ok_line(std::string_view result_json) {
  std::string out;
  out.reserve(result_json.size() + 24);
  out += "{\"ok\":true,\"result\":";
  out += result_json;
  out.push_back('}');
  return out;
}

std::string control_error_line(std::string_view code, std::string_view message) {
  std::string out = "{\"ok\":false,\"error\":{\"code\":";
  append_json_string(out, code);
  out += ",\"message\":";
  append_json_string(out, message);
  out += "}}";
  return out;
}

std::string control_stream_line(ControlStream stream, std::string_view item_json) {
  std::string out;
  out.reserve(item_json.size() + 16);
  out += stream == ControlStream::kDecisions ? "{\"decision\":" : "{\"finding\":";
  out += item_json;
  out.push_back('}');
  return out;
}

namespace {

// Replies may carry a thousand findings: no fixed capacity, but the depth stays bounded.
constexpr std::size_t kMaxReplyDepth = 64;

bool parse_object(simdjson::dom::parser& parser, std::string_view text,
                  simdjson::dom::object& object) {
  if (parser.allocate(std::max<std::size_t>(text.size(), 64), kMaxReplyDepth)) return false;
  simdjson::dom::element doc;
  if (parser.parse(text.data(), text.size(), true).get(doc)) return false;
  return !doc.get_object().get(object);
}

std::string string_or(simdjson::dom::object object, std::string_view key,
                      std::string_view fallback) {
  std::string_view s;
  if (object[key].get_string().get(s)) return std::string(fallback);
  return std::string(s);
}

}  // namespace

ControlReply parse_control_reply(std::string_view line) {
  const auto bad = ControlReply::failure(control_error::kFailed,
                                         "the daemon sent a reply that is not in the protocol");
  try {
    simdjson::dom::parser parser;
    simdjson::dom::object object;
    if (!parse_object(parser, line, object)) return bad;
    bool ok = false;
    if (object["ok"].get_bool().get(ok)) return bad;
    if (ok) {
      simdjson::dom::object result;
      if (object["result"].get_object().get(result)) return bad;
      return ControlReply::success(simdjson::minify(result));
    }
    simdjson::dom::object error;
    if (object["error"].get_object().get(error)) return bad;
    return ControlReply::failure(string_or(error, "code", control_error::kFailed),
                                 string_or(error, "message", "(no message)"));
  } catch (...) {
    return bad;
  }
}

ControlStreamLine parse_control_stream_line(std::string_view line) {
  ControlStreamLine out;
  try {
    simdjson::dom::parser parser;
    simdjson::dom::object object;
    if (!parse_object(parser, line, object)) return out;
    for (const auto& [key, stream] : {std::pair{"finding", ControlStream::kFindings},
                                      std::pair{"decision", ControlStream::kDecisions}}) {
      simdjson::dom::object item;
      if (!object[key].get_object().get(item)) {
        out.kind = ControlStreamLine::Kind::kItem;
        out.stream = stream;
        out.item_json = simdjson::minify(item);
        return out;
      }
    }
    // The server's last word to a follower it cuts off is an error reply.
    bool ok = true;
    simdjson::dom::object error;
    if (!object["ok"].get_bool().get(ok) && !ok && !object["error"].get_object().get(error)) {
      out.kind = ControlStreamLine::Kind::kError;
      out.error_code = string_or(error, "code", control_error::kFailed);
      out.error_message = string_or(error, "message", "(no message)");
    }
  } catch (...) {
    out = {};
  }
  return out;
}

bool is_json_object(std::string_view text) noexcept {
  if (text.find('\n') != std::string_view::npos) return false;
  try {
    simdjson::dom::parser parser;
    simdjson::dom::object object;
    return parse_object(parser, text, object);
  } catch (...) {
    return false;
  }
}

// ---- audit -----------------------------------------------------------------------------------

std::string control_audit_record(TimeMs at, const ControlPeer& peer, std::string_view command,
                                 std::string_view args_json, std::string_view outcome,
                                 std::string_view message) {
  std::string out = "{\"time\":\"";
  append_rfc3339(out, at);
  out += "\",\"peer\":{\"uid\":";
  if (peer.uid == ControlPeer::kNoUid) {
    out += "null";
  } else {
    append_json_int(out, peer.uid);
  }
  out += ",\"gid\":";
  if (peer.gid == ControlPeer::kNoGid) {
    out += "null";
  } else {
    append_json_int(out, peer.gid);
  }
  out += ",\"pid\":";
  append_json_int(out, peer.pid);
  out += ",\"user\":";
  append_json_string(out, peer.user);
  out += ",\"transport\":";
  append_json_string(out, peer.transport);
  out += "},\"command\":";
  append_json_string(out, command);
  out += ",\"args\":";
  out += args_json.empty() ? std::string_view("{}") : args_json;
  out += ",\"outcome\":";
  append_json_string(out, outcome);
  if (!message.empty()) {
    out += ",\"message\":";
    append_json_string(out, message);
  }
  out.push_back('}');
  return out;
}

// ---- durations -------------------------------------------------------------------------------

std::optional<std::int64_t> parse_duration_seconds(std::string_view text, std::string* why) {
  const auto fail = [&](std::string message) -> std::optional<std::int64_t> {
    if (why) *why = std::move(message);
    return std::nullopt;
  };
  constexpr std::int64_t kMax = 10 * 366 * 86400;
  const std::string usage = "expected a duration such as 90s, 30m, 2h, 1d or 1h30m";
  if (text.empty()) return fail(usage);
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::int64_t n = 0;
    const std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      n = n * 10 + (text[i] - '0');
      if (n > kMax) return fail("longer than ten years");
      ++i;
    }
    if (i == start || i == text.size()) return fail(usage);
    std::int64_t unit = 0;
    switch (text[i]) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        return fail(usage);
    }
    ++i;
    total += n * unit;
    if (total > kMax) return fail("longer than ten years");
  }
  if (total == 0) return fail("a duration must be longer than zero");
  return total;
}

}  // namespace portalwatch
