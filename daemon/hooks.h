// Lockdown hooks: acting on decisions off the event path. Each configured hook (an exec'd program,
// a webhook, a flag file; see daemon/hooks_config.h) has its own bounded queue and its own few
// worker threads, so a hook that hangs or fails delays nothing but itself, and submit() never
// waits for any of them.
//
// Thread-safety: submit() may be called from any thread (the engine's, typically) and takes only
// short per-hook locks; stop() from one thread. The result callback runs on the hooks' worker
// threads (and, for drops, on the thread calling submit() or stop()): it must be thread-safe and
// quick, and must not call stop().
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "daemon/hooks_config.h"
#include "detectors/decision.h"

namespace portalwatch {

/// How one run of a hook for one decision ended; the `outcome` label of
/// portalwatch_hook_runs_total. kRetry counts attempts that failed and were tried again; the
/// others are final, one per decision and hook.
enum class HookOutcome : std::uint8_t { kSuccess, kFailure, kTimeout, kRetry, kDropped };
inline constexpr std::size_t kHookOutcomeCount = 5;
std::string_view to_string(HookOutcome o) noexcept;

/// The final result of one hook for one decision, for the daemon's log and audit trail.
struct HookResult {
  const HookConfig* hook = nullptr;  ///< owned by the runner
  std::shared_ptr<const Decision> decision;
  HookOutcome outcome = HookOutcome::kSuccess;    ///< success, failure, timeout or dropped
  int attempts = 0;                               ///< 0 when dropped before running
  std::chrono::duration<double> duration{};       ///< of the last attempt
  std::chrono::duration<double> start_latency{};  ///< submit() to the first attempt's start
  std::string detail;  ///< "exit status 3", "HTTP 503", "queue full"... of the last attempt
};
using HookResultCallback = std::function<void(const HookResult&)>;

/// Every hook series, built once for the configured hooks. Labels: the hook's configured name
/// and type, never anything from a decision.
struct HookMetrics {
  HookMetrics(prometheus::Registry& registry, const std::vector<HookConfig>& hooks);

  struct PerHook {
    /// portalwatch_hook_runs_total{hook,type,outcome}
    std::array<prometheus::Counter*, kHookOutcomeCount> runs{};
    prometheus::Histogram* duration = nullptr;       ///< seconds per attempt
    prometheus::Histogram* start_latency = nullptr;  ///< submit() to the first attempt's start
    prometheus::Gauge* queue_depth =
        nullptr;  ///< decisions not finished (queued, running, retrying)
    prometheus::Gauge* last_exit_code = nullptr;  ///< exec: 128+N when killed by signal N
  };
  std::vector<PerHook> hooks;  ///< in configuration order
};

struct HookRunnerOptions {
  /// Called from a worker as soon as a hook's first attempt for a decision starts (for exec
  /// hooks, once the process is spawned) with the time since submit(); for benchmarks.
  std::function<void(const HookConfig&, std::chrono::duration<double>)> on_start;
};

class HookRunner {
 public:
  /// Starts each hook's workers. Metrics are registered into registry, which must outlive this.
  HookRunner(std::vector<HookConfig> hooks, prometheus::Registry& registry,
             const HookResultCallback& on_result = {}, HookRunnerOptions options = {});
  /// stop(0) if not stopped yet.
  ~HookRunner();
  HookRunner(const HookRunner&) = delete;
  HookRunner& operator=(const HookRunner&) = delete;

  /// Queues the decision for every hook whose `on` filter matches it (and, for a dry-run decision,
  /// that runs in dry run). Never blocks on a hook: a hook whose queue is full drops it (counted,
  /// logged, reported). For one hook, decisions on the same target (scope; for a file hook, the
  /// file) run in submission order, one at a time; different targets may run in parallel. Returns
  /// false if any matching hook dropped it, or after stop().
  bool submit(const Decision& decision);
  /// How many hooks submit() would queue this decision for (their `on` filter and dry run).
  std::size_t hooks_for(const Decision& decision) const;

  /// Stops accepting decisions, lets queued ones run for up to grace, then kills what still runs
  /// (an exec hook's whole process group) and drops what is left (counted and reported). Returns
  /// once every worker has ended.
  void stop(std::chrono::milliseconds grace);

  const std::vector<HookConfig>& hooks() const { return hooks_; }
  const HookMetrics& metrics() const { return metrics_; }

 private:
  class Lane;
  std::vector<HookConfig> hooks_;  // never resized: lanes refer to their hook
  HookMetrics metrics_;
  HookRunnerOptions options_;
  std::vector<std::unique_ptr<Lane>> lanes_;  // one per hook
  bool stopped_ = false;
};

}  // namespace portalwatch
