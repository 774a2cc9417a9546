// What the daemon's two librdkafka clients (consumer and producer) share: building their
// configuration, and their event callback (librdkafka's errors, log and statistics).
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "daemon/config.h"
#include "daemon/kafka_stats.h"
#include "daemon/log.h"
#include "daemon/metrics.h"

namespace portalwatch {

/// Builds a librdkafka configuration; a property librdkafka refuses is a start-up error naming
/// it (in `error`, and nullptr is returned).
std::unique_ptr<RdKafka::Conf> make_kafka_conf(const std::map<std::string, std::string>& props,
                                               std::string& error);

/// The librdkafka properties both clients start from: kafka.properties, the bootstrap servers,
/// and the client id and statistics interval unless configured.
std::map<std::string, std::string> kafka_common_properties(const KafkaConfig& kafka);

/// kafka.group_instance_id: "auto" is the host name (characters Kafka does not take become '-').
std::string group_instance_id(const std::string& configured);

/// Both clients' event callback: librdkafka's errors (counted by kind, logged within limits), its
/// log lines, and its statistics (broker health metrics; a broker lost or back, brokers slow or
/// fast again, a leader moved are logged as warnings while they last).
class KafkaClientEvents final : public RdKafka::EventCb {
 public:
  /// metrics must outlive it.
  explicit KafkaClientEvents(Metrics& metrics) : metrics_(metrics) {}
  /// Round trips up to this long are not slowness for that client (a consumer's fetch may wait
  /// on the broker for fetch.wait.max.ms).
  void set_slow_rtt(KafkaClient client, double seconds) {
    health_[static_cast<std::size_t>(client)] = KafkaHealth(seconds);
  }
  /// Errors and statistics come on the thread that polls the client (the event loop); log lines
  /// also on librdkafka's own threads.
  void event_cb(RdKafka::Event& event) override;

 private:
  void on_stats(const std::string& json);

  Metrics& metrics_;
  std::array<KafkaHealth, static_cast<std::size_t>(KafkaClient::kCount)> health_;
  LogLimiter<1> error_limiter_{std::chrono::seconds(10)};
};

/// An event callback that forwards to another until detached. librdkafka's own threads log
/// through a client's event callback, so a client kept beyond the daemon (a cooperative-sticky
/// consumer never assigned is kept to the end of the process) must not reach the daemon's any more.
class DetachableEventCb final : public RdKafka::EventCb {
 public:
  explicit DetachableEventCb(RdKafka::EventCb* target) : target_(target) {}
  void event_cb(RdKafka::Event& event) override {
    std::lock_guard lock(mu_);
    if (target_) target_->event_cb(event);
  }
  /// From now on events go nowhere.
  void detach() {
    std::lock_guard lock(mu_);
    target_ = nullptr;
  }

 private:
  std::mutex mu_;
  RdKafka::EventCb* target_;
};

/// Destroys a consumer (closed already). librdkafka before 2.3.0 (Debian bookworm has 2.0.2)
/// aborts when it destroys a cooperative-sticky consumer that never received an assignment (its
/// issue 4312): such a consumer is kept to the end of the process instead, its event callback
/// detached (and kept with it) so that it reaches its owner no more.
void release_kafka_consumer(std::unique_ptr<RdKafka::KafkaConsumer>& consumer,
                            std::unique_ptr<DetachableEventCb>& events, bool ever_assigned,
                            bool cooperative_sticky);

}  // namespace portalwatch
