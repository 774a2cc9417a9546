#include "daemon/kafka_daemon.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "daemon/cluster.h"
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

using SteadyClock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};

void on_stop_signal(int) { g_stop.store(true); }

std::atomic<bool> g_reload{false};

void on_reload_signal(int) { g_reload.store(true); }

// What start-up builds from the configuration once the state store and GeoIP are open: the event
// path, its parts in the order an event takes them, and the operator's side. No I/O yet.
struct EventPath {
  EventPath(Config& config, const DaemonOptions& options, const Clock& clock, StateStore* store,
            GeoIp* geoip)
      : engine(config.engine, std::move(config.detectors), &clock, store, geoip),
        metrics(engine, geoip),
        policies(std::move(config.policies), config.decisions.dry_run),
        hooks(policies, metrics.registry(), options.hooks, options.on_hook,
              [this](const std::string& key, const Lockdown& l) {
                outputs.write_lockdown(key, &l, nullptr);
              }),
        outputs(config.kafka, store, metrics, engine, policies, hooks,
                {options.on_finding, options.on_decision,
                 [this](ControlStream stream, const std::string& json) {
                   operator_commands.published(stream, json);
                 }}),
        operator_commands(config, clock, engine, metrics, policies, store, hooks, outputs,
                          [this] { return health_problems(); }),
        source(config, pipeline, store, metrics, outputs, client_events, options.on_processed) {}

  // Why the daemon is degraded (portalwatchctl status).
  std::vector<std::string> health_problems() {
    std::vector<std::string> problems;
    if (source.nothing_assigned()) problems.emplace_back("no Kafka partition assigned");
    if (outputs.delivery_failed()) problems.emplace_back("findings waiting to be delivered again");
    return problems;
  }

  Engine engine;
  Metrics metrics;
  KafkaClientEvents client_events{metrics};  // both clients' event callback: outlives them
  FindingLedger ledger;
  PolicyEngine policies;
  // Hooks run off the event path; an "on" decision whose hooks have all run is stored so.
  HookCoordinator hooks;
  // Findings and decisions past the pipeline: the state store, the log, the topics, the hooks.
  DaemonOutputs outputs;
  Pipeline pipeline{engine, policies, ledger, outputs, outputs};  // from the engine on
  // The operator's commands (portalwatchctl, SIGHUP's reload).
  OperatorCommands operator_commands;
  // The event path's Kafka end: the consumer, partitions in event-time order, commits.
  KafkaSource source;
};

class KafkaDaemon final {
 public:
  /// clock must outlive it.
  KafkaDaemon(Config config, const DaemonOptions& options, const Clock& clock)
      : config_(std::move(config)), options_(options), clock_(clock) {}
  ~KafkaDaemon() { tear_down(false); }

  /// Start-up: the steps in order, until one fails (its error in `error`).
  bool start(std::string& error) {
    for (const Step& step : kSteps) {
      ++begun_;
      if (!(this->*step.start)(error)) return false;
    }
    return true;
  }

  /// The steps begun are torn down in reverse (the one that failed too: a teardown undoes what
  /// its step got done). With may_abandon, returns false when the Kafka clients' threads have not
  /// ended within what is left of the shutdown time: they are then still being destroyed on
  /// another thread and the caller must end the process without returning (std::_Exit).
  bool tear_down(bool may_abandon) {
    bool done = true;
    while (begun_ > 0) {
      const Step& step = kSteps[--begun_];
      if (step.teardown && !(this->*step.teardown)(may_abandon)) done = false;
    }
    return done;
  }

  void run(const std::atomic<bool>& stop) {
    EventPath& p = *path_;
    const auto started = SteadyClock::now();
    notifier_.ready(service_status());
    auto next_status = started + std::chrono::seconds(10);
    auto next_commit = started + std::chrono::milliseconds(config_.kafka.commit_interval_ms);
    auto next_sync = started;
    auto next_tick = started;
    auto next_lag = started;
    p.source.started(started);
    while (!stop.load(std::memory_order_relaxed)) {
      if (options_.duration && SteadyClock::now() - started >= *options_.duration) break;
      const auto wait_until = p.source.consume_some();
      const auto now = SteadyClock::now();
      p.outputs.poll();
      if (cluster_) {
        cluster_->poll();
        p.outputs.take_over(cluster_->take_gained());
      }
      if (p.hooks.enabled()) p.hooks.drain_results();
      p.operator_commands.drain();
      if (g_reload.exchange(false)) {
        notifier_.status("reloading");
        const ControlReply r = p.operator_commands.reload();
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
        // even when one took the portal down and stopped the events. While events wait (a
        // backlog), event time alone moves (Pipeline), as in a replay.
        if (p.source.input_idle(now))
          p.pipeline.advance_to(std::max(p.engine.watermark(), clock_.now()));
        next_tick = now + std::chrono::seconds(1);
      }
      if (now >= next_sync) {
        p.metrics.sync(p.engine);
        sync_pipeline_metrics();
        if (cluster_) cluster_->sync_metrics();
        next_sync = now + std::chrono::milliseconds(250);
      }
      if (now >= next_lag) {
        p.source.update_lag();
        next_lag = now + std::chrono::seconds(1);
      }
      if (now >= next_commit) {
        p.source.commit(/*wait=*/false);
        next_commit = now + std::chrono::milliseconds(config_.kafka.commit_interval_ms);
      }
      if (wait_until)
        p.source.wait_for_input(
            std::min(*wait_until, now + std::chrono::milliseconds(config_.kafka.poll_timeout_ms)));
    }
    shutdown();
  }

 private:
  // Start-up, in order (as Falco's app/actions): each step a small function that returns false
  // with the error when start-up cannot go on; a step with something to undo has a teardown,
  // which tear_down() runs after the run or after a failed start-up.
  struct Step {
    bool (KafkaDaemon::*start)(std::string& error);
    bool (KafkaDaemon::*teardown)(bool may_abandon);  // null: nothing to undo
  };

  // ---- the steps -------------------------------------------------------------------------------

  bool open_state_store(std::string& error) {
    const StateConfig& sc = config_.state;
    if (sc.path.empty()) return true;
    StateStoreOptions o;
    o.path = sc.path;
    o.cache_accounts = config_.profiles.cache_accounts;
    o.block_cache_mib = sc.block_cache_mib;
    store_ = StateStore::open(o, error);
    return error.empty();
  }

  bool open_geoip(std::string& error) {
    geoip_ = start_geoip(config_, clock_, error);
    return error.empty();
  }

  bool build_event_path(std::string&) {
    path_ = std::make_unique<EventPath>(config_, options_, clock_, store_.get(), geoip_.get());
    return true;
  }

  // What the state store kept from the last run: the ledger, the running numbers (which order the
  // outboxes), the lockdowns in force.
  bool restore_state(std::string&) {
    if (!store_) return true;
    EventPath& p = *path_;
    store_->restore_ledger(p.ledger);
    if (store_->next_finding_id() > p.engine.next_finding_id())
      p.engine.set_next_finding_id(store_->next_finding_id());
    spdlog::info("state in {}: {} consumer positions, {} recent findings", config_.state.path,
                 store_->positions().size(), p.ledger.size());
    if (store_->next_decision_id() > p.policies.next_decision_id())
      p.policies.set_next_decision_id(store_->next_decision_id());
    for (const Lockdown& l : store_->lockdowns()) {
      spdlog::warn("lockdown in force since {}: {} {} by {}{}: {}", format_rfc3339(l.decision.at),
                   to_string(l.decision.action), l.decision.scope.key(), l.decision.by,
                   l.decision.dry_run ? " (dry run)" : "", l.decision.reason);
      p.policies.restore(l);
    }
    p.metrics.set_lockdowns(p.policies.active());
    return true;
  }

  // As a reload does (OperatorCommands::reload): HookCoordinator::configure.
  bool start_hooks(std::string&) {
    if (!config_.hooks.empty()) {
      spdlog::info("{} hook(s): {}", config_.hooks.size(), [&] {
        std::string names;
        for (const auto& h : config_.hooks)
          names +=
              (names.empty() ? "" : ", ") + h.name + " (" + std::string(to_string(h.type)) + ")";
        return names;
      }());
    }
    path_->hooks.configure(config_.hooks, "before the last stop");
    return true;
  }

  bool restore_settings(std::string&) {
    if (store_) path_->operator_commands.restore_settings();
    return true;
  }

  // As a reload does: DaemonOutputs::open_decision_log.
  bool open_decision_log(std::string& error) {
    return path_->outputs.open_decision_log(config_.decisions.log, error);
  }

  bool start_kafka_clients(std::string& error) {
    const std::map<std::string, std::string> common = kafka_common_properties(config_.kafka);
    return path_->source.start(common, error) &&
           path_->outputs.start_producer(common, path_->client_events, error);
  }

  // A cluster member joins the group that shares out the state topic's partitions; until it owns
  // some, it holds everything it finds (published when it is given their partitions).
  bool join_cluster(std::string& error) {
    if (!config_.cluster.enabled) return true;
    EventPath& p = *path_;
    if (p.source.instance().empty()) {
      error = "cluster.enabled: kafka.group_instance_id resolved to nothing (no host name?)";
      return false;
    }
    cluster_ = std::make_unique<ClusterShare>(config_.cluster, config_.kafka, p.metrics, p.client_events);
    const std::map<std::string, std::string> common = kafka_common_properties(config_.kafka);
    if (!cluster_->start(common, p.source.instance(), error)) return false;
    p.outputs.set_cluster(cluster_.get());
    p.operator_commands.set_cluster(cluster_.get());
    // The operator's changes so far, before the first event: the state every member is in.
    const auto started = SteadyClock::now();
    if (!cluster_->load_state(std::chrono::seconds(30))) {
      error = "cluster: the state topic " + config_.cluster.state_topic + " could not be read within 30 s";
      return false;
    }
    spdlog::info("cluster: state read in {} ms: {} lockdown(s) in force, {} allowlisted, {} silenced",
                 std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started).count(),
                 p.policies.active().size(), p.policies.allowlist().size(), p.policies.silences().size());
    return true;
  }


  // Destroys the Kafka clients (librdkafka's threads end). With may_abandon, waits no longer than
  // what is left of the shutdown time (at least 250 ms) and returns false if they have not ended
  // by then (see tear_down()). Found by the soak: with the cluster gone and a large backlog
  // fetched, destroying the consumer took 31 s after a bounded close.
  bool release_kafka_clients(bool may_abandon) {
    EventPath& p = *path_;
    const auto started = SteadyClock::now();
    p.source.release_queues();
    if (!p.source.has_consumer() && !p.outputs.producing() && !cluster_) return true;  // never started
    auto released = std::make_shared<std::promise<void>>();
    auto done = released->get_future();
    std::thread releaser([&p, cluster = cluster_.get(), released] {
      if (cluster) cluster->close();  // a static member: its partitions wait session.timeout.ms
      p.outputs.release_producer();
      p.source.release_consumer();
      released->set_value();
    });
    const auto until =
        std::max(shutdown_deadline_.value_or(started), started + std::chrono::milliseconds(250));
    if (may_abandon && done.wait_until(until) != std::future_status::ready) {
      releaser.detach();
      spdlog::warn(
          "kafka: the clients' threads did not end within the shutdown time (cluster "
          "unreachable?); exiting without waiting for them");
      return false;
    }
    releaser.join();
    // Part of the shutdown time that shutdown() does not bound (librdkafka's threads ending).
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started).count();
    if (ms >= 1000) spdlog::warn("kafka: releasing the clients took {} ms", ms);
    return true;
  }

  // Findings and decisions whose delivery was not confirmed before the last stop.
  bool resend_undelivered(std::string&) {
    path_->outputs.resend_undelivered();
    return true;
  }

  bool subscribe(std::string& error) { return path_->source.subscribe(error); }

  bool serve_metrics(std::string& error) {
    if (!config_.metrics.enabled) return true;
    try {
      path_->metrics.serve(config_.metrics.listen);
    } catch (const std::exception& e) {
      error = e.what();
      return false;
    }
    return true;
  }

  bool announce(std::string&) {
    EventPath& p = *path_;
    std::string topics;
    for (const auto& t : config_.kafka.topics) topics += (topics.empty() ? "" : ",") + t;
    const std::string& instance = p.source.instance();
    spdlog::info("portalwatch consuming {} from {} as group {}{}; {} detector(s); metrics {}",
                 topics, config_.kafka.bootstrap_servers, config_.kafka.group_id,
                 instance.empty() ? std::string() : " (static member " + instance + ")",
                 p.engine.detectors().size(),
                 config_.metrics.enabled ? "on port " + std::to_string(p.metrics.port())
                                         : std::string("off"));
    return true;
  }

  bool start_control(std::string& error) {
    return path_->operator_commands.start(config_.control, error);
  }

  bool stop_control(bool) {
    path_->operator_commands.stop();
    return true;
  }

  bool ready(std::string&) {
    if (options_.on_ready) options_.on_ready(path_->metrics.port());
    return true;
  }

  static constexpr Step kSteps[] = {
      {&KafkaDaemon::open_state_store, nullptr},
      {&KafkaDaemon::open_geoip, nullptr},
      {&KafkaDaemon::build_event_path, nullptr},
      {&KafkaDaemon::restore_state, nullptr},
      {&KafkaDaemon::start_hooks, nullptr},  // stopped by shutdown(), else with the daemon
      {&KafkaDaemon::restore_settings, nullptr},
      {&KafkaDaemon::open_decision_log, nullptr},
      {&KafkaDaemon::start_kafka_clients, &KafkaDaemon::release_kafka_clients},
      {&KafkaDaemon::join_cluster, nullptr},  // left by release_kafka_clients
      {&KafkaDaemon::resend_undelivered, nullptr},
      {&KafkaDaemon::subscribe, nullptr},
      {&KafkaDaemon::serve_metrics, nullptr},
      {&KafkaDaemon::announce, nullptr},
      {&KafkaDaemon::start_control, &KafkaDaemon::stop_control},
      {&KafkaDaemon::ready, nullptr},
  };

  // ---- the run ---------------------------------------------------------------------------------

  void sync_pipeline_metrics() {
    EventPath& p = *path_;
    const PipelineStats& s = p.pipeline.stats();
    p.metrics.findings_suppressed[kSuppressedReplayed]->Increment(
        static_cast<double>(s.suppressed_replayed - synced_.suppressed_replayed));
    p.metrics.findings_suppressed[kSuppressedRepeat]->Increment(
        static_cast<double>(s.suppressed_repeat - synced_.suppressed_repeat));
    synced_ = s;
    p.source.sync_metrics();
  }

  // One line for `systemctl status`.
  std::string service_status() const {
    const EventPath& p = *path_;
    return fmt::format("{} events, {} rejected, {} findings, {} lockdown(s) in force, lag {}",
                       p.engine.stats().received, p.engine.stats().rejected_total(),
                       p.pipeline.stats().published, p.policies.active().size(),
                       static_cast<std::int64_t>(p.metrics.consumer_lag.Value()));
  }

  // SIGTERM: everything within config_.shutdown.timeout_ms. Offsets of processed events are
  // committed first (nothing else can lose them); hooks in progress get the time left but a
  // reserve for the rest (a hook killed here has its decision not marked done, so it runs again
  // after the restart); then the decisions and findings still queued for Kafka are delivered.
  void shutdown() {
    EventPath& p = *path_;
    const auto started = SteadyClock::now();
    const auto deadline = started + std::chrono::milliseconds(config_.shutdown.timeout_ms);
    const auto left = [&](std::chrono::milliseconds reserve) {
      return std::max(
          std::chrono::milliseconds(0),
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()) -
              reserve);
    };
    p.source.set_deadline(deadline);
    p.source.stop_measuring();
    shutdown_deadline_ = deadline;
    notifier_.stopping("shutting down: " + service_status());
    p.operator_commands.stop();
    spdlog::info("shutting down (at most {} s): committing processed offsets",
                 config_.shutdown.timeout_ms / 1000);
    p.source.commit(true, config_.shutdown.timeout_ms / 4);
    if (p.hooks.enabled()) {
      // A quarter of the budget is kept for Kafka: deliveries and leaving the group.
      p.hooks.stop(left(std::chrono::milliseconds(config_.shutdown.timeout_ms / 4)));
      if (p.hooks.unfinished())
        spdlog::warn(
            "{} lockdown decision(s) with hooks not finished at shutdown: they run again at the "
            "next start",
            p.hooks.unfinished());
    }
    if (p.outputs.producing()) {
      // Before leaving the group: what is delivered now is not re-sent from the outbox later.
      p.outputs.stop_producing(left(std::chrono::milliseconds(config_.shutdown.timeout_ms / 8)));
    }
    // A twentieth of the budget is left for the rest: the state store's close, freeing the tables.
    // The revocation's commit while leaving the group waits no longer either.
    const auto close_by =
        std::max(deadline - std::chrono::milliseconds(config_.shutdown.timeout_ms / 20),
                 SteadyClock::now() + std::chrono::seconds(1));
    p.source.set_deadline(close_by);
    p.source.close(close_by);
    p.metrics.sync(p.engine);
    const auto& s = p.engine.stats();
    spdlog::info(
        "stopped after {} events ({} rejected), {} findings ({} repeats suppressed) in {} ms",
        s.received, s.rejected_total(), p.pipeline.stats().published,
        p.pipeline.stats().suppressed_repeat,
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started)
            .count());
  }

  Config config_;
  DaemonOptions options_;
  const Clock& clock_;
  std::unique_ptr<StateStore> store_;  // before path_, which holds pointers to it
  std::unique_ptr<GeoIp> geoip_;       // likewise
  std::unique_ptr<EventPath> path_;
  std::unique_ptr<ClusterShare> cluster_;  // a cluster member (cluster.enabled)
  ServiceNotifier notifier_;
  std::size_t begun_ = 0;  // start-up steps begun
  PipelineStats synced_;   // what sync_pipeline_metrics() has counted
  // When SIGTERM's shutdown.timeout_seconds end.
  std::optional<SteadyClock::time_point> shutdown_deadline_;
};

}  // namespace

const std::atomic<bool>& install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // SIGHUP (systemctl reload): the same reload as `portalwatchctl reload`, on the event loop.
  struct sigaction hup {};
  hup.sa_handler = on_reload_signal;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
  return g_stop;
}

int run_daemon(Config config, const DaemonOptions& options, const std::atomic<bool>& stop) {
  init_logging(config.log);
  SystemClock system_clock;
  KafkaDaemon daemon(std::move(config), options,
                     options.wall_clock ? *options.wall_clock : system_clock);
  std::string error;
  const bool started = daemon.start(error);
  if (started)
    daemon.run(stop);
  else
    spdlog::critical("{}", error);
  if (!daemon.tear_down(started && options.exit_if_kafka_does_not_stop)) {
    // Everything that matters is done: offsets committed as far as the cluster allowed, the state
    // store written (its log is in the kernel's hands), hooks given their time.
    spdlog::default_logger()->flush();
    std::fflush(nullptr);
    std::_Exit(0);
  }
  return started ? 0 : 1;
}

}  // namespace portalwatch
