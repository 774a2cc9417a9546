// Helpers for tests that run the real `portalwatchd run` as a process: a free port, a scrape of
// its /metrics, spawning it, reading a whole topic and a field of a finding.
#pragma once

#include <doctest/doctest.h>
#include <librdkafka/rdkafkacpp.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

extern char** environ;

namespace portalwatch::test {

inline int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

/// GET /metrics; empty when the daemon is not (yet) listening.
inline std::string scrape(int port) {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{2, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(s, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      for (ssize_t n; (n = recv(s, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(s);
  return out;
}

/// A series' value (name with its labels, as exposed: `x_total{kind="transport"}`), -1 if absent.
inline double metric(const std::string& text, const std::string& name) {
  const auto at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::atof(text.c_str() + at + name.size() + 2);
}

/// Starts `portalwatchd run --config config`, its stderr appended to `log`.
inline pid_t spawn_daemon(const std::string& config, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<std::string> args = {PORTALWATCHD_PATH, "run", "--config", config};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, PORTALWATCHD_PATH, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
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

/// Every message of a topic, up to its high watermarks when called.
inline std::vector<std::string> read_topic(const std::string& bootstrap, const std::string& topic, int partitions) {
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
  std::vector<std::string> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (remaining > 0 && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(c->consume(100));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    out.emplace_back(static_cast<const char*>(m->payload()), m->len());
    --remaining;
  }
  REQUIRE_MESSAGE(remaining == 0, remaining << " messages of " << topic << " not read");
  c->close();
  return out;
}

}  // namespace portalwatch::test
