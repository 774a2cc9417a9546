// `portalwatchd run`: consume portal events from Kafka in a consumer group, detect, and publish
// findings and decisions, with at-least-once processing (offsets committed only after an event is
// fully processed and its findings delivered). run_daemon() puts the parts together, in the
// order an event takes them: KafkaSource (consumer, partitions in event-time order, commits) →
// Pipeline (engine, repeat filter, policies) → DaemonOutputs (state store, log, topics) →
// HookCoordinator; beside them OperatorCommands (portalwatchctl, reload).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <functional>
#include <memory>
#include <optional>

#include "daemon/config.h"
#include "daemon/hooks.h"
#include "detectors/time.h"
#include "detectors/decision.h"
#include "detectors/finding.h"

namespace portalwatch {

class Metrics;

struct DaemonOptions {
  /// Sees every finding after it is handed to the alert sinks (the demo prints them).
  std::function<void(const Finding&)> on_finding;
  /// Sees every decision after it is recorded and handed to its sinks.
  std::function<void(const Decision&)> on_decision;
  /// Stop after this much wall time (demo and tests); none: until stop is set.
  std::optional<std::chrono::milliseconds> duration;
  /// Called after each message is fully processed (tests check at-least-once with it).
  std::function<void(const std::string& topic, std::int32_t partition, std::int64_t offset)> on_processed;
  /// Sees every hook's final result for a decision, on the event loop's thread (the demo prints
  /// them): hook name, decision id, success, detail.
  std::function<void(const std::string&, const std::string&, bool, const std::string&)> on_hook;
  /// Passed to the hook runner (benchmarks time hook starts with it).
  HookRunnerOptions hooks;
  /// The wall clock (lockdowns ending while the input is idle, time clamps, the control status,
  /// GeoIP database ages); none: the system's. Must outlive run_daemon().
  const Clock* wall_clock = nullptr;
  /// Called once the metrics endpoint is up, with its port (tests bind port 0).
  std::function<void(int metrics_port)> on_ready;
  /// After the shutdown, when librdkafka's threads have not ended within what is left of
  /// shutdown.timeout_seconds (at least 250 ms; a cluster that stopped answering can hold them
  /// for minutes), end the process without waiting for them: run_daemon() then does not return
  /// (`portalwatchd run`). Otherwise it waits (tests and benchmarks running the daemon in-process).
  bool exit_if_kafka_does_not_stop = false;
};

/// Starts up in ordered steps, runs until stop becomes true (or the duration passes), shuts
/// down, and tears down what start-up did, in reverse, whether it completed or not. Returns the
/// process exit code: 0 after a clean shutdown, 1 when start-up failed (the reason is logged). See
/// DaemonOptions::exit_if_kafka_does_not_stop.
int run_daemon(Config config, const DaemonOptions& options, const std::atomic<bool>& stop);

/// Installs SIGINT/SIGTERM handlers that set the returned flag (once per process).
const std::atomic<bool>& install_stop_signals();

}  // namespace portalwatch
