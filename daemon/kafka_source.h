// The Kafka end of the event path: the consumer in its group (rebalances for both protocols),
// each assigned partition read from its own queue, the oldest next event first (PartitionFeeds),
// each event through the pipeline, and the offsets of what was processed committed once its
// findings are delivered; warm-up after a restart or a takeover, partitions assigned late, lag,
// leaving the group. It owns the consumer and its event callback.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/config.h"
#include "daemon/daemon_outputs.h"
#include "daemon/finding_ledger.h"
#include "daemon/group_lag.h"
#include "daemon/kafka_client.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/partition_feeds.h"
#include "daemon/pipeline.h"
#include "daemon/state_store.h"
#include "daemon/takeover.h"
#include "detectors/engine.h"

namespace portalwatch {

class KafkaSource final : private RdKafka::RebalanceCb, private PartitionFeeds::Handler {
 public:
  using Clock = std::chrono::steady_clock;
  /// Called after each message is fully processed: topic, partition, offset.
  using OnProcessed = std::function<void(const std::string&, std::int32_t, std::int64_t)>;

  /// All must outlive it (store may be null: no state store). config is the configuration in
  /// force (a reload changes what a late assignment builds the detectors from).
  KafkaSource(const Config& config, Pipeline& pipeline, StateStore* store, Metrics& metrics,
              DaemonOutputs& outputs, KafkaClientEvents& events, OnProcessed on_processed);
  ~KafkaSource() override;
  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;

  /// Creates the consumer (`common`: the properties both Kafka clients share) and the queues it
  /// is read from; nothing is read before subscribe(). False with `error` set when it cannot.
  bool start(const std::map<std::string, std::string>& common, std::string& error);
  /// Joins the group on kafka.topics, and measures the group's lag from then on
  /// (kafka.group_lag_interval_ms) until close() or release_queues().
  bool subscribe(std::string& error);
  /// The static member id (kafka.group_instance_id resolved; "" for a dynamic member).
  const std::string& instance() const { return instance_; }

  /// The consumer's own queue (rebalances, errors, statistics, and messages of a partition whose
  /// queue was not set apart yet), then the partitions' events in event-time order, at most a
  /// batch of them. Returns when to wait until (nothing could go), or nothing when it stopped at
  /// the end of a batch.
  std::optional<Clock::time_point> consume_some();
  /// Until a partition's queue or the consumer's gets something, or until `until`.
  void wait_for_input(Clock::time_point until);
  /// Every assigned partition read to its end, or none assigned for 30 s (counted from `now` at
  /// first): no event will carry time.
  bool input_idle(Clock::time_point now);
  /// The loop starts: no partition is assigned yet.
  void started(Clock::time_point now) { no_partitions_since_ = now; }
  /// Commits the next offset of every fully processed partition, after every finding produced so
  /// far has been delivered; wait false (periodic) never blocks for long (see the definition).
  void commit(bool wait, int wait_ms = 15000) { commit_processed(nullptr, wait, wait_ms); }
  /// portalwatch_consumer_lag_messages and portalwatch_kafka_assigned_partitions.
  void update_lag();
  /// The partitions' held messages and expired waits into metrics.
  void sync_metrics();
  /// The group gave this consumer no partition (a health problem).
  bool nothing_assigned();

  /// The shutdown begins: the group's lag is not measured any more (no new request to the
  /// cluster; close() waits for one under way).
  void stop_measuring() {
    if (group_lag_) group_lag_->request_stop();
  }
  /// The shutdown: waits for Kafka (a revocation's commit while leaving the group) end by then.
  void set_deadline(Clock::time_point deadline) { stop_deadline_ = deadline; }
  /// Leaves the group (revoking the partitions, which commits once more) by `deadline`.
  void close(Clock::time_point deadline);
  /// The queues and what they hold go (before the consumer).
  void release_queues();
  /// Destroys the consumer (librdkafka's threads end; any thread). A cooperative-sticky consumer
  /// never assigned is kept to the end of the process instead, its event callback detached.
  void release_consumer();
  bool has_consumer() const { return consumer_ != nullptr; }

 private:
  using TopicPartitionKey = std::pair<std::string, std::int32_t>;
  // error_limiter_'s keys.
  enum LogKey : std::size_t { kConsumeError, kCommitFailed, kNotDelivered, kLogKeys };

  void drain_wake();
  void consume_error(rd_kafka_resp_err_t err, const char* text);
  void process(const PartitionFeeds::Message& msg, Event& event);
  void finished(const TopicPartitionKey& key, std::int64_t offset);
  // PartitionFeeds::Handler
  void error(const rd_kafka_message_t& m) override;
  bool skip(const PartitionFeeds::Message& m) override;
  void rejected(const PartitionFeeds::Message& msg, const Engine::Result& r) override;
  // RdKafka::RebalanceCb
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;
  void commit_processed(const std::vector<RdKafka::TopicPartition*>* only, bool wait = true,
                        int wait_ms = 15000);
  void commit_done(int err, const std::vector<GroupCommitter::Result>& results);
  void mark_warmup(const TopicPartitionKey& tp, std::int64_t offset);
  std::map<std::string, std::int64_t> warmup_offsets(
      const std::vector<RdKafka::TopicPartition*>& offsets);
  std::optional<std::int64_t> warmup_offset(const TopicPartitionKey& tp, TimeMs from);
  void restart_if_late(RdKafka::KafkaConsumer& consumer,
                       std::vector<RdKafka::TopicPartition*>& partitions, bool cooperative);
  void start_warmup(RdKafka::KafkaConsumer& consumer,
                    std::vector<RdKafka::TopicPartition*>& partitions);

  const Config& config_;
  Pipeline& pipeline_;
  Engine& engine_;
  FindingLedger& ledger_;
  StateStore* store_;
  Metrics& metrics_;
  DaemonOutputs& outputs_;
  KafkaClientEvents& events_;
  OnProcessed on_processed_;
  std::string instance_;
  std::map<std::string, std::string> kafka_common_;     // librdkafka properties of both clients
  std::unique_ptr<DetachableEventCb> consumer_events_;  // before consumer_: outlives it
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<GroupCommitter> committer_;
  std::unique_ptr<GroupLagProbe> group_lag_;  // its thread uses consumer_
  std::unique_ptr<PartitionFeeds> feeds_;       // the assigned partitions, read in event-time order
  rd_kafka_queue_t* consumer_queue_ = nullptr;  // the consumer's own queue, for its wake-ups
  // librdkafka writes to [1] when a queue gets something; the loop waits on [0].
  int wake_[2] = {-1, -1};
  std::uint64_t synced_waits_ = 0;  // what sync_metrics() has counted
  std::uint64_t synced_pauses_ = 0;
  std::map<TopicPartitionKey, std::int64_t> next_offsets_;
  std::map<TopicPartitionKey, std::deque<std::pair<TimeMs, std::int64_t>>> warmup_marks_;
  std::optional<Clock::time_point> stop_deadline_;  // set_deadline()
  std::optional<Clock::time_point>
      commit_deferred_since_;  // periodic commits waiting for deliveries
  // In the state store, the group's commit failed: the offset the group gets again.
  std::map<TopicPartitionKey, std::int64_t> group_behind_;
  // Per partition, the offset after the last event this process ran through the detectors.
  std::map<TopicPartitionKey, std::int64_t> seen_until_;
  // Per partition taken over from another member: the group's offset then. Events before it are
  // re-read to warm up, publish nothing and must not move the group's offset back.
  std::map<TopicPartitionKey, std::int64_t> taken_over_until_;
  // Per partition read again after a late assignment (restart_if_late()): the offset this process
  // had read to. Events before it are in the profiles already and move no committed offset back.
  std::map<TopicPartitionKey, std::int64_t> rebuild_until_;
  // Per assigned partition, where its new events begin (the group's or the store's position when
  // it was assigned): update_lag() counts from there until something is processed.
  std::map<TopicPartitionKey, std::int64_t> lag_from_;
  bool dirty_ = false;  // processed since the last commit
  Clock::time_point no_partitions_since_{};
  bool ever_assigned_ = false;  // a rebalance has given this consumer an assignment (maybe empty)
  bool cooperative_sticky_ = false;  // the consumer's assignment strategy
  LogLimiter<kLogKeys> error_limiter_{std::chrono::seconds(10)};
  LogLimiter<kRejectReasonCount> reject_limiter_;
};

}  // namespace portalwatch
