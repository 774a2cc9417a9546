// The operator's side of the daemon: the control server (portalwatchctl) and the commands it
// carries out on the event loop (status, findings and decisions, manual lockdowns, the allowlist,
// silences, reload), the operator's settings kept in the state store, and the reload of the
// configuration (also on SIGHUP).
#pragma once

#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/cluster.h"
#include "daemon/config.h"
#include "daemon/control.h"
#include "daemon/control_server.h"
#include "daemon/daemon_outputs.h"
#include "daemon/hook_coordinator.h"
#include "daemon/metrics.h"
#include "daemon/state_store.h"
#include "detectors/engine.h"
#include "detectors/policy.h"
#include "detectors/time.h"

namespace portalwatch {

class OperatorCommands final : public ControlHandler {
 public:
  /// Why the daemon is degraded, for the status (none: healthy).
  using HealthProblems = std::function<std::vector<std::string>()>;

  /// All must outlive it (store may be null: no state store). config is the configuration in
  /// force, which reload() changes.
  OperatorCommands(Config& config, const Clock& clock, Engine& engine, Metrics& metrics,
                   PolicyEngine& policies, StateStore* store, HookCoordinator& hooks,
                   DaemonOutputs& outputs, HealthProblems problems)
      : config_(config),
        clock_(clock),
        engine_(engine),
        metrics_(metrics),
        policies_(policies),
        store_(store),
        hooks_(hooks),
        outputs_(outputs),
        problems_(std::move(problems)) {}
  ~OperatorCommands() override { stop(); }
  OperatorCommands(const OperatorCommands&) = delete;
  OperatorCommands& operator=(const OperatorCommands&) = delete;

  /// Starts the control server when one is configured; the daemon's uptime counts from here.
  bool start(const ControlConfig& config, std::string& error);
  /// The operator's settings (allowlist, silences) from the state store into the policies.
  void restore_settings();
  /// ControlHandler: on the control server's thread; waits (at most 10 s) for the event loop.
  ControlReply handle(const ControlPeer& peer, const ControlRequest& request) override;
  /// The event loop carries out the requests waiting.
  void drain();
  /// Answers what waits, refuses what comes later, and stops the control server.
  void stop();
  /// A finding or decision published: the recent lists and the live streams.
  void published(ControlStream stream, const std::string& json);
  /// Reads the configuration file again and applies it (see the definition); an error anywhere
  /// changes nothing.
  ControlReply reload();
  /// A cluster member (cluster.h): the operator's changes go through the state topic (stored,
  /// read back, applied in its order on every member); must outlive this.
  void set_cluster(ClusterShare* cluster);
  /// A record of the state topic: the change it carries applied (ClusterShare's state handler).
  void apply_state(std::string_view key, std::string_view value, bool starting);

 private:
  // A request from the control server's thread, carried out on the event loop (which owns every
  // piece of state it touches) within a bounded wait.
  struct ControlTask {
    ControlPeer peer;
    ControlRequest request;
    std::promise<ControlReply> reply;
  };

  ControlReply execute(const ControlPeer& peer, const ControlRequest& r);
  // The changes, wherever they come from (a request to this member, a record of the state topic):
  // `by` the operator, at `at` (their wall clock).
  ControlReply lockdown(const Scope& scope, bool on, const std::string& user, const std::string& reason,
                        TimeMs ttl, TimeMs at);
  ControlReply allow(const IpNetwork& network, const std::string& comment, const std::string& by, TimeMs at);
  ControlReply disallow(const IpNetwork& network);
  ControlReply silence(const std::string& detector, TimeMs until, const std::string& by, const std::string& reason);
  // A change made in a cluster: its record stored, read back and applied; the reply is the
  // application's.
  ControlReply through_cluster(const std::string& key, std::string record);
  std::string status_json();
  std::string allowlist_json() const;
  bool persist_setting(const std::string& name, const std::string* value);

  Config& config_;
  const Clock& clock_;
  Engine& engine_;
  Metrics& metrics_;
  PolicyEngine& policies_;
  StateStore* store_;
  HookCoordinator& hooks_;
  DaemonOutputs& outputs_;
  HealthProblems problems_;
  std::deque<std::string> recent_findings_, recent_decisions_;
  TimeMs started_at_ = 0;
  std::mutex mu_;
  std::vector<std::shared_ptr<ControlTask>> tasks_;  // from the control server's thread
  bool stopping_ = false;
  std::unique_ptr<ControlServer> server_;
  ClusterShare* cluster_ = nullptr;
  std::string pending_request_;  // the id of the record through_cluster() waits for
  std::optional<ControlReply> pending_reply_;  // its application's reply
  std::uint64_t requests_ = 0;
};

}  // namespace portalwatch
