#include "detectors/config_node.h"

#include <map>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace portalwatch {

Diagnostics::Diagnostics(std::string file, std::string_view text) : file_(std::move(file)) {
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    lines_.emplace_back(text.substr(start, nl - start));
    start = nl + 1;
  }
}

void Diagnostics::error(const YAML::Mark& mark, std::string key_path, std::string message) {
  Diagnostic d;
  d.line = mark.line >= 0 ? mark.line + 1 : 0;
  d.column = mark.column >= 0 ? mark.column + 1 : 0;
  d.key_path = std::move(key_path);
  d.message = std::move(message);
  errors_.push_back(std::move(d));
}

namespace {

// Messages quote keys and values from the file, which may hold line breaks (a multi-line scalar)
// or terminal escapes: escaped, each diagnostic stays one line and prints as text.
void append_escaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
}

}  // namespace

std::string Diagnostics::format() const {
  std::string out;
  for (const auto& d : errors_) {
    out += file_;
    if (d.line > 0) out += ":" + std::to_string(d.line) + ":" + std::to_string(d.column);
    out += ": ";
    if (!d.key_path.empty()) {
      append_escaped(out, d.key_path);
      out += ": ";
    }
    append_escaped(out, d.message);
    out += "\n";
    if (d.line > 0 && static_cast<size_t>(d.line) <= lines_.size()) {
      out += "    " + lines_[d.line - 1] + "\n";
      out += "    " + std::string(d.column > 0 ? d.column - 1 : 0, ' ') + "^\n";
    }
  }
  return out;
}

namespace {

std::string describe(const YAML::Node& n) {
  if (n.IsMap()) return "a mapping";
  if (n.IsSequence()) return "a list";
  if (n.IsNull()) return "nothing";
  return "\"" + n.Scalar() + "\"";
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::optional<std::string> closest_word(std::string_view word, const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_d = 3;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

std::vector<ConfigNode> ConfigNode::elements() const {
  std::vector<ConfigNode> out;
  if (!defined()) return out;
  if (!node_.IsSequence()) {
    error("expected a list, got " + describe(node_));
    return out;
  }
  for (size_t i = 0; i < node_.size(); ++i)
    out.emplace_back(node_[i], path_ + "[" + std::to_string(i) + "]", *diags_);
  return out;
}

std::optional<std::string> ConfigNode::as_string() const {
  if (!node_.IsScalar()) {
    error("expected a string, got " + describe(node_));
    return std::nullopt;
  }
  return node_.Scalar();
}

std::optional<std::int64_t> ConfigNode::as_int(std::int64_t min, std::int64_t max) const {
  if (!node_.IsScalar()) {
    error("expected an integer, got " + describe(node_));
    return std::nullopt;
  }
  const std::string& s = node_.Scalar();
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) {
    error("expected an integer, got " + describe(node_));
    return std::nullopt;
  }
  if (v < min || v > max) {
    error("value " + s + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    return std::nullopt;
  }
  return v;
}

std::optional<double> ConfigNode::as_double(double min, double max) const {
  if (!node_.IsScalar()) {
    error("expected a number, got " + describe(node_));
    return std::nullopt;
  }
  const std::string& s = node_.Scalar();
  double v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) {
    error("expected a number, got " + describe(node_));
    return std::nullopt;
  }
  if (v < min || v > max) {
    error("value " + s + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    return std::nullopt;
  }
  return v;
}

std::optional<bool> ConfigNode::as_bool() const {
  if (node_.IsScalar()) {
    const std::string& s = node_.Scalar();
    if (s == "true" || s == "True" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "False" || s == "no" || s == "off") return false;
  }
  error("expected true or false, got " + describe(node_));
  return std::nullopt;
}

std::optional<std::vector<std::string>> ConfigNode::as_string_list() const {
  if (!node_.IsSequence()) {
    error("expected a list of strings, got " + describe(node_));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (const auto& item : elements()) {
    auto s = item.as_string();
    if (s) out.push_back(std::move(*s));
    else ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

MapReader::MapReader(const ConfigNode& node) : node_(node) {
  if (node_.defined() && !node_.is_map()) {
    node_.error("expected a mapping, got " + describe(node_.yaml()));
    finished_ = true;
    return;
  }
  if (!node_.is_map()) return;
  // YAML parsers keep one of two equal keys silently; a configuration that says a thing twice
  // is a mistake worth naming.
  std::map<std::string, int, std::less<>> lines;
  for (const auto& kv : node_.yaml()) {
    if (!kv.first.IsScalar()) continue;
    const std::string key = kv.first.Scalar();
    const auto [it, fresh] = lines.emplace(key, kv.first.Mark().line + 1);
    if (!fresh)
      node_.diags().error(kv.first.Mark(), node_.path().empty() ? key : node_.path() + "." + key,
                          "given twice (first on line " + std::to_string(it->second) + ")");
  }
}

ConfigNode MapReader::child(std::string_view key) {
  known_.emplace(key);
  const std::string k(key);
  const std::string path = node_.path().empty() ? k : node_.path() + "." + k;
  if (!node_.is_map()) return ConfigNode(YAML::Node(YAML::NodeType::Undefined), path, node_.diags());
  return ConfigNode(node_.yaml()[k], path, node_.diags());
}

bool MapReader::has(std::string_view key) { return child(key).defined(); }

std::string MapReader::get_string(std::string_view key, std::string def) {
  const auto c = child(key);
  if (!c.defined()) return def;
  return c.as_string().value_or(def);
}

std::int64_t MapReader::get_int(std::string_view key, std::int64_t def, std::int64_t min, std::int64_t max) {
  const auto c = child(key);
  if (!c.defined()) return def;
  return c.as_int(min, max).value_or(def);
}

double MapReader::get_double(std::string_view key, double def, double min, double max) {
  const auto c = child(key);
  if (!c.defined()) return def;
  return c.as_double(min, max).value_or(def);
}

bool MapReader::get_bool(std::string_view key, bool def) {
  const auto c = child(key);
  if (!c.defined()) return def;
  return c.as_bool().value_or(def);
}

std::vector<std::string> MapReader::get_string_list(std::string_view key, std::vector<std::string> def) {
  const auto c = child(key);
  if (!c.defined()) return def;
  return c.as_string_list().value_or(def);
}

std::string MapReader::get_enum(std::string_view key, std::string def, const std::vector<std::string>& allowed) {
  const auto c = child(key);
  if (!c.defined()) return def;
  auto s = c.as_string();
  if (!s) return def;
  if (std::find(allowed.begin(), allowed.end(), *s) == allowed.end()) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    c.error("\"" + *s + "\" is not one of: " + list);
    return def;
  }
  return *s;
}

void MapReader::accept_all_keys() {
  if (!node_.is_map()) return;
  for (const auto& kv : node_.yaml()) known_.insert(kv.first.Scalar());
}

void MapReader::finish() {
  if (finished_) return;
  finished_ = true;
  if (!node_.is_map()) return;
  std::vector<std::string> known(known_.begin(), known_.end());
  for (const auto& kv : node_.yaml()) {
    const std::string key = kv.first.Scalar();
    if (known_.count(key)) continue;
    std::string msg = "unknown key \"" + key + "\"";
    if (auto near = closest_word(key, known)) msg += " (did you mean \"" + *near + "\"?)";
    const std::string path = node_.path().empty() ? key : node_.path() + "." + key;
    node_.diags().error(kv.first.Mark(), path, msg);
  }
}

}  // namespace portalwatch
