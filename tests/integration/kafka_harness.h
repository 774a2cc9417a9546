// Helpers for tests against the embedded broker: produce, consume, run the daemon in a thread.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "daemon/config.h"
#include "daemon/embedded_broker.h"
#include "daemon/kafka_daemon.h"
#include "daemon/system_clock.h"
#include "detectors/time.h"

namespace portalwatch::test {

inline std::string login_event(TimeMs t, const std::string& user, bool success, const std::string& ip,
                               const std::string& reason = "bad_password") {
  std::string j = "{\"@timestamp\":\"" + format_rfc3339(t) + "\",\"event\":{\"action\":\"login\",\"outcome\":\"" +
                  (success ? "success" : "failure") + "\"";
  if (!success) j += ",\"reason\":\"" + reason + "\"";
  j += "},\"user\":{\"name\":\"" + user + "\"},\"source\":{\"ip\":\"" + ip + "\"}}";
  return j;
}

/// The user name of a test event ("user":{"name":"..."}), the message key: as in production, one
/// account's events go to one partition and stay in order.
inline std::string user_key(const std::string& message) {
  const std::string marker = "\"user\":{\"name\":\"";
  const auto at = message.find(marker);
  if (at == std::string::npos) return {};
  const auto from = at + marker.size();
  const auto to = message.find('"', from);
  return to == std::string::npos ? std::string() : message.substr(from, to - from);
}

/// Produces every message, keyed by user_key(). `properties`: librdkafka producer settings.
inline void produce_all(const std::string& bootstrap, const std::string& topic, const std::vector<std::string>& messages,
                        const std::map<std::string, std::string>& properties = {}) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  for (const auto& [k, v] : properties) REQUIRE_MESSAGE(conf->set(k, v, err) == RdKafka::Conf::CONF_OK, k << ": " << err);
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
  REQUIRE(p);
  for (const auto& m : messages) {
    const std::string key = user_key(m);
    while (p->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(m.data()),
                      m.size(), key.empty() ? nullptr : key.data(), key.size(), 0, nullptr, nullptr) ==
           RdKafka::ERR__QUEUE_FULL)
      p->poll(10);
  }
  REQUIRE(p->flush(10000) == RdKafka::ERR_NO_ERROR);
}

/// Reads until `count` messages arrived or the timeout passed.
inline std::vector<std::string> consume_some(const std::string& bootstrap, const std::string& topic, std::size_t count,
                                             std::chrono::seconds timeout) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", "test-reader-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()), err);
  conf->set("auto.offset.reset", "earliest", err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  REQUIRE(c);
  c->subscribe({topic});
  std::vector<std::string> out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(c->consume(100));
    if (m->err() == RdKafka::ERR_NO_ERROR) out.emplace_back(static_cast<const char*>(m->payload()), m->len());
  }
  c->close();
  return out;
}

/// High watermarks of a topic (what the cluster holds, from offset 0), summed over its partitions.
inline std::int64_t high_watermark_total(const std::string& bootstrap, const std::string& topic, int partitions) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", "test-watermarks", err);  // never joins
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  REQUIRE(c);
  std::int64_t total = 0;
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = 0, high = 0;
    REQUIRE(c->query_watermark_offsets(topic, p, &low, &high, 10000) == RdKafka::ERR_NO_ERROR);
    total += high;
  }
  c->close();
  return total;
}

/// Low and high watermarks of each partition of a topic. A low watermark above 0 means the cluster
/// dropped the partition's oldest messages (the embedded broker keeps about 5 MiB a partition).
inline std::vector<std::pair<std::int64_t, std::int64_t>> partition_watermarks(const std::string& bootstrap,
                                                                               const std::string& topic,
                                                                               int partitions) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", "test-watermarks", err);  // never joins
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  REQUIRE(c);
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = 0, high = 0;
    REQUIRE(c->query_watermark_offsets(topic, p, &low, &high, 10000) == RdKafka::ERR_NO_ERROR);
    out.emplace_back(low, high);
  }
  c->close();
  return out;
}

/// Committed offsets of a group, each partition's (-1 where the group has committed none).
inline std::vector<std::int64_t> committed_offsets(const std::string& bootstrap, const std::string& group,
                                                   const std::string& topic, int partitions) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", group, err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  REQUIRE(c);
  std::vector<RdKafka::TopicPartition*> parts;
  for (int i = 0; i < partitions; ++i) parts.push_back(RdKafka::TopicPartition::create(topic, i));
  REQUIRE(c->committed(parts, 10000) == RdKafka::ERR_NO_ERROR);
  std::vector<std::int64_t> out;
  for (auto* p : parts) out.push_back(p->offset() >= 0 ? p->offset() : -1);
  RdKafka::TopicPartition::destroy(parts);
  c->close();
  return out;
}

/// Committed offsets of a group, summed over the topic's partitions.
inline std::int64_t committed_total(const std::string& bootstrap, const std::string& group, const std::string& topic,
                                    int partitions) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", group, err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  REQUIRE(c);
  std::vector<RdKafka::TopicPartition*> parts;
  for (int i = 0; i < partitions; ++i) parts.push_back(RdKafka::TopicPartition::create(topic, i));
  REQUIRE(c->committed(parts, 10000) == RdKafka::ERR_NO_ERROR);
  std::int64_t total = 0;
  for (auto* p : parts)
    if (p->offset() >= 0) total += p->offset();
  RdKafka::TopicPartition::destroy(parts);
  c->close();
  return total;
}

/// A configuration for the embedded broker: default detectors, no metrics endpoint.
inline Config test_config(const std::string& bootstrap, const std::string& topic, const std::string& group) {
  ConfigResult r = load_config(std::nullopt);
  REQUIRE(r.config);
  Config c = std::move(*r.config);
  c.kafka.bootstrap_servers = bootstrap;
  c.kafka.topics = {topic};
  c.kafka.group_id = group;
  c.kafka.alerts_topic = "alerts";
  c.kafka.decisions_topic = "";
  c.kafka.commit_interval_ms = 200;
  c.metrics.enabled = false;
  c.control.socket = "";  // tests that want operator control give their own socket
  // A restarted member rejoins after the old one's session ends; keep that short in tests.
  c.kafka.properties["session.timeout.ms"] = "6000";
  c.kafka.properties["heartbeat.interval.ms"] = "500";
  c.log.level = getenv("PW_TEST_LOG") ? getenv("PW_TEST_LOG") : "warn";
  return c;
}

/// Runs the daemon in a thread; records every processed (partition, offset). wall_clock, when
/// given, must outlive it.
class DaemonThread {
 public:
  explicit DaemonThread(Config config, const Clock* wall_clock = nullptr) {
    DaemonOptions o;
    o.wall_clock = wall_clock;
    o.on_processed = [this](const std::string&, std::int32_t partition, std::int64_t offset) {
      std::lock_guard lock(mu_);
      processed_.emplace_back(partition, offset);
      cv_.notify_all();
    };
    thread_ = std::thread([this, o, c = std::move(config)]() mutable { rc_ = run_daemon(std::move(c), o, stop_); });
  }
  ~DaemonThread() { stop(); }

  /// Waits until at least n messages were processed; false on timeout.
  bool wait_processed(std::size_t n, std::chrono::seconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return processed_.size() >= n; });
  }
  int stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    return rc_;
  }
  std::vector<std::pair<std::int32_t, std::int64_t>> processed() {
    std::lock_guard lock(mu_);
    return processed_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::int32_t, std::int64_t>> processed_;
  int rc_ = -1;
};

}  // namespace portalwatch::test
