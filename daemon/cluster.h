// Several daemons watching one portal (cluster.enabled). Each member is a whole replica: it reads
// every event, in a consumer group of its own (kafka.group_id, '.', its name), and detects
// everything, so each member's findings and decisions are exactly one daemon's (and a replay's);
// nothing is split by user, source or network, so no detector or policy ever counts a share of
// its entity. What the members share out is what is done about it: each finding and decision
// has an owner key (a finding's entity, "user:jdoe42"; a decision's scope, "app:hsa"), the key
// falls in one partition of cluster.state_topic (Kafka's murmur2 partitioner, as the Java
// client's), and the group kafka.group_id assigns those partitions among the members (static
// membership, cooperative-sticky): the member that owns the partition publishes the finding or
// decision and runs its hooks.
//
// Every member also reads the alerts and decisions topics as they are written (from their last
// kTopicHistory messages on at start). Ids are the same on every member (Finding::id_string), so
// a member knows what has been published, whoever published it: what it makes for another
// member's partitions it holds until it sees it published. A member that gains partitions (a
// member died or left, or the group changed) reads those topics to their end and publishes what
// it holds for them: their previous owner did not get there. What it makes later for them that
// is published already (this member was behind) it does not publish again. Members may be far
// apart in event time (a backlog): nothing is dropped for its age, only beyond
// cluster.standby_max (counted). Kafka coordinates all of it: no protocol of portalwatch's own.
//
// The operator's changes (lockdowns on and off, the allowlist, silences) are records of the state
// topic (compacted, keyed by what they change), which every member reads whole from its start and
// applies in the topic's order: the same state on every member, whichever member an operator
// asked. A change is answered once its record is stored (acks=all) and this member has read it
// back and applied it.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <cstdint>
#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "daemon/config.h"
#include "daemon/finding_ledger.h"
#include "daemon/kafka_client.h"
#include "daemon/metrics.h"
#include "detectors/decision.h"
#include "detectors/finding.h"

namespace portalwatch {

/// The key whose partition decides who publishes: "<entity type>:<entity>" ("global:global").
std::string owner_key(const Finding& f);
/// A decision's: its scope's key ("global", "app:hsa", "ip:203.0.113.9").
std::string owner_key(const Decision& d);

/// The "id" a finding's or decision's JSON begins with (Finding::to_json, Decision::to_json), or
/// "" when it does not begin so.
std::string_view published_id(std::string_view json);

/// What the Java client's default partitioner gives for key among `partitions`: the positive
/// part of murmur2 of the key's bytes, modulo the partitions.
std::int32_t key_partition(std::string_view key, std::int32_t partitions);

class ClusterShare final : private RdKafka::RebalanceCb, private RdKafka::DeliveryReportCb {
 public:
  /// A finding or decision another member owns, kept for a takeover.
  struct Held {
    std::string id;
    std::int32_t partition = 0;
    std::string json;
    std::string message_key;  ///< its message's key on the alerts or decisions topic
    std::uint64_t seq = 0;    ///< its running number (Finding::seq, Decision::seq): the outbox's order
    std::string ledger_key;   ///< a finding's entry in the ledger, with the entry
    LedgerEntry ledger_entry;
    std::optional<Decision> decision;  ///< set for a decision (its hooks run at a takeover)
  };

  /// All must outlive it.
  ClusterShare(const ClusterConfig& cluster, const KafkaConfig& kafka, Metrics& metrics,
               KafkaClientEvents& events);
  ~ClusterShare() override;
  ClusterShare(const ClusterShare&) = delete;
  ClusterShare& operator=(const ClusterShare&) = delete;

  /// How many of the newest messages of each partition of the alerts and decisions topics a
  /// member reads at start, to know what was published before it came.
  static constexpr std::int64_t kTopicHistory = 20'000;
  /// A record of the state topic is stored within this, or refused (librdkafka's
  /// message.timeout.ms for them).
  static constexpr int kStateWriteTimeoutMs = 5000;

  /// Joins the group kafka.group_id on the state topic as `member` (static membership), and
  /// starts reading the alerts and decisions topics, with `common` (the properties the daemon's
  /// Kafka clients share). False with `error` set when a consumer cannot be made or a topic does
  /// not exist.
  bool start(const std::map<std::string, std::string>& common, const std::string& member,
             std::string& error);
  /// Serves the group (rebalances) and reads what was published since; the event loop, each
  /// round. Nothing of the state topic is fetched: its partitions are only owned.
  void poll();
  /// Reads the alerts, decisions and state topics to their ends as they are now, for at most
  /// `timeout` (before a takeover; at start, the state). False when they could not be read to
  /// their ends in time.
  bool catch_up(std::chrono::milliseconds timeout);

  /// Applies a record of the state topic (key, value; `starting`: read before the member's first
  /// event, the state it joins). Called from poll(), catch_up() and write_state().
  using StateHandler = std::function<void(std::string_view key, std::string_view value, bool starting)>;
  void set_state_handler(StateHandler handler) { on_state_ = std::move(handler); }
  /// Reads the state topic whole (at start, before the first event): false when not within
  /// `timeout`.
  bool load_state(std::chrono::milliseconds timeout);
  /// Whether the state topic is being read at start (load_state): what is applied then was acted
  /// on when it was made.
  bool loading() const { return loading_; }
  /// Stores a record on the state topic (waiting for the brokers' acknowledgement, at most
  /// kStateWriteTimeoutMs, after which it is failed for good) and reads the topic up to it,
  /// applying what comes before it and it, within `timeout` more. False with `error` when it was
  /// not stored, may have been stored (the error says so), or was not read back in time (it is
  /// stored: it applies when read).
  bool write_state(const std::string& key, const std::string& value, std::chrono::milliseconds timeout,
                   std::string& error);
  /// Leaves the group (a static member keeps its partitions for session.timeout.ms) and destroys
  /// the consumers.
  void close();

  const std::string& member() const { return member_; }
  std::int32_t partitions() const { return partitions_; }
  std::int32_t partition_of(std::string_view key) const { return key_partition(key, partitions_); }
  /// Whether this member publishes for key: its partition is assigned to this member and taken
  /// over (activate).
  bool owns(std::string_view key) const { return owned_.count(partition_of(key)) > 0; }
  std::size_t owned_count() const { return owned_.size(); }
  /// Partitions assigned since the last call: each a takeover to carry out, after which they are
  /// activated. Until then what is made for them is held, as for another member's.
  std::vector<std::int32_t> take_gained();
  /// The takeover of these partitions is done (what was held for them released): this member
  /// publishes for them from now on (those still assigned).
  void activate(const std::vector<std::int32_t>& partitions);

  /// Keeps h until it is seen published or its partition is taken over (and at most
  /// cluster.standby_max, the oldest dropped); not when it was published already.
  void hold(Held h);
  /// What is held for these partitions, in the order it was made; no longer held.
  std::vector<Held> release(const std::vector<std::int32_t>& partitions);
  std::size_t held() const { return held_.size(); }

  /// An id seen on the alerts or decisions topic: what is held under it goes.
  void seen_published(std::string_view id);
  /// Whether it was seen on the topics (the newest ids, several times cluster.standby_max).
  bool published_before(const std::string& id) const { return published_.count(id) > 0; }

  /// Into the cluster metrics (the event loop).
  void sync_metrics();

 private:
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override;
  void dr_cb(RdKafka::Message& m) override;  // the state producer's
  bool start_reader(const std::map<std::string, std::string>& common, std::string& error);
  void read_published(int max_messages);
  void on_message(const RdKafka::Message& m);
  // Reads until the reader's position in the state topic's `partition` is past `offset`.
  bool read_state_to(std::int32_t partition, std::int64_t offset, std::chrono::steady_clock::time_point deadline);

  const ClusterConfig& config_;
  const KafkaConfig& kafka_;
  Metrics& metrics_;
  KafkaClientEvents& events_;
  std::unique_ptr<DetachableEventCb> consumer_events_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::string member_;
  bool cooperative_sticky_ = false;
  bool ever_assigned_ = false;
  std::int32_t partitions_ = 1;
  std::set<std::int32_t> owned_;    // assigned and taken over
  std::set<std::int32_t> pending_;  // assigned, takeover not done yet
  std::vector<std::int32_t> gained_;
  std::unique_ptr<RdKafka::KafkaConsumer> reader_;  // the alerts, decisions and state topics, no group
  std::unique_ptr<RdKafka::Producer> state_producer_;  // records of the state topic, acks=all
  StateHandler on_state_;
  bool loading_ = false;
  // Outcomes of state records in flight, by the number write_state gave them (their opaque): one
  // that write_state stopped waiting for is forgotten, and its report then ignored.
  struct Delivery {
    bool done = false;
    RdKafka::ErrorCode err = RdKafka::ERR_NO_ERROR;
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    bool possibly_stored = false;  // failed, but the broker may have written it (idempotence)
  };
  std::map<std::uint64_t, Delivery> deliveries_;
  std::uint64_t next_write_ = 1;
  std::list<Held> held_;  // in the order made
  std::unordered_map<std::string, std::list<Held>::iterator> held_by_id_;
  std::array<std::size_t, 2> held_count_{};
  std::unordered_set<std::string> published_;
  std::deque<std::string> published_order_;  // oldest first, to bound published_
};

}  // namespace portalwatch
