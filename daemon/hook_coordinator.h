// The daemon's lockdown hooks: a decision's hooks run off the event path (HookRunner's threads);
// their results come back to the event loop, which records when an "on" decision's hooks have all
// run, so that a restart or a reload runs again only the lockdowns whose hooks had not.
#pragma once

#include <prometheus/registry.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/hooks.h"
#include "detectors/decision.h"
#include "detectors/policy.h"

namespace portalwatch {

class HookCoordinator {
 public:
  /// A hook's final result for a decision, on the event loop's thread: hook name, decision id,
  /// success, detail.
  using OnHook =
      std::function<void(const std::string&, const std::string&, bool, const std::string&)>;
  /// Every hook of the lockdown in force under key has run (PolicyEngine::mark_hooks_done): it is
  /// to be stored so.
  using OnHooksDone = std::function<void(const std::string& key, const Lockdown& lockdown)>;

  /// policies and registry must outlive it; nothing runs before configure().
  HookCoordinator(PolicyEngine& policies, prometheus::Registry& registry, HookRunnerOptions options,
                  OnHook on_hook, OnHooksDone on_done);
  HookCoordinator(const HookCoordinator&) = delete;
  HookCoordinator& operator=(const HookCoordinator&) = delete;

  /// Start-up and reload: `hooks` replace the hooks running (those get 5 s to finish; what they
  /// cut short is not done), then the lockdowns in force whose "on" hooks had not all run
  /// (`when`: since when, for the log) are asserted again; the shipped hooks are idempotent.
  void configure(const std::vector<HookConfig>& hooks, std::string_view when);
  /// How many hooks run() would run for d (none without hooks).
  std::size_t hooks_for(const Decision& d) const { return runner_ ? runner_->hooks_for(d) : 0; }
  /// Queues d for its hooks; an "on" decision (the lockdown in force under key) is done when
  /// every one of them has ended.
  void run(const Decision& d, const std::string& key);
  /// The event loop takes up the results the hooks' threads reported.
  void drain_results();
  /// Stops the hooks within grace (the shutdown). What it cuts short (killed, or never run) does
  /// not count as done: the lockdown's hooks run again at the next start.
  void stop(std::chrono::milliseconds grace);
  /// Whether any hook is configured.
  bool enabled() const { return runner_ != nullptr; }
  /// "On" decisions whose hooks have not all ended.
  std::size_t unfinished() const { return pending_.size(); }

 private:
  struct FinishedHook {
    std::string hook;
    std::uint64_t decision = 0;  ///< its running number (Decision::seq)
    std::string decision_id;
    bool on = false;
    HookOutcome outcome = HookOutcome::kSuccess;
    int attempts = 0;
    double seconds = 0;
    std::string detail;
  };

  void on_result(const HookResult& r);  // a hook thread
  void assert_unfinished(std::string_view when);

  PolicyEngine& policies_;
  prometheus::Registry& registry_;
  HookRunnerOptions options_;
  OnHook on_hook_;
  OnHooksDone on_done_;
  std::map<std::uint64_t, std::pair<std::string, std::size_t>>
      pending_;            // on decision → key, hooks left
  bool stopping_ = false;  // results now come from stop(): failures are not "done"
  std::mutex results_mu_;
  std::vector<FinishedHook> results_;   // from the hooks' threads
  std::unique_ptr<HookRunner> runner_;  // last: its threads report into the members above
};

}  // namespace portalwatch
