#include "detectors/finding.h"

#include <cstdio>

#include <openssl/sha.h>

#include "detectors/json_writer.h"

namespace portalwatch {

std::string_view to_string(Severity s) noexcept {
  switch (s) {
    case Severity::kInfo: return "info";
    case Severity::kLow: return "low";
    case Severity::kMedium: return "medium";
    case Severity::kHigh: return "high";
    case Severity::kCritical: return "critical";
  }
  return "info";
}

std::optional<Severity> parse_severity(std::string_view s) noexcept {
  for (int i = 0; i < static_cast<int>(kSeverityCount); ++i)
    if (to_string(static_cast<Severity>(i)) == s) return static_cast<Severity>(i);
  return std::nullopt;
}

std::string_view to_string(EntityType t) noexcept {
  switch (t) {
    case EntityType::kIp: return "ip";
    case EntityType::kUser: return "user";
    case EntityType::kSession: return "session";
    case EntityType::kDevice: return "device";
    case EntityType::kAsn: return "asn";
    case EntityType::kApp: return "app";
    case EntityType::kGlobal: return "global";
  }
  return "global";
}

std::optional<EntityType> parse_entity_type(std::string_view s) noexcept {
  for (int i = 0; i <= static_cast<int>(EntityType::kGlobal); ++i)
    if (to_string(static_cast<EntityType>(i)) == s) return static_cast<EntityType>(i);
  return std::nullopt;
}

void Evidence::add(std::string_view key, std::int64_t v) {
  std::string s;
  append_json_int(s, v);
  items_.emplace_back(std::string(key), std::move(s));
}

void Evidence::add(std::string_view key, double v) {
  std::string s;
  append_json_double(s, v);
  items_.emplace_back(std::string(key), std::move(s));
}

void Evidence::add(std::string_view key, bool v) {
  items_.emplace_back(std::string(key), v ? "true" : "false");
}

void Evidence::add(std::string_view key, std::string_view v) {
  std::string s;
  append_json_string(s, v);
  items_.emplace_back(std::string(key), std::move(s));
}

void Evidence::add(std::string_view key, const std::vector<std::string>& list) {
  std::string s = "[";
  for (size_t i = 0; i < list.size(); ++i) {
    if (i) s.push_back(',');
    append_json_string(s, list[i]);
  }
  s.push_back(']');
  items_.emplace_back(std::string(key), std::move(s));
}

const std::string* Evidence::get(std::string_view key) const {
  for (const auto& [k, v] : items_)
    if (k == key) return &v;
  return nullptr;
}

std::string content_id(char prefix, const std::vector<std::string_view>& fields) {
  std::string text;
  for (std::string_view f : fields) {
    const std::uint64_t n = f.size();
    for (int i = 0; i < 8; ++i) text.push_back(static_cast<char>(n >> (8 * i)));
    text.append(f);
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | digest[i];
  char buf[32];
  std::snprintf(buf, sizeof buf, "%c-%020llu", prefix, static_cast<unsigned long long>(v));
  return buf;
}

std::string Finding::id_string() const {
  const std::string at_ms = std::to_string(at), start_ms = std::to_string(window_start),
                    end_ms = std::to_string(window_end);
  return content_id('f', {detector, name, to_string(entity_type), entity, to_string(severity), at_ms, start_ms,
                          end_ms, summary});
}

std::string Finding::to_json() const {
  std::string out;
  out.reserve(256 + summary.size());
  out += "{\"id\":";
  append_json_string(out, id_string());
  out += ",\"detector\":";
  append_json_string(out, detector);
  if (!name.empty() && name != detector) {
    out += ",\"name\":";
    append_json_string(out, name);
  }
  out += ",\"severity\":";
  append_json_string(out, to_string(severity));
  out += ",\"entity\":{\"type\":";
  append_json_string(out, to_string(entity_type));
  out += ",\"value\":";
  append_json_string(out, entity);
  out += "},\"at\":\"";
  append_rfc3339(out, at);
  out += "\",\"window\":{\"start\":\"";
  append_rfc3339(out, window_start);
  out += "\",\"end\":\"";
  append_rfc3339(out, window_end);
  out += "\"},\"summary\":";
  append_json_string(out, summary);
  out += ",\"evidence\":{";
  bool first = true;
  for (const auto& [k, v] : evidence.items()) {
    if (!first) out.push_back(',');
    first = false;
    append_json_string(out, k);
    out.push_back(':');
    out += v;
  }
  out.push_back('}');
  if (dry_run) out += ",\"dry_run\":true";
  out.push_back('}');
  return out;
}

Finding make_finding(std::string_view detector, const std::string& name, Severity severity, EntityType type,
                     std::string entity, TimeMs at, TimeMs window_ms) {
  Finding f;
  f.detector = detector;
  f.name = name;
  f.severity = severity;
  f.entity_type = type;
  f.entity = std::move(entity);
  f.at = at;
  f.window_start = at - window_ms;
  f.window_end = at;
  return f;
}

}  // namespace portalwatch
