// Where the daemon's findings and decisions go, past the pipeline (its FindingOutput and
// DecisionSink): the state store (the findings' and decisions' outboxes, the lockdown state), the
// log and the decision log, the alerts, decisions and dead-letter topics (it owns the producer
// and serves its delivery reports), the operator's streams, and a decision's hooks.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/cluster.h"
#include "daemon/config.h"
#include "daemon/control.h"
#include "daemon/hook_coordinator.h"
#include "daemon/metrics.h"
#include "daemon/pipeline.h"
#include "daemon/state_store.h"
#include "detectors/decision.h"
#include "detectors/engine.h"
#include "detectors/finding.h"
#include "detectors/policy.h"

namespace portalwatch {

class DaemonOutputs final : public FindingOutput,
                            public DecisionSink,
                            private RdKafka::DeliveryReportCb {
 public:
  /// What it tells besides the topics and the log: each finding and decision (the demo prints
  /// them), and each one's JSON for the operator's recent lists and live streams.
  struct Observers {
    std::function<void(const Finding&)> on_finding;
    std::function<void(const Decision&)> on_decision;
    std::function<void(ControlStream, const std::string& json)> on_published;
  };

  /// The topics are kafka's; the others must outlive it (store may be null: no state store).
  DaemonOutputs(const KafkaConfig& kafka, StateStore* store, Metrics& metrics, const Engine& engine,
                PolicyEngine& policies, HookCoordinator& hooks, Observers observers);
  DaemonOutputs(const DaemonOutputs&) = delete;
  DaemonOutputs& operator=(const DaemonOutputs&) = delete;

  /// Creates the producer when a topic is to be produced to (`common`: the properties both Kafka
  /// clients share; `events`: their event callback, which must outlive the producer). False with
  /// `error` set when librdkafka refuses.
  bool start_producer(const std::map<std::string, std::string>& common, RdKafka::EventCb& events,
                      std::string& error);
  /// The decision log (appended to; none for ""), at start-up and on reload; nothing changes
  /// when it is the path given last. False with `error` set when it cannot be opened: the log in
  /// use before, if any, stays in use (a reload that names an unwritable file is refused).
  bool open_decision_log(const std::string& path, std::string& error);
  /// Decisions, then findings, staged before the last stop whose delivery the broker never
  /// confirmed: sent again with their own ids (a consumer of the topics may see one twice and can
  /// tell by the id).
  void resend_undelivered();

  /// FindingOutput: a finding the pipeline publishes (past the repeat filter; policies see it
  /// next).
  void publish(const Finding& f, const std::string& json, const std::string& ledger_key) override;
  /// DecisionSink: a policy decided (or an operator, through PolicyEngine::manual()). The
  /// lockdown state and the decision (in the decisions' outbox, when it goes to the decisions
  /// topic) are written (synced) first, so a restart knows what is on and sends again a decision
  /// whose delivery was not confirmed; then the decision goes to the log, the decision log, the
  /// topic, the operator's streams and its hooks.
  void decide(Decision&& d) override;
  /// Stores the lockdown state under key (`on`: the lockdown in force; null: none) with the next
  /// decision id, and `outbox` (a decision bound for the decisions topic) when given, in one
  /// synced batch. A failure is counted and logged, with `consequence` after the error.
  void write_lockdown(const std::string& key, const Lockdown* on, const OutboxEntry* outbox,
                      const std::string& consequence = {});
  /// A message the source rejected, copied to the dead-letter topic (when there is one) with
  /// its reason and origin (topic/partition@offset) as headers.
  void dead_letter(std::string_view topic, std::int32_t partition, std::int64_t offset,
                   std::string_view key, std::string_view payload, RejectReason reason);

  /// A cluster member (cluster.enabled): from now on what another member owns is held for it
  /// (ClusterShare), not published. The share must outlive this.
  void set_cluster(ClusterShare* share) { cluster_ = share; }
  /// This member gained partitions of the cluster's state topic: publishes, of what it holds for
  /// them, what the alerts and decisions topics do not have (their previous owner died first),
  /// running a decision's hooks; and will not publish what those topics have already.
  void take_over(const std::vector<std::int32_t>& partitions);

  /// Whether there is a producer (a topic to produce to, and not released).
  bool producing() const { return producer_ != nullptr; }
  /// Serves delivery reports and the producer's events (the event loop, each round).
  void poll() {
    if (producer_) producer_->poll(0);
  }
  /// Produces again what the broker failed to deliver (before a commit).
  void send_failed_again();
  /// Waits up to timeout_ms for everything produced so far to be delivered: librdkafka's flush.
  RdKafka::ErrorCode flush(int timeout_ms) { return producer_->flush(timeout_ms); }
  /// A delivery failed since the last send_failed_again(): offsets stay behind it.
  bool delivery_failed() const { return !retries_.empty(); }
  /// The shutdown, before leaving the group: what is delivered within `wait` is not sent again
  /// from the outbox later; what is not is dropped, so that destroying the producer does not wait
  /// for a broker that is not answering.
  void stop_producing(std::chrono::milliseconds wait);
  /// Destroys the producer (librdkafka's threads end; any thread).
  void release_producer() { producer_.reset(); }

 private:
  struct Retry {
    TopicRole role;
    std::string topic;
    std::string payload;
    std::string key;
    std::uint64_t seq = 0;  ///< running number of a finding or decision (its outbox entry)
  };
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };

  // The published path of a finding and of a decision (held ones at a takeover too).
  void send_finding(std::uint64_t seq, const std::string& id, Severity severity, const std::string& message_key,
                    const std::string& json, const std::string& ledger_key, const LedgerEntry& entry);
  // seen: made earlier and shown already (held, now taken over): not counted or streamed again.
  void act_on(const Decision& d, const std::string& json, bool seen = false);
  void produce(TopicRole role, const std::string& topic, const void* data, size_t len,
               const std::string& key, RdKafka::Headers* headers, std::uint64_t id = 0);
  void dr_cb(RdKafka::Message& msg) override;

  const std::string alerts_topic_, decisions_topic_, dead_letter_topic_;
  StateStore* store_;
  Metrics& metrics_;
  const Engine& engine_;
  PolicyEngine& policies_;
  HookCoordinator& hooks_;
  Observers observers_;
  std::string decision_log_path_;  // as last opened by open_decision_log() ("": none)
  std::unique_ptr<std::FILE, FileCloser> decision_log_;
  std::vector<Retry> retries_;  // failed deliveries, produced again before the next commit
  std::unique_ptr<RdKafka::Producer> producer_;
  ClusterShare* cluster_ = nullptr;  // a cluster member: publishes only what it owns
};

}  // namespace portalwatch
