// One attempt of each kind of hook, as the runner (daemon/hooks.h) calls them from its workers.
// Each returns instead of throwing, and gives up when its timeout passes or abort is set.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "daemon/hooks_config.h"
#include "detectors/decision.h"

namespace portalwatch {

/// How one attempt ended.
struct HookAttemptResult {
  enum class Status : std::uint8_t { kSuccess, kFailure, kTimeout } status = Status::kFailure;
  /// Retrying cannot help (the decision cannot be acted on by this hook, e.g. an app name that
  /// is not safe in a path).
  bool permanent = false;
  std::string detail;  ///< "exit status 3", "HTTP 503 Service Unavailable", "connection refused"
  std::string output;  ///< exec: the start of what the program wrote, escaped to one line
  int exit_code = -1;  ///< exec: the exit status, 128+N when killed by signal N, -1 not started
};

struct HookAttemptContext {
  /// Set by the runner's stop() once its grace period is over: give up now (killing the process).
  const std::atomic<bool>* abort = nullptr;
  /// Called once the attempt has begun (an exec hook's process spawned).
  std::function<void()> started;
  bool aborted() const { return abort && abort->load(std::memory_order_relaxed); }
};

/// Most output of a hook program kept for the log, per stream.
inline constexpr std::size_t kHookOutputLimit = 4096;

/// Runs h.exec.argv without a shell in a new process group: the decision JSON and a newline on
/// stdin, PORTALWATCH_* variables in an environment that inherits nothing else unless configured,
/// no other descriptor open. At the timeout the group gets SIGTERM, then SIGKILL after kill_grace.
/// The process is always reaped.
HookAttemptResult run_exec_hook(const HookConfig& h, const Decision& d, const std::string& json,
                                const HookAttemptContext& ctx);

/// POSTs json to h.webhook.url (TLS verified against the system's CAs or ca_file, with SNI and
/// host name checks) with the HMAC signature header when a secret is configured. 2xx is success.
HookAttemptResult run_webhook_hook(const HookConfig& h, const std::string& json,
                                   const HookAttemptContext& ctx);

/// "on" writes json (and a newline) to the hook's file atomically; "off" removes it.
HookAttemptResult run_file_hook(const HookConfig& h, const Decision& d, const std::string& json);

/// The file a file hook acts on for d: its path with {app} replaced by d's app name, which must
/// be a valid app name ([a-z0-9_-]). nullopt (with why) when d cannot fill it.
std::optional<std::string> file_hook_path(const FileHookConfig& f, const Decision& d,
                                          std::string* why = nullptr);

/// "sha256=" and the lower-case hex HMAC-SHA256 of body under key: the signature header's value.
std::string webhook_signature(std::string_view key, std::string_view body);

/// s on one log line: control characters (and backslashes) escaped, so output a hook or a web
/// server wrote cannot forge log lines.
std::string escape_for_log(std::string_view s);

/// The PORTALWATCH_* variables an exec hook gets for d, as NAME=value.
std::vector<std::string> decision_environment(const HookConfig& h, const Decision& d);

}  // namespace portalwatch
