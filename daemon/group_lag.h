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
  /// `consumer` (of the group; it need not be subscribed) must outlive the probe or its stop().
  /// `topics` as subscribed (a name starting with ^ is a regular expression, as in librdkafka);
  /// `from_latest`: the group starts a partition it never committed at its end
  /// (auto.offset.reset latest), so such a partition counts no lag.
  GroupLagProbe(RdKafka::KafkaConsumer& consumer, std::vector<std::string> topics,
                bool from_latest, prometheus::Gauge& lag, std::chrono::milliseconds interval);
  ~GroupLagProbe();
  GroupLagProbe(const GroupLagProbe&) = delete;
  GroupLagProbe& operator=(const GroupLagProbe&) = delete;

  /// Measures every interval on its own thread (the first measure at once) until stop(); the
  /// gauge reads NaN while the cluster cannot tell (no series value is better than a stale one).
  void start();
  /// Waits for a measure under way to give up (each request waits at most 2 s). Idempotent.
  void stop();

  /// One measure, on the calling thread: the group's messages not yet committed over every
  /// partition of the topics; nothing when the metadata, the committed offsets or a watermark
  /// could not be had. A partition the group never committed counts from its oldest retained
  /// message (none with from_latest).
  std::optional<std::int64_t> measure();

 private:
  void run();
  bool stopping();

  RdKafka::KafkaConsumer& consumer_;
  std::vector<std::string> topics_;
  prometheus::Gauge& lag_;
  bool from_latest_;
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool warned_ = false;
  std::thread thread_;
};

}  // namespace portalwatch
