// The embedded Kafka broker: librdkafka's mock cluster, which speaks the real Kafka protocol over
// TCP on 127.0.0.1. For the demo, for tests and for trying portalwatch with kcat. Production
// points portalwatch at a real cluster; nothing else in the daemon knows this exists.
#pragma once

#include <memory>
#include <string>

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

 private:
  EmbeddedBroker() = default;
  rd_kafka_s* handle_ = nullptr;
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  std::string bootstrap_;
};

}  // namespace portalwatch
