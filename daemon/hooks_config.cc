#include "daemon/hooks_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>

#include "detectors/config_node.h"

namespace portalwatch {

std::string_view to_string(HookType t) noexcept {
  switch (t) {
    case HookType::kExec:
      return "exec";
    case HookType::kWebhook:
      return "webhook";
    case HookType::kFile:
      return "file";
  }
  return "exec";
}

std::chrono::milliseconds HookConfig::backoff(int retry) const {
  auto delay = backoff_initial;
  for (int i = 1; i < retry && delay < backoff_max; ++i) delay *= 2;
  return std::min(delay, backoff_max);
}

namespace {

constexpr std::int64_t kMaxMs = 3'600'000;  // an hour: anything longer is a typo

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

bool valid_env_name(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// RFC 9110 token characters, for header names.
bool valid_header_name(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
  });
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// The words of one `on:` list, each checked against its vocabulary.
template <std::size_t N>
void read_filter_list(MapReader& m, std::string_view key, const std::array<std::string, N>& words,
                      const std::function<void(std::size_t)>& set,
                      const std::function<void()>& clear) {
  const auto list = m.child(key);
  if (!list.defined()) return;
  const std::vector<std::string> vocabulary(words.begin(), words.end());
  const auto items = list.elements();
  if (list.is_sequence() && items.empty()) {
    list.error("an empty list matches nothing; leave the key out to match every " +
               std::string(key).substr(0, key.size() - 1));
    return;
  }
  if (!items.empty()) clear();
  for (const auto& item : items) {
    const auto word = item.as_string();
    if (!word) continue;
    const auto it = std::find(words.begin(), words.end(), *word);
    if (it != words.end()) {
      set(static_cast<std::size_t>(it - words.begin()));
      continue;
    }
    std::string msg = "\"" + *word + "\" is not one of:";
    for (const auto& w : words) msg += " " + w;
    if (auto near = closest_word(*word, vocabulary)) msg += " (did you mean \"" + *near + "\"?)";
    item.error(msg);
  }
}

// Returns the on.scopes node (undefined when not given).
ConfigNode read_filter(MapReader& hook, HookFilter& f) {
  const auto on = hook.child("on");
  MapReader m(on);
  static const std::array<std::string, kScopeTypeCount> kScopes = {"global", "app", "user", "ip"};
  static const std::array<std::string, 2> kStates = {"on", "off"};
  static const std::array<std::string, 2> kActions = {"lockdown", "reauthenticate"};
  // The lists name ScopeType and DecisionAction in their declaration order.
  static_assert(static_cast<std::size_t>(ScopeType::kIp) == 3);
  static_assert(static_cast<std::size_t>(DecisionAction::kReauthenticate) == 1);
  read_filter_list(
      m, "scopes", kScopes, [&](std::size_t i) { f.scopes[i] = true; },
      [&] { f.scopes.fill(false); });
  read_filter_list(
      m, "states", kStates, [&](std::size_t i) { (i == 0 ? f.state_on : f.state_off) = true; },
      [&] { f.state_on = f.state_off = false; });
  read_filter_list(
      m, "actions", kActions, [&](std::size_t i) { f.actions[i] = true; },
      [&] { f.actions.fill(false); });
  return m.child("scopes");
}

std::chrono::milliseconds get_ms(MapReader& m, std::string_view key, std::chrono::milliseconds def,
                                 std::int64_t min) {
  return std::chrono::milliseconds(m.get_int(key, def.count(), min, kMaxMs));
}

void read_common(MapReader& m, HookConfig& h) {
  h.run_in_dry_run = m.get_bool("run_in_dry_run", h.run_in_dry_run);
  h.retries = static_cast<int>(m.get_int("retries", h.retries, 0, 100));
  h.backoff_initial = get_ms(m, "backoff_initial_ms", h.backoff_initial, 0);
  const auto max_node = m.child("backoff_max_ms");
  h.backoff_max = get_ms(m, "backoff_max_ms", h.backoff_max, 0);
  if (h.backoff_max < h.backoff_initial) {
    if (max_node.defined())
      max_node.error("backoff_max_ms is less than backoff_initial_ms");
    else
      h.backoff_max = h.backoff_initial;
  }
  h.queue_capacity = static_cast<std::size_t>(
      m.get_int("queue_capacity", static_cast<std::int64_t>(h.queue_capacity), 1, 1'000'000));
  h.concurrency = static_cast<int>(m.get_int("concurrency", h.concurrency, 1, 16));
}

// A map of NAME: value strings, in file order.
std::vector<std::pair<std::string, std::string>> read_string_map(
    const ConfigNode& node, const std::function<std::string(const std::string&)>& check_key,
    const std::function<std::string(const std::string&)>& check_value) {
  std::vector<std::pair<std::string, std::string>> out;
  MapReader m(node);
  m.accept_all_keys();
  if (!node.is_map()) return out;
  for (const auto& kv : node.yaml()) {
    const std::string key = kv.first.Scalar();
    const ConfigNode value(kv.second, node.path() + "." + key, node.diags());
    if (const std::string why = check_key(key); !why.empty()) {
      node.diags().error(kv.first.Mark(), value.path(), why);
      continue;
    }
    const auto s = value.as_string();
    if (!s) continue;
    if (const std::string why = check_value(*s); !why.empty()) {
      value.error(why);
      continue;
    }
    out.emplace_back(key, *s);
  }
  return out;
}

std::string check_env_name(const std::string& name) {
  if (!valid_env_name(name))
    return "\"" + name + "\" is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)";
  if (name.rfind("PORTALWATCH_", 0) == 0)
    return "PORTALWATCH_* variables are set by portalwatch from the decision";
  return {};
}

void read_exec(MapReader& m, HookConfig& h) {
  ExecHookConfig& e = h.exec;
  h.timeout = get_ms(m, "timeout_ms", h.timeout, 1);
  e.kill_grace = get_ms(m, "kill_grace_ms", e.kill_grace, 0);
  const auto argv = m.child("argv");
  if (!argv.defined()) {
    m.node().error(
        "an exec hook needs argv: the program's absolute path and its arguments (no shell)");
  } else if (auto list = argv.as_string_list()) {
    if (list->empty()) argv.error("argv needs at least the program's absolute path");
    const auto items = argv.elements();
    for (std::size_t i = 0; i < list->size(); ++i)
      if (has_nul((*list)[i])) items[i].error("an argument cannot contain a NUL byte");
    if (!list->empty()) {
      const std::string& program = list->front();
      struct stat st {};
      if (program.empty() || program.front() != '/') {
        items[0].error(
            "argv[0] must be an absolute path (hooks are not looked up in PATH and never run "
            "through a shell): \"" +
            program + "\"");
      } else if (::stat(program.c_str(), &st) != 0) {
        items[0].error("cannot run \"" + program + "\": " + std::strerror(errno));
      } else if (!S_ISREG(st.st_mode) || ::access(program.c_str(), X_OK) != 0) {
        items[0].error("\"" + program + "\" is not an executable file");
      } else if (st.st_mode & S_IWOTH) {
        items[0].error("\"" + program +
                       "\" is writable by every user: anyone could change what portalwatch runs");
      }
      e.argv = std::move(*list);
    }
  }
  e.env = read_string_map(m.child("env"), check_env_name, [](const std::string& v) {
    return has_nul(v) ? std::string("a value cannot contain a NUL byte") : std::string();
  });
  const auto inherit = m.child("inherit_env");
  for (const auto& item : inherit.elements()) {
    const auto name = item.as_string();
    if (!name) continue;
    if (const std::string why = check_env_name(*name); !why.empty())
      item.error(why);
    else
      e.inherit_env.push_back(*name);
  }
  const auto dir = m.child("working_dir");
  e.working_dir = m.get_string("working_dir", e.working_dir);
  if (e.working_dir.empty() || e.working_dir.front() != '/')
    dir.error("working_dir must be an absolute path");
}

// http[s]://host[:port][/path][?query]; no user:password@ (it would end up in logs) and no
// #fragment.
bool parse_url(std::string_view url, WebhookConfig& w, std::string& why) {
  if (has_control(url) || url.find(' ') != std::string_view::npos) {
    why = "a URL has no spaces or control characters";
    return false;
  }
  std::string_view rest;
  if (url.rfind("https://", 0) == 0) {
    w.tls = true;
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    w.tls = false;
    rest = url.substr(7);
  } else {
    why = "expected an http:// or https:// URL";
    return false;
  }
  if (url.find('#') != std::string_view::npos) {
    why = "a webhook URL has no #fragment";
    return false;
  }
  const std::size_t path_at = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_at);
  w.target = path_at == std::string_view::npos ? "/" : std::string(rest.substr(path_at));
  if (w.target.front() == '?') w.target.insert(w.target.begin(), '/');
  if (authority.find('@') != std::string_view::npos) {
    why = "credentials in the URL would be logged; use headers or an HMAC secret file";
    return false;
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      why = "unclosed [ in an IPv6 address";
      return false;
    }
    w.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        why = "expected :port after ]";
        return false;
      }
      port = after.substr(1);
      if (port.empty()) {
        why = "empty port";
        return false;
      }
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    w.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) {
        why = "empty port";
        return false;
      }
    }
  }
  if (w.host.empty()) {
    why = "the URL has no host";
    return false;
  }
  if (!port.empty()) {
    int p = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535) {
      why = "\"" + std::string(port) + "\" is not a port (1-65535)";
      return false;
    }
    w.port = std::to_string(p);
  } else {
    w.port = w.tls ? "443" : "80";
  }
  return true;
}

// The whole file, less trailing line ends (editors add one).
bool read_secret(const std::string& path, std::string& secret, std::string& why) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = "cannot read the HMAC secret file \"" + path +
          "\": " + (errno ? std::strerror(errno) : "unreadable");
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  secret = ss.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) {
    why = "the HMAC secret file \"" + path + "\" is empty";
    return false;
  }
  return true;
}

void read_webhook(MapReader& m, HookConfig& h) {
  WebhookConfig& w = h.webhook;
  h.timeout = get_ms(m, "timeout_ms", h.timeout, 1);
  const auto url = m.child("url");
  if (!url.defined()) {
    m.node().error("a webhook hook needs a url (http:// or https://)");
  } else if (auto s = url.as_string()) {
    std::string why;
    w.url = *s;
    if (!parse_url(*s, w, why)) url.error("\"" + *s + "\": " + why);
  }
  const auto secret = m.child("hmac_secret_file");
  if (secret.defined()) {
    if (auto path = secret.as_string()) {
      std::string why;
      w.hmac_secret_file = *path;
      if (!read_secret(*path, w.hmac_secret, why)) secret.error(why);
    }
  }
  if (m.child("hmac_secret").defined())
    m.child("hmac_secret")
        .error(
            "a secret is never written inline: put it in a file readable only by "
            "portalwatch and name it in hmac_secret_file");
  const auto header = m.child("signature_header");
  w.signature_header = m.get_string("signature_header", w.signature_header);
  if (!valid_header_name(w.signature_header)) header.error("not an HTTP header name");
  const auto ca = m.child("ca_file");
  w.ca_file = m.get_string("ca_file", "");
  if (!w.ca_file.empty()) {
    if (url.defined() && !w.tls)
      ca.error("ca_file is for https:// URLs");
    else if (::access(w.ca_file.c_str(), R_OK) != 0)
      ca.error("cannot read \"" + w.ca_file + "\": " + std::strerror(errno));
  }
  static const std::vector<std::string> kOwned = {"host", "content-type", "content-length",
                                                  "transfer-encoding", "connection"};
  w.headers = read_string_map(
      m.child("headers"),
      [&](const std::string& name) -> std::string {
        if (!valid_header_name(name)) return "\"" + name + "\" is not an HTTP header name";
        std::string lower = name;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return std::tolower(c); });
        if (std::find(kOwned.begin(), kOwned.end(), lower) != kOwned.end())
          return name + " is set by portalwatch";
        std::string sig = w.signature_header;
        std::transform(sig.begin(), sig.end(), sig.begin(),
                       [](unsigned char c) { return std::tolower(c); });
        if (lower == sig) return name + " is the signature header";
        return {};
      },
      [](const std::string& v) {
        return has_control(v) ? std::string("a header value has no control characters")
                              : std::string();
      });
}

void read_file(MapReader& m, HookConfig& h, const ConfigNode& on_scopes) {
  FileHookConfig& f = h.file;
  const auto path = m.child("path");
  if (!path.defined()) {
    m.node().error(
        "a file hook needs a path (absolute; {app} is replaced by the app of an app-scope "
        "decision)");
  } else if (auto s = path.as_string()) {
    f.path = *s;
    std::string rest = *s;
    const bool templated = rest.find("{app}") != std::string::npos;
    for (std::size_t at; (at = rest.find("{app}")) != std::string::npos;) rest.replace(at, 5, "x");
    if (s->empty() || s->front() != '/')
      path.error("path must be absolute");
    else if (rest.find_first_of("{}") != std::string::npos)
      path.error("the only placeholder is {app}");
    else if (has_control(*s))
      path.error("a path has no control characters");
    else if (s->back() == '/')
      path.error("path names a file, not a directory");
    if (templated) {
      // Only app names are checked to be safe in a path; nothing else may fill the placeholder.
      if (!on_scopes.defined()) {
        h.on.scopes.fill(false);
        h.on.scopes[static_cast<std::size_t>(ScopeType::kApp)] = true;
      } else {
        for (std::size_t i = 0; i < kScopeTypeCount; ++i)
          if (h.on.scopes[i] && static_cast<ScopeType>(i) != ScopeType::kApp) {
            on_scopes.error("a path with {app} is for app-scope decisions only (on.scopes: [app])");
            break;
          }
      }
    }
  }
  const auto mode = m.child("mode");
  if (mode.defined()) {
    if (auto s = mode.as_string()) {
      unsigned v = 0;
      const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v, 8);
      if (s->empty() || ec != std::errc() || end != s->data() + s->size() || v > 0777)
        mode.error("expected octal permissions such as \"0644\"");
      else if (v & 0002)
        mode.error("a flag file writable by everyone could be forged");
      else
        f.mode = v;
    }
  }
}

HookConfig read_hook(const ConfigNode& node, std::map<std::string, int>& seen) {
  HookConfig h;
  MapReader m(node);
  if (!node.is_map()) return h;
  const auto name = m.child("name");
  h.name = m.get_string("name", "");
  if (!name.defined()) {
    node.error("a hook needs a name");
  } else if (h.name.empty() || h.name.size() > 64 ||
             !std::all_of(h.name.begin(), h.name.end(), is_name_char)) {
    name.error("a hook name is 1 to 64 letters, digits, _, - and . (it is a metric label)");
  } else if (auto [it, inserted] = seen.emplace(h.name, name.mark().line + 1); !inserted) {
    name.error("duplicate hook name \"" + h.name + "\" (first at line " +
               std::to_string(it->second) + ")");
  }

  const auto type = m.child("type");
  std::optional<HookType> parsed;
  if (!type.defined()) {
    node.error("a hook needs a type: exec, webhook or file");
  } else if (auto s = type.as_string()) {
    std::vector<std::string> types;
    for (std::size_t i = 0; i < kHookTypeCount; ++i) {
      types.emplace_back(to_string(static_cast<HookType>(i)));
      if (types.back() == *s) parsed = static_cast<HookType>(i);
    }
    if (!parsed) {
      std::string msg = "unknown hook type \"" + *s + "\" (exec, webhook or file)";
      if (auto near = closest_word(*s, types)) msg += "; did you mean \"" + *near + "\"?";
      type.error(msg);
    }
  }

  const ConfigNode scopes = read_filter(m, h.on);
  read_common(m, h);
  // Durations are named with their unit; a unitless spelling gets a pointed hint rather than an
  // "unknown key" with no suggestion.
  for (const auto& kv : node.yaml()) {
    const std::string k = kv.first.Scalar();
    for (const char* key : {"timeout", "backoff_initial", "backoff_max", "kill_grace"})
      if (k == key || k == std::string(key) + "_seconds" || k == std::string(key) + "_s") {
        m.child(k);  // known: reported here
        node.diags().error(
            kv.first.Mark(), node.path() + "." + k,
            "unknown key \"" + k + "\" (durations are in milliseconds: " + key + "_ms)");
      }
  }
  if (!parsed) {
    m.accept_all_keys();  // without a type, its keys cannot be judged
    return h;
  }
  h.type = *parsed;
  switch (h.type) {
    case HookType::kExec:
      read_exec(m, h);
      break;
    case HookType::kWebhook:
      read_webhook(m, h);
      break;
    case HookType::kFile:
      read_file(m, h, scopes);
      break;
  }
  return h;
}

}  // namespace

std::vector<HookConfig> read_hooks(MapReader& root) {
  std::vector<HookConfig> hooks;
  const auto list = root.child("hooks");
  if (list.defined() && !list.is_sequence()) {
    list.error("expected a list of hooks");
    return hooks;
  }
  std::map<std::string, int> seen;
  for (const auto& item : list.elements()) {
    if (!item.is_map()) {
      item.error("expected a hook: a mapping with name, type and the type's keys");
      continue;
    }
    hooks.push_back(read_hook(item, seen));
  }
  return hooks;
}

}  // namespace portalwatch
