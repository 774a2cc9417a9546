// Shared by the benchmarks that drive the embedded broker: a producer, a produce that waits on a
// full queue, a failed sign-in event, and a percentile summary.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "detectors/time.h"

namespace portalwatch::bench {

inline std::unique_ptr<RdKafka::Producer> producer(const std::string& bootstrap, const char* linger) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("linger.ms", linger, err);
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

inline void report(const char* what, const std::vector<double>& v) {
  if (v.empty()) {
    std::printf("  %-34s no samples\n", what);
    return;
  }
  std::printf("  %-34s p50 %7.1f ms   p99 %7.1f ms   max %7.1f ms   (%zu samples)\n", what, quantile(v, 0.5),
              quantile(v, 0.99), *std::max_element(v.begin(), v.end()), v.size());
}

}  // namespace portalwatch::bench
