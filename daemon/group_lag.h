// The consumer group's lag as a whole: over every partition of the subscribed topics, the high
// watermark less the group's committed offset, measured by any member on a thread of its own.
// portalwatch_consumer_lag_messages counts only what this member was given, so a member with no
// partition reads 0 while events wait for the group; this one does not (README, "Lag").
#pragma once

#include <librdkafka/rdkafkacpp.h>
#include <prometheus/gauge.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace portalwatch {

class GroupLagProbe {
 public:
  struct Options {
    /// As subscribed: a name starting with ^ is a POSIX extended regular expression, as in
    /// librdkafka.
    std::vector<std::string> topics;
    /// librdkafka's topic.blacklist (comma-separated regular expressions): topics not counted.
    std::string blacklist;
    /// The group starts a partition it never committed at its end (auto.offset.reset latest):
    /// such a partition counts no lag (otherwise from its oldest retained message).
    bool from_latest = false;
    std::chrono::milliseconds interval{15000};
  };
  struct Measure {
    std::int64_t lag = 0;           ///< over the partitions that could be measured
    std::size_t unmeasured = 0;     ///< partitions whose offset or watermarks the cluster refused
  };

  /// `consumer` (of the group; it need not be subscribed) must outlive the probe or its stop().
  /// `lag` and `unmeasured` read NaN while a measure fails as a whole.
  GroupLagProbe(RdKafka::KafkaConsumer& consumer, Options options, prometheus::Gauge& lag,
                prometheus::Gauge& unmeasured);
  ~GroupLagProbe();
  GroupLagProbe(const GroupLagProbe&) = delete;
  GroupLagProbe& operator=(const GroupLagProbe&) = delete;

  /// Measures every interval on its own thread (the first at once) until stop().
  void start();
  /// Asks the thread to stop without waiting: no request to the cluster starts after this (one
  /// under way ends within its 2 s timeout). For the start of a shutdown.
  void request_stop();
  /// request_stop(), then waits for the thread. Idempotent.
  void stop();

  /// One measure, on the calling thread; nothing (with `error` set) when the topics' metadata or
  /// the group's committed offsets could not be had, or stop was requested.
  std::optional<Measure> measure(std::string& error);

 private:
  void run();
  bool stopping();

  RdKafka::KafkaConsumer& consumer_;
  Options options_;
  prometheus::Gauge& lag_;
  prometheus::Gauge& unmeasured_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace portalwatch
