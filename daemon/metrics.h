// Prometheus metrics: every family built once at start-up, labels only from small fixed sets
// (reason, detector, severity, table, topic role, GeoIP database kind and result), never a user,
// IP or session.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "daemon/geoip.h"
#include "daemon/kafka_stats.h"
#include "detectors/engine.h"
#include "detectors/policy.h"

namespace portalwatch {

/// Which of the daemon's two librdkafka clients; a label value.
enum class KafkaClient : std::uint8_t { kConsumer, kProducer, kCount };

/// Which Kafka topic a produce went to; a label value.
enum class TopicRole : std::uint8_t { kAlerts, kDecisions, kDeadLetter, kCount };

class Metrics {
 private:
  // First, so the registry exists before the public series below are built in it.
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();

 public:
  /// Builds every family and series for this engine's detectors (and its GeoIP enrichment, when
  /// given; it must outlive this).
  explicit Metrics(const Engine& engine, const GeoIp* geoip = nullptr);
  ~Metrics();

  /// Starts the HTTP endpoint (/metrics) on host:port. Throws std::runtime_error if it cannot bind.
  void serve(const std::string& listen);
  /// The port actually bound (useful with port 0), or 0 when not serving.
  int port() const;
  prometheus::Registry& registry() { return *registry_; }

  /// Copies the engine's counters and state sizes (as deltas, so counters stay monotonic). Cheap;
  /// call a few times a second from the thread that owns the engine.
  void sync(const Engine& engine);
  /// After Engine::reconfigure (a reload; call sync before it): series for the new set of
  /// detector instances. Counters go on from their values; instances no longer configured lose
  /// their table series.
  void rebind_detectors(const Engine& engine);
  /// A decision made (labels: action, state, scope type, origin policy|operator — never the
  /// scope's value) and the lockdowns now in force, by scope type.
  void count_decision(const Decision& d, const std::map<std::string, Lockdown>& active);
  /// The lockdowns in force, by scope type (also after a restart, before any new decision).
  void set_lockdowns(const std::map<std::string, Lockdown>& active);

  prometheus::Histogram& processing_latency;  ///< seconds to decode and detect one event
  prometheus::Gauge& consumer_lag;            ///< messages behind the partitions' high watermarks
  prometheus::Gauge& group_lag;  ///< the whole group's messages not committed (GroupLagProbe)
  prometheus::Gauge& group_lag_unmeasured;  ///< partitions left out of group_lag (cluster refused)
  prometheus::Gauge& assigned_partitions;
  prometheus::Gauge& input_held_messages;  ///< fetched, waiting for their turn in the event-time merge
  prometheus::Counter& partition_waits_expired;  ///< a partition held the others back for max_partition_wait_ms
  prometheus::Gauge& input_buffered_bytes;  ///< keys and payloads held for the merge (kafka.buffer_mb)
  prometheus::Counter& partition_pauses;    ///< a partition paused because its buffer was over its share
  prometheus::Gauge& paused_partitions;     ///< assigned partitions paused now (over their share)
  prometheus::Gauge& last_event_time;         ///< event-time watermark, Unix seconds
  prometheus::Counter& commits;
  prometheus::Counter& commit_failures;
  prometheus::Counter& rebalances;
  prometheus::Counter& consume_errors;
  prometheus::Counter& state_write_failures;
  prometheus::Counter& events_warmup;  ///< already processed, read again after a restart
  prometheus::Counter& detection_restarts;  ///< detection started again for partitions assigned late
  /// Findings not published: [0] raised again by an event already included in the state store
  /// (replayed after a crash), [1] repeating a finding published before (after a restart).
  std::array<prometheus::Counter*, 2> findings_suppressed{};
  std::array<prometheus::Counter*, static_cast<size_t>(TopicRole::kCount)> produced{};
  /// librdkafka's error callback, by kind (transport, all_brokers_down, timed_out...).
  std::array<prometheus::Counter*, static_cast<size_t>(KafkaErrorKind::kCount)> kafka_errors{};
  /// From each client's statistics: brokers connected (state UP), the highest average round-trip
  /// time among them, partition leader moves seen.
  std::array<prometheus::Gauge*, static_cast<size_t>(KafkaClient::kCount)> kafka_brokers_up{};
  std::array<prometheus::Gauge*, static_cast<size_t>(KafkaClient::kCount)> kafka_broker_rtt{};
  std::array<prometheus::Counter*, static_cast<size_t>(KafkaClient::kCount)> kafka_leader_changes{};
  std::array<prometheus::Counter*, static_cast<size_t>(TopicRole::kCount)> produce_failures{};
  /// A cluster (daemon/cluster.h): the state topic's partitions, those this member owns; by kind
  /// [0] finding, [1] decision: held for another member, published at a takeover, not published
  /// because the previous owner had; held ones dropped (too many).
  prometheus::Gauge& cluster_partitions;
  prometheus::Gauge& cluster_owned_partitions;
  std::array<prometheus::Gauge*, 2> cluster_held{};
  std::array<prometheus::Counter*, 2> cluster_taken_over{};
  std::array<prometheus::Counter*, 2> cluster_published_before{};
  prometheus::Counter& cluster_held_dropped;

 private:
  struct TableSeries {
    prometheus::Gauge* keys;
    prometheus::Gauge* capacity;
    prometheus::Counter* evictions;
    prometheus::Counter* expirations;
    std::uint64_t last_evictions = 0;
    std::uint64_t last_expirations = 0;
    std::string table;
  };

  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Counter* received_;
  std::array<prometheus::Counter*, kRejectReasonCount> rejected_{};
  prometheus::Counter* late_clamped_;
  prometheus::Counter* future_clamped_;
  std::array<prometheus::Counter*, kFieldCount> ignored_fields_{};
  std::vector<std::array<prometheus::Counter*, kSeverityCount>> findings_;
  prometheus::Family<prometheus::Counter>* decisions_family_ = nullptr;
  std::array<prometheus::Gauge*, kScopeTypeCount> lockdowns_active_{};
  static void sync_table(TableSeries& series, const TableStats& stats);
  void bind_detectors(const Engine& engine);

  prometheus::Family<prometheus::Counter>* findings_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* keys_family_ = nullptr;
  prometheus::Family<prometheus::Gauge>* cap_family_ = nullptr;
  prometheus::Family<prometheus::Counter>* evict_family_ = nullptr;
  prometheus::Family<prometheus::Counter>* expire_family_ = nullptr;
  std::vector<std::string> bound_names_;  // detector instance of each tables_ entry

  const GeoIp* geoip_ = nullptr;
  std::array<std::array<prometheus::Counter*, kGeoLookupResultCount>, kGeoDatabaseKindCount> geoip_lookups_{};
  prometheus::Counter* geoip_cache_hits_ = nullptr;
  GeoIpStats last_geoip_{};

  std::vector<std::vector<TableSeries>> tables_;
  std::vector<TableSeries> engine_tables_;
  // Last values copied, to add deltas.
  EngineStats last_{};
  DecoderStats last_decoder_{};
  std::vector<DetectorCounts> last_findings_;
};

}  // namespace portalwatch
