#include "daemon/hook_coordinator.h"

#include <spdlog/spdlog.h>

namespace portalwatch {

HookCoordinator::HookCoordinator(PolicyEngine& policies, prometheus::Registry& registry,
                                 HookRunnerOptions options, OnHook on_hook, OnHooksDone on_done)
    : policies_(policies),
      registry_(registry),
      options_(std::move(options)),
      on_hook_(std::move(on_hook)),
      on_done_(std::move(on_done)) {}

void HookCoordinator::configure(const std::vector<HookConfig>& hooks, std::string_view when) {
  if (runner_) {
    stop(std::chrono::seconds(5));
    runner_.reset();
  }
  pending_.clear();
  if (!hooks.empty())
    runner_ = std::make_unique<HookRunner>(
        hooks, registry_, [this](const HookResult& r) { on_result(r); }, options_);
  assert_unfinished(when);
}

// Lockdowns in force whose "on" hooks had not all run (the process stopped, or a reload replaced
// the hooks, first) are asserted again; the others are known, not acted on twice.
void HookCoordinator::assert_unfinished(std::string_view when) {
  if (!runner_) return;
  for (const auto& [key, l] : policies_.active()) {
    if (l.hooks_done) continue;
    spdlog::warn("asserting again {} {} (its hooks had not all finished {})",
                 to_string(l.decision.action), l.decision.scope.key(), when);
    run(l.decision, key);
  }
}

void HookCoordinator::stop(std::chrono::milliseconds grace) {
  stopping_ = true;
  runner_->stop(grace);
  drain_results();
  stopping_ = false;
}

void HookCoordinator::run(const Decision& d, const std::string& key) {
  const std::size_t n = runner_->hooks_for(d);
  if (n == 0) return;
  if (d.on) pending_[d.seq] = {key, n};
  runner_->submit(d);
}

void HookCoordinator::on_result(const HookResult& r) {
  FinishedHook f{r.hook ? r.hook->name : std::string(),
                 r.decision ? r.decision->seq : 0,
                 r.decision ? r.decision->id_string() : std::string(),
                 r.decision && r.decision->on,
                 r.outcome,
                 r.attempts,
                 r.duration.count(),
                 r.detail};
  std::lock_guard lock(results_mu_);
  results_.push_back(std::move(f));
}

void HookCoordinator::drain_results() {
  std::vector<FinishedHook> done;
  {
    std::lock_guard lock(results_mu_);
    done.swap(results_);
  }
  for (const auto& f : done) {
    const std::string& id = f.decision_id;
    if (f.outcome == HookOutcome::kSuccess)
      spdlog::info("hook {} ran for {} in {:.3f} s ({} attempt{})", f.hook, id, f.seconds,
                   f.attempts, f.attempts == 1 ? "" : "s");
    else
      spdlog::error("hook {} {} for {} after {} attempt{}: {}", f.hook, to_string(f.outcome), id,
                    f.attempts, f.attempts == 1 ? "" : "s", f.detail);
    if (on_hook_) on_hook_(f.hook, id, f.outcome == HookOutcome::kSuccess, f.detail);
    if (!f.on) continue;
    if (stopping_ && f.outcome != HookOutcome::kSuccess) continue;  // cut short: not done
    auto it = pending_.find(f.decision);
    if (it == pending_.end() || --it->second.second > 0) continue;
    // Every hook of this "on" decision has ended (ran, or failed and was reported): a restart
    // does not run them again.
    const Lockdown* l = policies_.mark_hooks_done(it->second.first, f.decision);
    if (l && on_done_) on_done_(it->second.first, *l);
    pending_.erase(it);
  }
}

}  // namespace portalwatch
