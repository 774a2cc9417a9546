// Helpers for tests that run the real `portalwatchd run` as a process: a free port, a scrape of
// its /metrics, spawning it, reading a whole topic and a field of a finding.
#pragma once

#include <doctest/doctest.h>
#include <librdkafka/rdkafkacpp.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/scrape.h"
#include "tests/integration/spawn_daemon.h"

namespace portalwatch::test {

/// Starts `portalwatchd run --config config`, its stderr appended to `log`.
inline pid_t spawn_daemon(const std::string& config, const std::string& log) {
  const pid_t pid = spawn_daemon_at(PORTALWATCHD_PATH, config, log);
  REQUIRE(pid > 0);
  return pid;
}

/// A top-level or nested field of a finding or decision, by key (the first occurrence).
inline std::string field(const std::string& json, const std::string& key) {
  const std::string marker = "\"" + key + "\":";
  auto at = json.find(marker);
  if (at == std::string::npos) return {};
  at += marker.size();
  if (json[at] == '"') {
    const auto end = json.find('"', at + 1);
    return json.substr(at + 1, end - at - 1);
  }
  const auto end = json.find_first_of(",}", at);
  return json.substr(at, end - at);
}

/// A configuration for `portalwatchd run` in these tests: the brute_force detector (medium at 10
/// failures), a policy that locks the account down on it, an exec hook that appends every "on"
/// decision to `hook_file`, a state store, metrics on `metrics_port`, commits every 200 ms.
/// `kafka_properties`: YAML lines for kafka.properties, indented by four spaces.
/// `instance`: kafka.group_instance_id (members of one group on this host need their own).
inline std::string test_daemon_yaml(const std::string& bootstrap, const std::string& group, const std::string& state,
                                    int metrics_port, const std::string& hook_file, const std::string& kafka_properties,
                                    const std::string& instance = "auto") {
  return "kafka:\n  bootstrap_servers: \"" + bootstrap + "\"\n  group_id: " + group +
         "\n  group_instance_id: \"" + instance + "\"" +
         "\n  topics: [events]\n  alerts_topic: alerts\n  decisions_topic: decisions\n"
         "  commit_interval_ms: 200\n  properties:\n" +
         kafka_properties + "state:\n  path: \"" + state + "\"\nmetrics:\n  listen: \"127.0.0.1:" +
         std::to_string(metrics_port) +
         "\"\ncontrol:\n  socket: \"\"\n"
         "detectors:\n  - type: brute_force\n    severity: {medium: 10, high: 30, critical: 100}\n"
         "policies:\n  - name: lock-brute-forced\n    when: {detectors: [brute_force], min_severity: medium}\n"
         "    scope: user\n    action: lockdown\n"
         "hooks:\n  - name: record\n    type: exec\n    on: {states: [on]}\n    argv: [/usr/bin/tee, -a, \"" +
         hook_file + "\"]\n";
}

struct TopicMessage {
  std::int32_t partition = 0;
  std::string key, value;
};

/// Every message of a topic, up to its high watermarks when called.
inline std::vector<TopicMessage> read_topic_messages(const std::string& bootstrap, const std::string& topic,
                                                     int partitions) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", "test-topic-reader", err);  // assign() only: never joins, never commits
  conf->set("enable.auto.commit", "false", err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  REQUIRE(c);
  std::vector<RdKafka::TopicPartition*> parts;
  std::int64_t remaining = 0;
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = 0, high = 0;
    REQUIRE(c->query_watermark_offsets(topic, p, &low, &high, 10000) == RdKafka::ERR_NO_ERROR);
    remaining += high - low;
    parts.push_back(RdKafka::TopicPartition::create(topic, p, low));
  }
  REQUIRE(c->assign(parts) == RdKafka::ERR_NO_ERROR);
  RdKafka::TopicPartition::destroy(parts);
  std::vector<TopicMessage> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (remaining > 0 && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(c->consume(100));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    out.push_back({m->partition(), m->key() ? *m->key() : std::string(),
                   std::string(static_cast<const char*>(m->payload()), m->len())});
    --remaining;
  }
  REQUIRE_MESSAGE(remaining == 0, remaining << " messages of " << topic << " not read");
  c->close();
  return out;
}

/// The values of every message of a topic.
inline std::vector<std::string> read_topic(const std::string& bootstrap, const std::string& topic, int partitions) {
  std::vector<std::string> out;
  for (auto& m : read_topic_messages(bootstrap, topic, partitions)) out.push_back(std::move(m.value));
  return out;
}

}  // namespace portalwatch::test
