// The embedded Kafka broker: librdkafka's mock cluster, which speaks the real Kafka protocol over
// TCP on 127.0.0.1. For the demo, for tests and for trying portalwatch with kcat. Production
// points portalwatch at a real cluster; nothing else in the daemon knows this exists.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace portalwatch {

class EmbeddedBroker {
 public:
  /// Starts a cluster of `brokers` brokers. Returns nullptr and sets error on failure.
  static std::unique_ptr<EmbeddedBroker> start(int brokers, std::string& error);
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  /// "127.0.0.1:PORT[,...]" for bootstrap.servers.
  const std::string& bootstrap() const { return bootstrap_; }
  bool create_topic(const std::string& name, int partitions, std::string& error);
  /// The mock cluster, for fault injection in tests (rdkafka_mock.h).
  rd_kafka_mock_cluster_s* cluster() const { return cluster_; }

  // ---- fault injection, for tests (the daemon never calls these) ------------------------------
  /// Kafka protocol request kinds that faults are injected into (their API keys).
  enum class Api : std::int16_t { kProduce = 0, kFetch = 1, kListOffsets = 2, kMetadata = 3, kOffsetCommit = 8,
                                  kOffsetFetch = 9, kFindCoordinator = 10, kJoinGroup = 11, kHeartbeat = 12,
                                  kSyncGroup = 14 };
  /// Broker `id` (1..brokers) closes its connections and refuses new ones; up again accepts them.
  /// Its partitions keep it as their leader (nothing moves by itself).
  bool set_broker_down(int id, bool down);
  /// Every answer of broker `id` is delayed by this much (0: none).
  bool set_broker_rtt(int id, int rtt_ms);
  /// The next requests of this kind, on any broker, fail with these Kafka error codes, in order.
  void push_request_errors(Api api, const std::vector<int>& errors);
  /// Moves a partition's leadership to broker `id`.
  bool set_partition_leader(const std::string& topic, int partition, int id);
  /// Makes broker `id` the coordinator of consumer group `group`.
  bool set_group_coordinator(const std::string& group, int id);

 private:
  EmbeddedBroker() = default;
  rd_kafka_s* handle_ = nullptr;
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  std::string bootstrap_;
};

}  // namespace portalwatch
