#include "daemon/kafka_daemon.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <optional>
#include <thread>

#include "daemon/daemon_outputs.h"
#include "daemon/finding_ledger.h"
#include "daemon/geoip.h"
#include "daemon/hook_coordinator.h"
#include "daemon/kafka_client.h"
#include "daemon/kafka_source.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/operator_commands.h"
#include "daemon/pipeline.h"
#include "daemon/service_notify.h"
#include "daemon/state_store.h"
#include "daemon/system_clock.h"

namespace portalwatch {

namespace {

constexpr std::size_t kSuppressedReplayed = 0;
constexpr std::size_t kSuppressedRepeat = 1;

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};

void on_stop_signal(int) { g_stop.store(true); }

std::atomic<bool> g_reload{false};

void on_reload_signal(int) { g_reload.store(true); }

class KafkaDaemon final {
 public:
  KafkaDaemon(Config config, const DaemonOptions& options)
      : config_(std::move(config)),
        options_(options),
        store_(open_store(config_.state, config_.profiles, store_error_)),
        geoip_(start_geoip(config_, wall_clock_, geoip_error_)),
        engine_(config_.engine, std::move(config_.detectors), &wall_clock_, store_.get(), geoip_.get()),
        metrics_(engine_, geoip_.get()),
        policies_(std::move(config_.policies), config_.decisions.dry_run) {}

  ~KafkaDaemon() { release_kafka(false); }

  /// Destroys the Kafka clients (librdkafka's threads end). With may_abandon, waits no longer than
  /// what is left of the shutdown time (at least 250 ms) and returns false if they have not
  /// ended by then: the clients are then still being destroyed on another thread and the caller
  /// must end the process without returning (std::_Exit). Found by the soak: with the cluster gone
  /// and a large backlog fetched, destroying the consumer took 31 s after a bounded close.
  bool release_kafka(bool may_abandon) {
    const auto started = Clock::now();
    source_.release_queues();
    operator_.stop();
    if (!source_.has_consumer() && !outputs_.producing()) return true;  // released already, or never started
    auto released = std::make_shared<std::promise<void>>();
    auto done = released->get_future();
    std::thread releaser([this, released] {
      outputs_.release_producer();
      source_.release_consumer();
      released->set_value();
    });
    const auto until = std::max(shutdown_deadline_.value_or(started), started + std::chrono::milliseconds(250));
    if (may_abandon && done.wait_until(until) != std::future_status::ready) {
      releaser.detach();
      spdlog::warn("kafka: the clients' threads did not end within the shutdown time (cluster unreachable?); "
                   "exiting without waiting for them");
      return false;
    }
    releaser.join();
    // Part of the shutdown time that shutdown() does not bound (librdkafka's threads ending).
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    if (ms >= 1000) spdlog::warn("kafka: releasing the clients took {} ms", ms);
    return true;
  }

  bool start(std::string& error) {
    if (!store_error_.empty()) {
      error = store_error_;
      return false;
    }
    if (!geoip_error_.empty()) {
      error = geoip_error_;
      return false;
    }
    if (store_) {
      store_->restore_ledger(ledger_);
      if (store_->next_finding_id() > engine_.next_finding_id()) engine_.set_next_finding_id(store_->next_finding_id());
      spdlog::info("state in {}: {} consumer positions, {} recent findings, next finding {}", config_.state.path,
                   store_->positions().size(), ledger_.size(), format_id('f', engine_.next_finding_id()));
      if (store_->next_decision_id() > policies_.next_decision_id())
        policies_.set_next_decision_id(store_->next_decision_id());
      for (const Lockdown& l : store_->lockdowns()) {
        spdlog::warn("lockdown in force since {}: {} {} by {}{}: {}", format_rfc3339(l.decision.at),
                     to_string(l.decision.action), l.decision.scope.key(), l.decision.by,
                     l.decision.dry_run ? " (dry run)" : "", l.decision.reason);
        policies_.restore(l);
      }
      metrics_.set_lockdowns(policies_.active());
    }
    if (!config_.hooks.empty()) {
      spdlog::info("{} hook(s): {}", config_.hooks.size(), [&] {
        std::string names;
        for (const auto& h : config_.hooks) names += (names.empty() ? "" : ", ") + h.name + " (" + std::string(to_string(h.type)) + ")";
        return names;
      }());
    }
    hooks_.configure(config_.hooks, "before the last stop");
    if (store_) operator_.restore_settings();
    if (!outputs_.open_decision_log(config_.decisions.log, error)) return false;
    const std::map<std::string, std::string> common = kafka_common_properties(config_.kafka);
    if (!source_.start(common, error)) return false;
    if (!outputs_.start_producer(common, client_events_, error)) return false;

    outputs_.resend_undelivered();
    if (!source_.subscribe(error)) return false;
    if (config_.metrics.enabled) {
      try {
        metrics_.serve(config_.metrics.listen);
      } catch (const std::exception& e) {
        error = e.what();
        return false;
      }
    }
    std::string topics;
    for (const auto& t : config_.kafka.topics) topics += (topics.empty() ? "" : ",") + t;
    const std::string& instance = source_.instance();
    spdlog::info("portalwatch consuming {} from {} as group {}{}; {} detector(s); metrics {}", topics,
                 config_.kafka.bootstrap_servers, config_.kafka.group_id,
                 instance.empty() ? std::string() : " (static member " + instance + ")", engine_.detectors().size(),
                 config_.metrics.enabled ? "on port " + std::to_string(metrics_.port()) : std::string("off"));
    if (!operator_.start(config_.control, error)) return false;
    if (options_.on_ready) options_.on_ready(metrics_.port());
    return true;
  }

  void run(const std::atomic<bool>& stop) {
    const auto started = Clock::now();
    notifier_.ready(service_status());
    auto next_status = started + std::chrono::seconds(10);
    auto next_commit = started + std::chrono::milliseconds(config_.kafka.commit_interval_ms);
    auto next_sync = started;
    auto next_tick = started;
    auto next_lag = started;
    source_.started(started);
    while (!stop.load(std::memory_order_relaxed)) {
      if (options_.duration && Clock::now() - started >= *options_.duration) break;
      const auto wait_until = source_.consume_some();
      const auto now = Clock::now();
      outputs_.poll();
      if (hooks_.enabled()) hooks_.drain_results();
      operator_.drain();
      if (g_reload.exchange(false)) {
        notifier_.status("reloading");
        const ControlReply r = operator_.reload();
        if (!r.ok) spdlog::error("SIGHUP: {}", r.error_message);
        notifier_.status(service_status());
      }
      notifier_.keepalive();  // from the loop itself: a loop that stalls stops pinging
      if (now >= next_status) {
        notifier_.status(service_status());
        next_status = now + std::chrono::seconds(10);
      }
      if (now >= next_tick) {
        // Time goes on by the wall clock only while there is no event to carry it: lockdowns end
        // even when one took the portal down and stopped the events. While events wait (a backlog),
        // event time alone moves (Pipeline), as in a replay.
        if (source_.input_idle(now)) pipeline_.advance_to(std::max(engine_.watermark(), wall_clock_.now()));
        next_tick = now + std::chrono::seconds(1);
      }
      if (now >= next_sync) {
        metrics_.sync(engine_);
        sync_pipeline_metrics();
        next_sync = now + std::chrono::milliseconds(250);
      }
      if (now >= next_lag) {
        source_.update_lag();
        next_lag = now + std::chrono::seconds(1);
      }
      if (now >= next_commit) {
        source_.commit(/*wait=*/false);
        next_commit = now + std::chrono::milliseconds(config_.kafka.commit_interval_ms);
      }
      if (wait_until) source_.wait_for_input(std::min(*wait_until, now + std::chrono::milliseconds(config_.kafka.poll_timeout_ms)));
    }
    shutdown();
  }

  void sync_pipeline_metrics() {
    const PipelineStats& p = pipeline_.stats();
    metrics_.findings_suppressed[kSuppressedReplayed]->Increment(
        static_cast<double>(p.suppressed_replayed - synced_.suppressed_replayed));
    metrics_.findings_suppressed[kSuppressedRepeat]->Increment(
        static_cast<double>(p.suppressed_repeat - synced_.suppressed_repeat));
    synced_ = p;
    source_.sync_metrics();
  }

 private:
  // Why the daemon is degraded (portalwatchctl status).
  std::vector<std::string> health_problems() {
    std::vector<std::string> problems;
    if (source_.nothing_assigned()) problems.emplace_back("no Kafka partition assigned");
    if (outputs_.delivery_failed()) problems.emplace_back("findings waiting to be delivered again");
    return problems;
  }

  // One line for `systemctl status`.
  std::string service_status() const {
    return fmt::format("{} events, {} rejected, {} findings, {} lockdown(s) in force, lag {}", engine_.stats().received,
                       engine_.stats().rejected_total(), pipeline_.stats().published, policies_.active().size(),
                       static_cast<std::int64_t>(metrics_.consumer_lag.Value()));
  }

  // SIGTERM: everything within config_.shutdown.timeout_ms. Offsets of processed events are
  // committed first (nothing else can lose them); hooks in progress get the time left but a
  // reserve for the rest (a hook killed here has its decision not marked done, so it runs again
  // after the restart); then the decisions and findings still queued for Kafka are delivered.
  void shutdown() {
    const auto started = Clock::now();
    const auto deadline = started + std::chrono::milliseconds(config_.shutdown.timeout_ms);
    const auto left = [&](std::chrono::milliseconds reserve) {
      return std::max(std::chrono::milliseconds(0),
                      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()) - reserve);
    };
    source_.set_deadline(deadline);
    shutdown_deadline_ = deadline;
    notifier_.stopping("shutting down: " + service_status());
    operator_.stop();
    spdlog::info("shutting down (at most {} s): committing processed offsets", config_.shutdown.timeout_ms / 1000);
    source_.commit(true, config_.shutdown.timeout_ms / 4);
    if (hooks_.enabled()) {
      // A quarter of the budget is kept for Kafka: deliveries and leaving the group.
      hooks_.stop(left(std::chrono::milliseconds(config_.shutdown.timeout_ms / 4)));
      if (hooks_.unfinished())
        spdlog::warn("{} lockdown decision(s) with hooks not finished at shutdown: they run again at the next start",
                     hooks_.unfinished());
    }
    if (outputs_.producing()) {
      // Before leaving the group: what is delivered now is not re-sent from the outbox later.
      outputs_.stop_producing(left(std::chrono::milliseconds(config_.shutdown.timeout_ms / 8)));
    }
    // A twentieth of the budget is left for the rest: the state store's close, freeing the tables.
    // The revocation's commit while leaving the group waits no longer either.
    const auto close_by = std::max(deadline - std::chrono::milliseconds(config_.shutdown.timeout_ms / 20),
                                   Clock::now() + std::chrono::seconds(1));
    source_.set_deadline(close_by);
    source_.close(close_by);
    metrics_.sync(engine_);
    const auto& s = engine_.stats();
    spdlog::info("stopped after {} events ({} rejected), {} findings ({} repeats suppressed) in {} ms", s.received,
                 s.rejected_total(), pipeline_.stats().published, pipeline_.stats().suppressed_repeat,
                 std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
  }

  static std::unique_ptr<StateStore> open_store(const StateConfig& sc, const ProfilesConfig& pc, std::string& error) {
    if (sc.path.empty()) return nullptr;
    StateStoreOptions o;
    o.path = sc.path;
    o.cache_accounts = pc.cache_accounts;
    o.block_cache_mib = sc.block_cache_mib;
    return StateStore::open(o, error);
  }

  Config config_;
  DaemonOptions options_;
  SystemClock wall_clock_;
  std::string store_error_;
  std::unique_ptr<StateStore> store_;  // before engine_, which holds a pointer to it
  std::string geoip_error_;
  std::unique_ptr<GeoIp> geoip_;  // likewise
  Engine engine_;
  Metrics metrics_;
  KafkaClientEvents client_events_{metrics_};  // both clients' event callback: outlives them
  FindingLedger ledger_;
  PolicyEngine policies_;
  // Hooks run off the event path; an "on" decision whose hooks have all run is stored so.
  HookCoordinator hooks_{policies_, metrics_.registry(), options_.hooks, options_.on_hook,
                         [this](const std::string& key, const Lockdown& l) { outputs_.write_lockdown(key, &l, nullptr); }};
  // Findings and decisions past the pipeline: the state store, the log, the topics, the hooks.
  DaemonOutputs outputs_{config_.kafka, store_.get(), metrics_, engine_, policies_, hooks_,
                         {options_.on_finding, options_.on_decision,
                          [this](ControlStream stream, const std::string& json) { operator_.published(stream, json); }}};
  Pipeline pipeline_{engine_, policies_, ledger_, outputs_, outputs_};  // the event path from the engine on
  // The operator's commands (portalwatchctl, SIGHUP's reload).
  OperatorCommands operator_{config_, wall_clock_, engine_, metrics_, policies_, store_.get(), hooks_, outputs_,
                             [this] { return health_problems(); }};
  // The event path's Kafka end: the consumer, partitions in event-time order, commits.
  KafkaSource source_{config_, pipeline_, store_.get(), metrics_, outputs_, client_events_, options_.on_processed};
  ServiceNotifier notifier_;

  PipelineStats synced_;  // what sync_pipeline_metrics() has counted
  // when SIGTERM's shutdown.timeout_seconds end
  std::optional<Clock::time_point> shutdown_deadline_;
};

}  // namespace

const std::atomic<bool>& install_stop_signals() {
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // SIGHUP (systemctl reload): the same reload as `portalwatchctl reload`, on the event loop.
  struct sigaction hup{};
  hup.sa_handler = on_reload_signal;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
  return g_stop;
}

int run_daemon(Config config, const DaemonOptions& options, const std::atomic<bool>& stop) {
  init_logging(config.log);
  KafkaDaemon daemon(std::move(config), options);
  std::string error;
  if (!daemon.start(error)) {
    spdlog::critical("{}", error);
    return 1;
  }
  daemon.run(stop);
  if (!daemon.release_kafka(options.exit_if_kafka_does_not_stop)) {
    // Everything that matters is done: offsets committed as far as the cluster allowed, the state
    // store written (its log is in the kernel's hands), hooks given their time.
    spdlog::default_logger()->flush();
    std::fflush(nullptr);
    std::_Exit(0);
  }
  return 0;
}

}  // namespace portalwatch
