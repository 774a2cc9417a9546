#include "daemon/control_render.h"

#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <optional>

namespace portalwatch {

namespace {

using simdjson::dom::element;

constexpr const char* kReset = "\033[0m";

/// A JSON value that may be missing: every access on a missing value or a value of another
/// type gives a missing value, so the rendering never depends on the daemon's result being whole.
class Node {
 public:
  Node() = default;
  explicit Node(element e) : e_(e) {}
  Node operator[](std::string_view key) const {
    element child;
    if (!e_ || (*e_)[key].get(child)) return {};
    return Node(child);
  }
  std::optional<std::string_view> string() const {
    std::string_view s;
    if (!e_ || e_->get_string().get(s)) return std::nullopt;
    return s;
  }
  std::optional<element> get() const { return e_; }

 private:
  std::optional<element> e_;
};

/// A parsed result; an unparsable one is a missing root.
class Doc {
 public:
  explicit Doc(std::string_view json) {
    element root;
    if (!parser_.parse(json.data(), json.size(), true).get(root)) root_ = Node(root);
  }
  bool ok() const { return root_.get().has_value(); }
  Node root() const { return root_; }

 private:
  simdjson::dom::parser parser_;
  Node root_;
};

std::string text(Node n, std::string_view key, std::string_view fallback = "-") {
  const auto s = n[key].string();
  if (!s || s->empty()) return std::string(fallback);
  return terminal_safe(*s);
}

std::optional<std::int64_t> integer(Node n, std::string_view key) {
  const auto v = n[key].get();
  if (!v) return std::nullopt;
  std::int64_t i = 0;
  std::uint64_t u = 0;
  double d = 0;
  if (!v->get_int64().get(i)) return i;
  if (!v->get_uint64().get(u))
    return static_cast<std::int64_t>(std::min<std::uint64_t>(u, INT64_MAX));
  if (!v->get_double().get(d) && d > -9e18 && d < 9e18) return static_cast<std::int64_t>(d);
  return std::nullopt;
}

bool boolean(Node n, std::string_view key) {
  const auto v = n[key].get();
  bool b = false;
  return v && !v->get_bool().get(b) && b;
}

std::vector<Node> array(Node n, std::string_view key) {
  std::vector<Node> out;
  const auto v = n[key].get();
  simdjson::dom::array a;
  if (!v || v->get_array().get(a)) return out;
  for (element item : a) out.emplace_back(item);
  return out;
}

/// "2026-12-23 14:06:02Z", with "(2h ago)" / "(in 58m)" when relative and now is known.
std::string when(std::string_view rfc3339, const RenderOptions& o, bool relative) {
  if (rfc3339.empty()) return "-";
  const auto t = parse_rfc3339(rfc3339);
  if (!t) return terminal_safe(rfc3339);
  const std::string f = format_rfc3339(*t);
  std::string out = f.substr(0, 10) + " " + f.substr(11, 8) + "Z";
  if (relative && o.now > 0) {
    TimeMs d = *t - o.now;
    const bool future = d >= 0;
    d = d < 0 ? -d : d;
    // To the nearest minute (or second): a TTL of 2h set a moment ago reads "in 2h", not "in
    // 1h59m".
    d = d >= kMinuteMs ? (d + kMinuteMs / 2) / kMinuteMs * kMinuteMs
                       : (d + kSecondMs / 2) / kSecondMs * kSecondMs;
    out += future ? " (in " + format_duration(d) + ")" : " (" + format_duration(d) + " ago)";
  }
  return out;
}

std::string when(Node n, std::string_view key, const RenderOptions& o, bool relative) {
  const auto s = n[key].string();
  return s ? when(*s, o, relative) : "-";
}

/// Columns as wide as their widest cell (in code points); the last column is not padded.
class Table {
 public:
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string render(std::string_view indent) const {
    std::vector<std::size_t> widths;
    for (const auto& row : rows_)
      for (std::size_t i = 0; i < row.size(); ++i) {
        if (widths.size() <= i) widths.push_back(0);
        widths[i] = std::max(widths[i], width(row[i]));
      }
    std::string out;
    for (const auto& row : rows_) {
      std::string line(indent);
      for (std::size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line.append(widths[i] - width(row[i]) + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    }
    return out;
  }

 private:
  static std::size_t width(const std::string& s) {
    return static_cast<std::size_t>(std::count_if(
        s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
  }
  std::vector<std::vector<std::string>> rows_;
};

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string severity_cell(const std::string& severity, const RenderOptions& o) {
  static constexpr std::pair<const char*, const char*> kColors[] = {{"info", "\033[37m"},
                                                                    {"low", "\033[36m"},
                                                                    {"medium", "\033[33m"},
                                                                    {"high", "\033[31m"},
                                                                    {"critical", "\033[1;41;97m"}};
  std::string padded = upper(severity);
  if (padded.size() < 8) padded.append(8 - padded.size(), ' ');
  if (!o.color) return padded;
  for (const auto& [name, color] : kColors)
    if (severity == name) return std::string(color) + padded + kReset;
  return padded;
}

std::string scope_of_decision(Node d) {
  const std::string type = text(d["scope"], "type", "?");
  if (type == "global") return "global";
  return type + ":" + text(d["scope"], "value", "?");
}

std::string finding_line(Node f, const RenderOptions& o) {
  std::string at = when(f, "at", o, false);
  if (at.size() > 1 && at.back() == 'Z') at.pop_back();
  char buf[160];
  const Node entity = f["entity"];
  std::snprintf(buf, sizeof buf, "%s  %s  %-20s  %-7s %-22s  ", at.c_str(),
                severity_cell(text(f, "severity", "?"), o).c_str(),
                text(f, "detector", "?").c_str(), text(entity, "type", "?").c_str(),
                text(entity, "value", "?").c_str());
  std::string line = buf;
  line += text(f, "summary", "");
  if (boolean(f, "dry_run")) line += "  [dry run]";
  return line + "\n";
}

std::string decision_line(Node d, const RenderOptions& o) {
  std::string at = when(d, "at", o, false);
  if (at.size() > 1 && at.back() == 'Z') at.pop_back();
  std::string line = at + "  " + text(d, "id", "?") + "  " + text(d, "action", "?") + " " +
                     text(d, "state", "?") + "  " + scope_of_decision(d) + "  by " + text(d, "by") +
                     ": " + text(d, "reason", "");
  if (const auto expires = d["expires"].string())
    line += "  (until " + when(*expires, o, false) + ")";
  if (boolean(d, "dry_run")) line += "  [dry run]";
  return line + "\n";
}

std::string render_status(Node s, const RenderOptions& o) {
  std::string out = "portalwatchd " + text(s, "version", "?");
  if (auto up = integer(s, "uptime_seconds")) {
    up = std::clamp<std::int64_t>(*up, 0, 100LL * 366 * 86400);
    out += ", up " + format_duration((*up < 60 ? *up : *up / 60 * 60) * kSecondMs);
  }
  const std::string health = text(s, "health", "unknown");
  std::string health_text = health == "ok" ? "ok" : upper(health);
  if (o.color) health_text = (health == "ok" ? "\033[32m" : "\033[1;31m") + health_text + kReset;
  out += ", health: " + health_text;
  std::string reasons;
  for (Node r : array(s, "health_reasons"))
    if (const auto t = r.string()) reasons += (reasons.empty() ? "" : "; ") + terminal_safe(*t);
  if (!reasons.empty()) out += " (" + reasons + ")";
  out += "\n";
  const auto events = integer(s, "events_received");
  const auto lag = integer(s, "consumer_lag");
  out += "events received: " + (events ? std::to_string(*events) : std::string("-")) +
         ", consumer lag: " + (lag ? std::to_string(*lag) + " messages" : std::string("-")) + "\n";

  const auto lockdowns = array(s, "lockdowns");
  out += "\nLockdowns on: " +
         (lockdowns.empty() ? std::string("none") : std::to_string(lockdowns.size())) + "\n";
  if (!lockdowns.empty()) {
    Table t;
    t.add({"SCOPE", "ACTION", "SINCE", "BY", "EXPIRES", "REASON"});
    for (Node l : lockdowns) {
      std::string reason = text(l, "reason", "");
      if (boolean(l, "dry_run")) reason += " [dry run: not enforced]";
      if (const auto decision = l["decision"].string())
        reason += " (" + terminal_safe(*decision) + ")";
      const auto expires = l["expires"].string();
      const std::string expiry = expires ? when(*expires, o, true) : "until lifted";
      t.add({text(l, "scope", "?"), text(l, "action", "lockdown"), when(l, "since", o, true),
             text(l, "by"), expiry, reason});
    }
    out += t.render("  ");
  }

  const auto silenced = array(s, "silenced");
  if (!silenced.empty()) {
    out += "\nSilenced detectors: " + std::to_string(silenced.size()) + "\n";
    Table t;
    t.add({"DETECTOR", "UNTIL", "BY", "REASON"});
    for (Node x : silenced)
      t.add({text(x, "detector", "?"), when(x, "until", o, true), text(x, "by"),
             text(x, "reason", "")});
    out += t.render("  ");
  }

  const auto findings = array(s, "recent_findings");
  out += "\nRecent findings: " +
         (findings.empty() ? std::string("none") : std::to_string(findings.size())) + "\n";
  for (Node f : findings) out += "  " + finding_line(f, o);
  const auto decisions = array(s, "recent_decisions");
  out += "\nRecent decisions: " +
         (decisions.empty() ? std::string("none") : std::to_string(decisions.size())) + "\n";
  for (Node d : decisions) out += "  " + decision_line(d, o);
  return out;
}

Rendered render_lockdown(const ControlRequest& request, Node r, const RenderOptions& o) {
  Rendered out;
  const Node d = r["decision"];
  const std::string scope = request.scope.key();
  if (!boolean(r, "changed")) {
    out.out =
        scope + ": lockdown was already " + (request.on ? "on" : "off") + "; nothing changed\n";
    return out;
  }
  out.out = scope + ": lockdown " + (request.on ? "on" : "off") + " (" + text(d, "id", "?") +
            ", by " + text(d, "by") + ")";
  const auto expires = d["expires"].string();
  if (request.on && expires) out.out += ", until " + when(*expires, o, true);
  if (boolean(d, "dry_run")) out.out += " [dry run: decided, not enforced]";
  out.out += "\n";
  return out;
}

Rendered render_allowlist(const ControlRequest& request, Node r, const RenderOptions& o) {
  Rendered out;
  const auto networks = array(r, "networks");
  if (request.op == AllowlistOp::kAdd)
    out.out = "added " + request.network.to_string() + " to the allowlist\n";
  if (request.op == AllowlistOp::kRemove)
    out.out = "removed " + request.network.to_string() + " from the allowlist\n";
  if (request.op != AllowlistOp::kList) return out;
  if (networks.empty()) {
    out.out = "the allowlist is empty\n";
    return out;
  }
  Table t;
  t.add({"NETWORK", "ADDED", "BY", "COMMENT"});
  for (Node n : networks)
    t.add(
        {text(n, "network", "?"), when(n, "at", o, false), text(n, "by"), text(n, "comment", "")});
  out.out = t.render("");
  return out;
}

Rendered render_silence(const ControlRequest& request, Node r, const RenderOptions& o) {
  Rendered out;
  const std::string detector = text(r, "detector", request.detector);
  const auto until = r["until"].string();
  if (request.seconds == 0 || !until || until->empty()) {
    out.out = detector + ": silence lifted\n";
  } else {
    out.out = detector + ": silenced until " + when(*until, o, true) + "\n";
  }
  return out;
}

Rendered render_reload(Node r) {
  Rendered out;
  if (boolean(r, "reloaded")) {
    out.out = "configuration reloaded\n";
    const Node d = r["detectors"];
    static constexpr std::pair<const char*, const char*> kGroups[] = {
        {"kept", "new settings, state kept"},
        {"restarted", "restarted (type or window changed, counting starts again)"},
        {"added", "added"},
        {"removed", "removed"}};
    for (const auto& [key, label] : kGroups) {
      std::string names;
      for (Node n : array(d, key))
        if (const auto t = n.string()) names += (names.empty() ? "" : ", ") + terminal_safe(*t);
      if (!names.empty()) out.out += std::string("  detectors ") + label + ": " + names + "\n";
    }
    std::string later;
    for (Node n : array(r, "unchanged_until_restart"))
      if (const auto t = n.string()) later += (later.empty() ? "" : ", ") + terminal_safe(*t);
    if (!later.empty()) out.out += "  unchanged until a restart: " + later + "\n";
    return out;
  }
  out.err = "reload failed; the running configuration stays:\n";
  for (Node e : array(r, "errors"))
    if (const auto t = e.string()) out.err += "  " + terminal_safe(*t) + "\n";
  out.exit_code = 1;
  return out;
}

}  // namespace

std::string terminal_safe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c));
      ++i;
      continue;
    }
    // The length of a well-formed UTF-8 sequence starting here, or 0.
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    }
    bool valid = len > 0 && i + len <= s.size();
    for (std::size_t k = 1; valid && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) valid = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (valid && ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
                  (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
      valid = false;
    if (!valid || (cp >= 0x80 && cp <= 0x9F)) {  // C1 controls (CSI among them) are as bad as ESC
      out.push_back('?');
      i += valid ? len : 1;
      continue;
    }
    out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

Rendered render_result(const ControlRequest& request, std::string_view result_json,
                       const RenderOptions& options) {
  Doc doc(result_json);
  Rendered out;
  if (!doc.ok()) {
    out.err = "the daemon's result is not JSON\n";
    out.exit_code = 1;
    return out;
  }
  const Node r = doc.root();
  switch (request.command) {
    case ControlCommand::kStatus:
      out.out = render_status(r, options);
      break;
    case ControlCommand::kLockdown:
      return render_lockdown(request, r, options);
    case ControlCommand::kFindings:
    case ControlCommand::kDecisions: {
      const bool findings = request.command == ControlCommand::kFindings;
      const auto items = array(r, "items");
      for (Node item : items)
        out.out += findings ? finding_line(item, options) : decision_line(item, options);
      if (items.empty() && !request.follow)
        out.out = findings ? "no recent findings\n" : "no recent decisions\n";
      break;
    }
    case ControlCommand::kAllowlist:
      return render_allowlist(request, r, options);
    case ControlCommand::kSilence:
      return render_silence(request, r, options);
    case ControlCommand::kReload:
      return render_reload(r);
  }
  return out;
}

std::string render_finding_line(std::string_view finding_json, const RenderOptions& options) {
  Doc doc(finding_json);
  return finding_line(doc.root(), options);
}

std::string render_decision_line(std::string_view decision_json, const RenderOptions& options) {
  Doc doc(decision_json);
  return decision_line(doc.root(), options);
}

std::vector<std::string> result_items(std::string_view result_json) {
  Doc doc(result_json);
  std::vector<std::string> out;
  if (!doc.ok()) return out;
  for (Node item : array(doc.root(), "items"))
    if (const auto e = item.get()) out.push_back(simdjson::minify(*e));
  return out;
}

std::string item_id(std::string_view item_json) {
  Doc doc(item_json);
  if (!doc.ok()) return {};
  const auto id = doc.root()["id"].string();
  return id ? std::string(*id) : std::string();
}

}  // namespace portalwatch
