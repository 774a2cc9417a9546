#include "detectors/decision.h"

#include <cctype>

#include "detectors/finding.h"
#include "detectors/ip.h"
#include "detectors/json_writer.h"

namespace portalwatch {

std::string_view to_string(ScopeType t) noexcept {
  switch (t) {
    case ScopeType::kGlobal: return "global";
    case ScopeType::kApp: return "app";
    case ScopeType::kUser: return "user";
    case ScopeType::kIp: return "ip";
  }
  return "global";
}

std::optional<ScopeType> parse_scope_type(std::string_view s) noexcept {
  for (std::size_t i = 0; i < kScopeTypeCount; ++i)
    if (to_string(static_cast<ScopeType>(i)) == s) return static_cast<ScopeType>(i);
  return std::nullopt;
}

std::string_view to_string(DecisionAction a) noexcept {
  return a == DecisionAction::kReauthenticate ? "reauthenticate" : "lockdown";
}

std::optional<DecisionAction> parse_decision_action(std::string_view s) noexcept {
  if (s == "lockdown") return DecisionAction::kLockdown;
  if (s == "reauthenticate") return DecisionAction::kReauthenticate;
  return std::nullopt;
}

std::string Scope::key() const {
  if (type == ScopeType::kGlobal) return "global";
  std::string k(to_string(type));
  k += ':';
  k += value;
  return k;
}

std::optional<Scope> Scope::parse(std::string_view text, std::string* why) {
  const auto fail = [why](std::string message) -> std::optional<Scope> {
    if (why) *why = std::move(message);
    return std::nullopt;
  };
  if (text == "global") return Scope{};
  const auto colon = text.find(':');
  if (colon == std::string_view::npos)
    return fail("expected global, app:NAME, user:NAME or ip:ADDRESS");
  const auto type = parse_scope_type(text.substr(0, colon));
  const std::string_view value = text.substr(colon + 1);
  if (!type || *type == ScopeType::kGlobal) return fail("expected global, app:NAME, user:NAME or ip:ADDRESS");
  if (value.empty()) return fail("the scope needs a value after the colon");
  if (value.size() > 256) return fail("the scope's value is longer than 256 characters");
  switch (*type) {
    case ScopeType::kApp:
      for (char c : value)
        if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_' ||
              c == '-'))
          return fail("an app name is lower-case letters, digits, _ and -");
      break;
    case ScopeType::kIp:
      if (!IpAddress::parse(value)) return fail("not an IP address");
      break;
    case ScopeType::kUser:
      for (char c : value)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return fail("a user name has no control characters");
      break;
    case ScopeType::kGlobal:
      break;
  }
  Scope s;
  s.type = *type;
  s.value = std::string(value);
  if (s.type == ScopeType::kIp) s.value = IpAddress::parse(value)->to_string();  // one spelling per address
  return s;
}

std::string Decision::id_string() const {
  const std::string at_ms = std::to_string(at);
  return content_id('d', {to_string(action), on ? "on" : "off", to_string(scope.type), scope.value, at_ms, by});
}

std::string Decision::to_json() const {
  std::string out;
  out.reserve(256 + reason.size());
  out += "{\"id\":";
  append_json_string(out, id_string());
  out += ",\"kind\":\"decision\",\"action\":";
  append_json_string(out, to_string(action));
  out += on ? ",\"state\":\"on\"" : ",\"state\":\"off\"";
  out += ",\"scope\":{\"type\":";
  append_json_string(out, to_string(scope.type));
  out += ",\"value\":";
  append_json_string(out, scope.value);
  out += "},\"at\":\"";
  append_rfc3339(out, at);
  out += "\",\"by\":";
  append_json_string(out, by);
  out += ",\"reason\":";
  append_json_string(out, reason);
  out += ",\"findings\":[";
  for (std::size_t i = 0; i < findings.size(); ++i) {
    if (i) out.push_back(',');
    append_json_string(out, findings[i]);
  }
  out.push_back(']');
  if (expires > 0) {
    out += ",\"expires\":\"";
    append_rfc3339(out, expires);
    out.push_back('"');
  }
  if (dry_run) out += ",\"dry_run\":true";
  out.push_back('}');
  return out;
}

}  // namespace portalwatch
