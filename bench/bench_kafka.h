// Shared by the benchmarks that drive the embedded broker: a producer, a produce that waits on a
// full queue, a failed sign-in event, a percentile summary, and the real daemon as a process (its
// configuration from the shipped one, its start, its memory).
#pragma once

#include <librdkafka/rdkafkacpp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "daemon/embedded_broker.h"
#include "daemon/simulator.h"
#include "detectors/time.h"
#include "tests/integration/spawn_daemon.h"

namespace portalwatch::bench {

/// The embedded broker (one broker) with the topics the benchmarks use: "events" with this many
/// partitions, "alerts" and "decisions" with one; nullptr (the error printed) on failure.
inline std::unique_ptr<EmbeddedBroker> start_broker(int event_partitions) {
  std::string error;
  auto broker = EmbeddedBroker::start(1, error);
  if (broker)
    for (const auto& [topic, parts] : {std::pair<std::string, int>{"events", event_partitions}, {"alerts", 1}, {"decisions", 1}})
      if (!broker->create_topic(topic, parts, error)) broker.reset();
  if (!broker) std::fprintf(stderr, "%s\n", error.c_str());
  return broker;
}

/// A producer with this linger.ms; `delivered`, when given, hears of each message's delivery.
inline std::unique_ptr<RdKafka::Producer> producer(const std::string& bootstrap, const char* linger,
                                                   RdKafka::DeliveryReportCb* delivered = nullptr) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("linger.ms", linger, err);
  if (delivered) conf->set("dr_cb", delivered, err);
  return std::unique_ptr<RdKafka::Producer>(RdKafka::Producer::create(conf.get(), err));
}

inline void produce(RdKafka::Producer& p, const std::string& topic, const std::string& key, const std::string& value) {
  while (p.produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                   const_cast<char*>(value.data()), value.size(), key.data(), key.size(), 0, nullptr,
                   nullptr) == RdKafka::ERR__QUEUE_FULL)
    p.poll(1);
}

inline std::string failure(TimeMs t, const std::string& user, const std::string& ip) {
  return "{\"@timestamp\":\"" + format_rfc3339(t) + "\",\"event\":{\"action\":\"login\",\"outcome\":\"failure\","
         "\"reason\":\"bad_password\"},\"user\":{\"name\":\"" + user + "\"},\"source\":{\"ip\":\"" + ip + "\"}}";
}

inline double ms(std::chrono::steady_clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

/// The p-quantile (0..1) of v (sorted here); 0 when empty.
inline double quantile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

/// The median of v: the middle value, or the mean of the middle two; 0 when empty.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

inline void report(const char* what, const std::vector<double>& v) {
  if (v.empty()) {
    std::printf("  %-34s no samples\n", what);
    return;
  }
  std::printf("  %-34s p50 %7.1f ms   p99 %7.1f ms   max %7.1f ms   (%zu samples)\n", what, quantile(v, 0.5),
              quantile(v, 0.99), *std::max_element(v.begin(), v.end()), v.size());
}

/// A field of /proc/PID/status in MiB ("VmRSS:" now, "VmHWM:" the peak); -1 when unreadable.
inline double proc_status_mib(pid_t pid, const char* field = "VmRSS:") {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field, 0) == 0) return std::atof(line.c_str() + std::char_traits<char>::length(field)) / 1024.0;
  return -1;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The mean size of the events `options` makes (from the first 20,000 at most of `events`).
inline double mean_event_bytes(const sim::SimulatorOptions& options, std::uint64_t events) {
  sim::PortalSimulator sample(options);
  std::string line;
  std::uint64_t bytes = 0;
  const std::uint64_t n = std::max<std::uint64_t>(1, std::min<std::uint64_t>(events, 20000));
  for (std::uint64_t i = 0; i < n; ++i) bytes += (sample.next(line), line.size());
  return static_cast<double>(bytes) / static_cast<double>(n);
}

/// Partitions for about 3 MiB of `events` of `mean_bytes` each, at least 16: the embedded broker
/// keeps about 5 MiB per partition, counting record overhead too (about 80 bytes a message here),
/// and keys spread unevenly.
inline int partitions_for(std::uint64_t events, double mean_bytes) {
  return std::max(16, static_cast<int>(std::ceil(static_cast<double>(events) * (mean_bytes + 80) / (3 << 20))));
}

/// CPU seconds (user + system) of a process, or of one of its threads.
inline double cpu_seconds(pid_t pid, pid_t tid = 0) {
  std::ifstream in(tid ? "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/stat"
                       : "/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {  // field 3 is the state
    if (i == 14) utime = std::atof(field.c_str());
    if (i == 15) {
      stime = std::atof(field.c_str());
      break;
    }
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// The shipped configuration with top-level sections replaced (by name; bodies indented by two).
inline std::string config_with(const std::string& shipped, const std::map<std::string, std::string>& replace) {
  std::istringstream in(shipped);
  std::string out;
  bool skipping = false;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != ' ' && line[0] != '#' && line.find(':') != std::string::npos)
      skipping = replace.count(line.substr(0, line.find(':'))) > 0;
    if (!skipping) out += line + "\n";
  }
  for (const auto& [key, body] : replace) out += key + ":\n" + body;
  return out;
}

}  // namespace portalwatch::bench
