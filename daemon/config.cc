#include "daemon/config.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "daemon/geoip.h"
#include "daemon/hooks_config.h"
#include "detectors/config_node.h"

namespace portalwatch {

namespace {

void read_input(MapReader& root, EngineOptions& eo) {
  MapReader m(root.child("input"));
  eo.max_message_bytes = static_cast<std::size_t>(m.get_int(
      "max_message_bytes", static_cast<std::int64_t>(eo.max_message_bytes), 256, 64 << 20));
  const auto fields = m.child("fields");
  if (!fields.defined()) return;
  MapReader fm(fields);
  fm.accept_all_keys();
  if (!fields.is_map()) return;
  std::vector<std::string> names;
  for (size_t i = 0; i < kFieldCount; ++i) names.emplace_back(field_name(static_cast<Field>(i)));
  for (const auto& kv : fields.yaml()) {
    const std::string key = kv.first.Scalar();
    const ConfigNode value(kv.second, fields.path() + "." + key, fields.diags());
    const auto field = FieldMap::field_by_name(key);
    if (!field) {
      std::string msg = "\"" + key + "\" is not a field of the event contract";
      if (auto near = closest_word(key, names)) msg += " (did you mean \"" + *near + "\"?)";
      fields.diags().error(kv.first.Mark(), value.path(), msg);
      continue;
    }
    const auto path = value.as_string();
    if (path && !eo.fields.set(*field, *path))
      value.error("\"" + *path + "\" is not a valid dotted path");
  }
}

void read_time(MapReader& root, TimeOptions& t) {
  MapReader m(root.child("time"));
  t.allowed_lateness_ms =
      m.get_int("allowed_lateness_seconds", t.allowed_lateness_ms / kSecondMs, 0, 86400) *
      kSecondMs;
  t.max_future_ms =
      m.get_int("max_future_seconds", t.max_future_ms / kSecondMs, 1, 86400) * kSecondMs;
}

void read_kafka(MapReader& root, KafkaConfig& k) {
  MapReader m(root.child("kafka"));
  k.bootstrap_servers = m.get_string("bootstrap_servers", k.bootstrap_servers);
  k.group_id = m.get_string("group_id", k.group_id);
  const auto instance = m.child("group_instance_id");
  k.group_instance_id = m.get_string("group_instance_id", k.group_instance_id);
  if (k.group_instance_id.size() > 249 ||
      k.group_instance_id.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          std::string::npos)
    instance.error("must be \"auto\" (the host name), \"\" (none) or up to 249 letters, digits, '.', '_' and '-'");
  const auto topics = m.child("topics");
  k.topics = m.get_string_list("topics", k.topics);
  if (k.topics.empty()) topics.error("at least one topic is required");
  k.alerts_topic = m.get_string("alerts_topic", k.alerts_topic);
  k.decisions_topic = m.get_string("decisions_topic", k.decisions_topic);
  k.dead_letter_topic = m.get_string("dead_letter_topic", k.dead_letter_topic);
  k.commit_interval_ms =
      static_cast<int>(m.get_int("commit_interval_ms", k.commit_interval_ms, 10, 600000));
  k.poll_timeout_ms = static_cast<int>(m.get_int("poll_timeout_ms", k.poll_timeout_ms, 1, 10000));
  k.max_partition_wait_ms =
      static_cast<int>(m.get_int("max_partition_wait_ms", k.max_partition_wait_ms, 0, 600000));
  k.buffer_mb = static_cast<int>(m.get_int("buffer_mb", k.buffer_mb, 1, 65536));
  k.group_lag_interval_ms = static_cast<int>(
      m.get_int("group_lag_interval_ms", k.group_lag_interval_ms, 0, 24 * 3600 * 1000));
  if (k.group_lag_interval_ms > 0 && k.group_lag_interval_ms < 1000)
    m.child("group_lag_interval_ms")
        .error("must be 0 (not measured) or at least 1000: each measure asks the cluster about "
               "every partition of the topics");
  const auto props = m.child("properties");
  MapReader pm(props);
  pm.accept_all_keys();
  if (props.is_map()) {
    // These are how portalwatch keeps at-least-once; letting YAML change them would silently lose
    // it.
    static const std::vector<std::string> kOwned = {
        "enable.auto.commit", "enable.auto.offset.store", "group.id", "group.instance.id", "bootstrap.servers",
        "enable.partition.eof"};
    for (const auto& kv : props.yaml()) {
      const std::string key = kv.first.Scalar();
      const ConfigNode value(kv.second, props.path() + "." + key, props.diags());
      if (std::find(kOwned.begin(), kOwned.end(), key) != kOwned.end()) {
        value.error("\"" + key + "\" is managed by portalwatch (use the kafka.* keys)");
        continue;
      }
      if (auto s = value.as_string()) k.properties[key] = *s;
    }
  }
}

void read_cluster(MapReader& root, const KafkaConfig& k, ClusterConfig& cc) {
  MapReader m(root.child("cluster"));
  const auto enabled = m.child("enabled");
  cc.enabled = m.get_bool("enabled", cc.enabled);
  const auto topic = m.child("state_topic");
  cc.state_topic = m.get_string("state_topic", cc.state_topic);
  cc.standby_max = static_cast<std::size_t>(
      m.get_int("standby_max", static_cast<std::int64_t>(cc.standby_max), 100, 10'000'000));
  if (!cc.enabled) return;
  if (cc.state_topic.empty()) topic.error("a cluster needs its state topic");
  // Members read it, and the alerts and decisions topics, through one consumer that tells them
  // apart by name.
  for (const std::string* other : {&k.alerts_topic, &k.decisions_topic, &k.dead_letter_topic})
    if (*other == cc.state_topic) topic.error("must differ from kafka's alerts, decisions and dead-letter topics");
  if (std::find(k.topics.begin(), k.topics.end(), cc.state_topic) != k.topics.end())
    topic.error("must not be one of kafka.topics");
  // Each member reads every event in a consumer group of its own, named after it.
  if (k.group_instance_id.empty())
    enabled.error("a cluster member needs a name: kafka.group_instance_id (\"auto\": the host name)");
  if (k.alerts_topic.empty() || k.decisions_topic.empty())
    enabled.error("a cluster needs kafka.alerts_topic and kafka.decisions_topic: a member that takes "
                  "another's partitions over reads them to know what was published");
}

void read_metrics(MapReader& root, MetricsConfig& mc) {
  MapReader m(root.child("metrics"));
  mc.enabled = m.get_bool("enabled", mc.enabled);
  const auto listen = m.child("listen");
  mc.listen = m.get_string("listen", mc.listen);
  const auto colon = mc.listen.rfind(':');
  if (colon == std::string::npos || colon + 1 >= mc.listen.size())
    listen.error("expected host:port, e.g. 127.0.0.1:9741");
}

void read_state(MapReader& root, StateConfig& sc) {
  MapReader m(root.child("state"));
  sc.path = m.get_string("path", sc.path);
  sc.block_cache_mib = static_cast<std::size_t>(
      m.get_int("block_cache_mib", static_cast<std::int64_t>(sc.block_cache_mib), 1, 65536));
  sc.warmup_ms = m.get_int("warmup_minutes", sc.warmup_ms / kMinuteMs, 0, 7 * 24 * 60) * kMinuteMs;
}

void read_profiles(MapReader& root, ProfilesConfig& pc, ProfileOptions& po) {
  MapReader m(root.child("profiles"));
  pc.cache_accounts = static_cast<std::size_t>(
      m.get_int("cache_accounts", static_cast<std::int64_t>(pc.cache_accounts), 100, 100'000'000));
  po.max_accounts = static_cast<std::size_t>(m.get_int(
      "max_accounts_in_memory", static_cast<std::int64_t>(po.max_accounts), 100, 100'000'000));
  po.ttl_ms = m.get_int("ttl_days", po.ttl_ms / kDayMs, 1, 3650) * kDayMs;
}

void read_geoip(MapReader& root, GeoIpConfig& gc) {
  MapReader m(root.child("geoip"));
  for (auto [key, paths] : {std::pair{"city_databases", &gc.city_databases},
                            std::pair{"asn_databases", &gc.asn_databases}}) {
    for (const auto& item : m.child(key).elements()) {
      const auto path = item.as_string();
      if (!path) continue;
      if (path->empty()) {
        item.error("expected the path of a .mmdb file");
        continue;
      }
      // A database that does not open is reported here, at its place in the file, rather than
      // when the daemon starts.
      const std::string problem = check_geoip_database(*path);
      if (!problem.empty()) {
        item.error(problem);
        continue;
      }
      paths->push_back(*path);
    }
  }
}

void read_decisions(MapReader& root, DecisionsConfig& dc) {
  MapReader m(root.child("decisions"));
  dc.dry_run = m.get_bool("dry_run", dc.dry_run);
  dc.log = m.get_string("log", dc.log);
}

void read_logging(MapReader& root, LogConfig& lc) {
  MapReader m(root.child("logging"));
  lc.level = m.get_enum("level", lc.level, {"trace", "debug", "info", "warn", "error"});
  lc.format = m.get_enum("format", lc.format, {"text", "json"});
  lc.reject_log_interval_seconds = static_cast<int>(
      m.get_int("reject_log_interval_seconds", lc.reject_log_interval_seconds, 0, 3600));
}

void read_shutdown(MapReader& root, ShutdownConfig& sc) {
  MapReader m(root.child("shutdown"));
  sc.timeout_ms = m.get_int("timeout_seconds", sc.timeout_ms / kSecondMs, 1, 600) * kSecondMs;
}

}  // namespace

ConfigResult load_config_text(std::string_view text, const std::string& source) {
  Diagnostics diags(source, text);
  YAML::Node doc;
  try {
    doc = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    diags.error(e.mark, "", "YAML syntax error: " + e.msg);
    return {std::nullopt, diags.format()};
  }
  Config config;
  config.source = source;
  config.text = std::string(text);
  {
    const ConfigNode root_node(doc, "", diags);
    MapReader root(root_node);
    read_input(root, config.engine);
    read_time(root, config.engine.time);
    {
      MapReader sources(root.child("sources"));
      config.engine.sources = read_sources_config(sources);
    }
    read_kafka(root, config.kafka);
    read_cluster(root, config.kafka, config.cluster);
    read_state(root, config.state);
    read_profiles(root, config.profiles, config.engine.profiles);
    read_geoip(root, config.geoip);
    read_metrics(root, config.metrics);
    read_logging(root, config.log);
    read_shutdown(root, config.shutdown);
    config.hooks = read_hooks(root);
    config.control = read_control(root);
    DetectorRegistry registry;
    register_builtin_detectors(registry);
    const auto detectors = root.child("detectors");
    if (detectors.defined() && !detectors.is_sequence())
      detectors.error("expected a list of detectors");
    config.detectors = build_detectors(detectors, registry);
    read_decisions(root, config.decisions);
    std::vector<std::string> known = registry.types();
    for (const auto& d : config.detectors) known.push_back(d.common.name);
    const auto policies = root.child("policies");
    if (policies.defined() && !policies.is_sequence()) policies.error("expected a list of policies");
    config.policies = read_policies(policies, known);
  }
  if (!diags.ok()) return {std::nullopt, diags.format()};
  return {std::move(config), ""};
}

std::vector<DetectorInstance> build_detectors_again(const Config& config) {
  if (config.text.empty()) return {};
  ConfigResult again = load_config_text(config.text, config.source);
  if (!again.config) return {};
  return std::move(again.config->detectors);
}

ConfigResult load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {std::nullopt, path + ": cannot read configuration file\n"};
  std::stringstream ss;
  ss << in.rdbuf();
  return load_config_text(ss.str(), path);
}

ConfigResult load_config(const std::optional<std::string>& path) {
  if (path) return load_config_file(*path);
  return load_config_text(default_config_text(), "<built-in default>");
}

}  // namespace portalwatch
