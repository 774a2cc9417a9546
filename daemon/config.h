// The daemon's configuration: one YAML file, validated whole, every error reported at once with
// file, line, column and key path. Unknown keys are errors.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/hooks_config.h"
#include "daemon/control_config.h"
#include "detectors/engine.h"
#include "detectors/policy.h"

namespace portalwatch {

struct KafkaConfig {
  std::string bootstrap_servers = "127.0.0.1:9092";
  std::string group_id = "portalwatch";
  /// Static group membership (KIP-345, brokers 2.3 and later): a member that restarts within
  /// session.timeout.ms takes its partitions back without a rebalance of the whole group. "auto":
  /// the host name; "": none (dynamic membership: brokers older than 2.3, or several members on
  /// one host without ids of their own).
  std::string group_instance_id = "auto";
  std::vector<std::string> topics = {"portal-events"};
  std::string alerts_topic = "portalwatch-alerts";  ///< empty: findings only logged
  std::string decisions_topic = "portalwatch-decisions";
  std::string dead_letter_topic;  ///< empty: rejected messages not copied
  int commit_interval_ms = 1000;
  int poll_timeout_ms = 100;
  /// Partitions are read in event-time order (PartitionMerge): one with nothing fetched yet, whose
  /// next event may be older than the others', holds them back for at most this long in a row.
  int max_partition_wait_ms = 2000;
  /// MiB of messages all partitions hold together while they wait for their turn in that order
  /// (PartitionFeeds): a partition over its share (this over the partitions assigned, at least
  /// 64 KiB) is paused.
  int buffer_mb = 256;
  /// How often portalwatch_consumer_group_lag_messages is measured (the whole group's lag, from
  /// its committed offsets; GroupLagProbe); 0: not measured.
  int group_lag_interval_ms = 15000;
  /// Passed to librdkafka unchanged (security.protocol, sasl.*, ssl.*,
  /// partition.assignment.strategy…).
  std::map<std::string, std::string> properties;
};

struct MetricsConfig {
  bool enabled = true;
  std::string listen = "127.0.0.1:9741";
};

struct LogConfig {
  std::string level = "info";            ///< trace, debug, info, warn, error
  std::string format = "text";           ///< text or json
  int reject_log_interval_seconds = 10;  ///< at most one line per reason per interval
};

/// The daemon's durable state (RocksDB): per-account profiles, the consumer positions they
/// include, recently published findings (so a restart does not fire them again) and findings not
/// yet confirmed delivered.
struct StateConfig {
  /// RocksDB directory; empty: state kept in memory only (lost on restart).
  std::string path;
  std::size_t block_cache_mib = 64;
  /// After a restart, events of this last stretch of event time are read again to rebuild the
  /// detectors' windows (without changing profiles or publishing findings).
  TimeMs warmup_ms = 60 * kMinuteMs;
};

/// SIGTERM: how long the daemon may take to finish (hooks in progress, deliveries, the offset
/// commit). The unit's TimeoutStopSec must be longer.
struct ShutdownConfig {
  TimeMs timeout_ms = 20 * kSecondMs;
};

struct ProfilesConfig {
  std::size_t cache_accounts = 100'000;  ///< profiles held in memory at once (with a state store)
};

struct GeoIpConfig {
  /// MaxMind-format city databases (GeoLite2-City's nested schema or DB-IP's flat one), tried in
  /// order for each address until one has a record; IPv4 and IPv6 may be separate files.
  std::vector<std::string> city_databases;
  /// MaxMind-format ASN databases (GeoLite2-ASN, DB-IP ASN), likewise.
  std::vector<std::string> asn_databases;
  bool enabled() const { return !city_databases.empty() || !asn_databases.empty(); }
};

/// Several daemons watching one portal (daemon/cluster.h): each reads every event and detects
/// everything; a finding or decision is published, and its hooks run, by the member that owns its
/// key's partition of the state topic.
struct ClusterConfig {
  bool enabled = false;
  /// Its partitions are what the members share out (the group kafka.group_id assigns them);
  /// created by the operator (README: running several members).
  std::string state_topic = "portalwatch-state";
  /// Findings and decisions another member owns are held (at most this many, the oldest dropped)
  /// until seen published, to be published by this member should it take their partition over
  /// first.
  std::size_t standby_max = 100'000;
};

/// What happens to decisions besides the decisions topic.
struct DecisionsConfig {
  bool dry_run = false;  ///< every policy decides, marked dry_run; no hook runs
  std::string log;       ///< append every decision here as a JSON line; empty: none
};

struct Config {
  std::string source;  ///< file path, or "<built-in default>"
  std::string text;    ///< the YAML it was read from (build_detectors_again)
  EngineOptions engine;
  StateConfig state;
  ProfilesConfig profiles;
  GeoIpConfig geoip;
  KafkaConfig kafka;
  ClusterConfig cluster;
  MetricsConfig metrics;
  LogConfig log;
  ShutdownConfig shutdown;
  ControlConfig control;
  std::vector<DetectorInstance> detectors;
  DecisionsConfig decisions;
  std::vector<PolicyConfig> policies;
  std::vector<HookConfig> hooks;  ///< lockdown hooks (daemon/hooks.h runs them)
};

/// The detector instances of `config` built again from its text: the same names and settings, with
/// nothing counted yet (for Engine::restart). Empty when there is no text (a Config put together
/// in code) or it no longer builds.
std::vector<DetectorInstance> build_detectors_again(const Config& config);

/// The text of config/portalwatch.yaml as shipped, compiled into the executables.
std::string_view default_config_text();

struct ConfigResult {
  std::optional<Config> config;  ///< set when there were no errors
  std::string errors;            ///< formatted diagnostics (empty when ok)
};

/// Parses and validates configuration text; source names it in messages.
ConfigResult load_config_text(std::string_view text, const std::string& source);
/// Reads and validates a file. An unreadable file is reported as an error, not thrown.
ConfigResult load_config_file(const std::string& path);
/// The file if given, else the built-in default.
ConfigResult load_config(const std::optional<std::string>& path);

}  // namespace portalwatch
