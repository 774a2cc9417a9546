// Lockdown hooks' configuration: what each hook runs (an argument vector, an HTTP(S) POST, a flag
// file) and for which decisions, read from the top-level `hooks:` list with every error reported
// at its file:line:col and key path. The runner is daemon/hooks.h.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "detectors/decision.h"

namespace portalwatch {

class MapReader;

enum class HookType : std::uint8_t { kExec, kWebhook, kFile };
inline constexpr std::size_t kHookTypeCount = 3;
std::string_view to_string(HookType t) noexcept;

/// Which decisions a hook runs for (`on:`); every list defaults to all of its words.
struct HookFilter {
  std::array<bool, kScopeTypeCount> scopes{true, true, true, true};  ///< by ScopeType
  bool state_on = true;                                              ///< "on" decisions
  bool state_off = true;                                             ///< "off" decisions
  std::array<bool, 2> actions{true, true};                           ///< by DecisionAction

  bool matches(const Decision& d) const noexcept {
    return scopes[static_cast<std::size_t>(d.scope.type)] && (d.on ? state_on : state_off) &&
           actions[static_cast<std::size_t>(d.action)];
  }
};

/// type: exec. The program is started directly (posix_spawn), never through a shell; the
/// decision reaches it only as data: JSON on stdin and PORTALWATCH_* environment variables.
struct ExecHookConfig {
  std::vector<std::string> argv;  ///< argv[0] an absolute path; the rest fixed strings
  /// Fixed NAME=value pairs added to the environment (after PATH and PORTALWATCH_*).
  std::vector<std::pair<std::string, std::string>> env;
  /// Names whose values are copied from the daemon's own environment when set there; nothing
  /// else is inherited.
  std::vector<std::string> inherit_env;
  std::string working_dir = "/";
  /// After the timeout the process group gets SIGTERM, and SIGKILL this much later.
  std::chrono::milliseconds kill_grace{2000};
};

/// type: webhook. An HTTP(S) POST of the decision JSON.
struct WebhookConfig {
  std::string url;  ///< as written, for messages
  bool tls = false;
  std::string host;  ///< without brackets for an IPv6 literal
  std::string port;  ///< "80"/"443" when the URL has none
  std::string target = "/";
  /// HMAC-SHA256 key, read from the file named by hmac_secret_file (a trailing newline dropped);
  /// empty: no signature header.
  std::string hmac_secret;
  std::string hmac_secret_file;
  std::string signature_header = "X-Portalwatch-Signature";
  std::string ca_file;                                       ///< empty: the system's CAs
  std::vector<std::pair<std::string, std::string>> headers;  ///< fixed extra headers
};

/// type: file. The usual way to switch a web server to a maintenance page: "on" writes the
/// decision JSON to path atomically (a temporary file in the same directory, fsync, rename), "off"
/// removes it. Both are idempotent.
struct FileHookConfig {
  /// Absolute. May contain {app}: then the hook runs only for app-scope decisions and {app} is the
  /// validated app name ([a-z0-9_-]); a user name or an address never becomes part of a path.
  std::string path;
  unsigned mode = 0644;  ///< permissions of the written file
};

struct HookConfig {
  std::string name;  ///< unique; a metric label and how the log names the hook
  HookType type = HookType::kExec;
  HookFilter on;
  /// Decisions marked dry_run (decided, not to be acted on) skip hooks unless this is set.
  bool run_in_dry_run = false;
  std::chrono::milliseconds timeout{10000};        ///< per attempt (exec, webhook)
  int retries = 2;                                 ///< further attempts after a failed one
  std::chrono::milliseconds backoff_initial{500};  ///< before the first retry, doubled each time
  std::chrono::milliseconds backoff_max{30000};
  /// Decisions waiting for this hook; beyond it they are dropped (and counted) for this hook.
  std::size_t queue_capacity = 1000;
  /// Worker threads of this hook: decisions on different targets run this many at a time. Each
  /// hook has its own, so one that hangs never delays another.
  int concurrency = 2;

  ExecHookConfig exec;
  WebhookConfig webhook;
  FileHookConfig file;

  /// The delay before retry number `retry` (1-based).
  std::chrono::milliseconds backoff(int retry) const;
};

/// Reads the top-level `hooks:` list (absent or empty: no hooks). Errors go to root's
/// Diagnostics: unknown type, relative argv[0], unreadable secret file, bad URL, duplicate names...
std::vector<HookConfig> read_hooks(MapReader& root);

}  // namespace portalwatch
