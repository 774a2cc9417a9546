// What librdkafka tells us about the cluster's health, reduced to metrics and log lines: its
// error callback's codes mapped to a small fixed set of kinds, and its statistics JSON
// (`statistics.interval.ms`) read for broker connection states, round-trip times and partition
// leaders. No Kafka handle here: strings in, plain values out, so it is unit-tested on its own.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portalwatch {

/// The kind of a librdkafka error (a metric label; a small fixed set).
enum class KafkaErrorKind : std::uint8_t {
  kTransport,       ///< a connection failed or was closed (ERR__TRANSPORT)
  kAllBrokersDown,  ///< no broker connection left (ERR__ALL_BROKERS_DOWN)
  kTimedOut,        ///< a request or message timed out
  kResolve,         ///< a broker address did not resolve
  kAuth,            ///< authentication, TLS or authorization
  kOther,
  kCount
};
std::string_view to_string(KafkaErrorKind k);
/// Maps an RdKafka::ErrorCode / rd_kafka_resp_err_t value to its kind.
KafkaErrorKind classify_kafka_error(int code);

/// One statistics report of one client, reduced to what we watch.
struct KafkaStatsReport {
  struct Broker {
    std::string name;  ///< "host:port/nodeid"
    std::int32_t node_id = -1;
    std::string state;  ///< "UP", "DOWN", "CONNECT", "INIT"...
    double rtt_avg_seconds = 0;  ///< average round-trip time in the last interval (0: no request)
  };
  std::string client_type;  ///< "consumer" or "producer"
  std::vector<Broker> brokers;  ///< real brokers only (no bootstrap or logical coordinator entries)
  std::map<std::pair<std::string, std::int32_t>, std::int32_t> leaders;  ///< (topic, partition) -> leader node
};
/// Parses librdkafka's statistics JSON; nullopt when it is not what librdkafka writes.
std::optional<KafkaStatsReport> parse_kafka_stats(std::string_view json);

/// Follows one client's reports and says what changed since the previous one.
class KafkaHealth {
 public:
  /// Brokers are called slow when their average round-trip time reaches this (it includes the
  /// time a fetch may wait on the broker, fetch.wait.max.ms), and fast again below half of it.
  explicit KafkaHealth(double slow_rtt_seconds = 1.0) : slow_rtt_(slow_rtt_seconds) {}
  /// Takes a report; returns the changes worth a warning (a broker lost or back, brokers slow or
  /// fast again, a leader moved).
  std::vector<std::string> update(const KafkaStatsReport& r);
  int brokers_up() const { return brokers_up_; }
  /// The highest average round-trip time over the brokers, in the last report, in seconds.
  double max_rtt_seconds() const { return max_rtt_; }
  /// Partition leader moves seen since start-up.
  std::uint64_t leader_changes() const { return leader_changes_; }

 private:
  enum class Seen : std::uint8_t { kNeverUp, kUp, kLost };
  std::map<std::string, Seen> seen_;  ///< broker name -> its connection as last reported
  std::map<std::pair<std::string, std::int32_t>, std::int32_t> leaders_;
  double slow_rtt_;
  bool slow_ = false;
  int brokers_up_ = 0;
  double max_rtt_ = 0;
  std::uint64_t leader_changes_ = 0;
};

}  // namespace portalwatch
