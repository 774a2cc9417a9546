#include "daemon/metrics.h"

#include <set>

#include <chrono>
#include <set>
#include <stdexcept>

#include "portalwatch_version.h"

namespace portalwatch {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

std::string_view to_string(TopicRole r) {
  switch (r) {
    case TopicRole::kAlerts: return "alerts";
    case TopicRole::kDecisions: return "decisions";
    case TopicRole::kDeadLetter: return "dead_letter";
    case TopicRole::kCount: break;
  }
  return "";
}

void add_delta(prometheus::Counter& c, std::uint64_t now, std::uint64_t& last) {
  if (now > last) c.Increment(static_cast<double>(now - last));
  last = now;
}

}  // namespace

Metrics::Metrics(const Engine& engine, const GeoIp* geoip)
    : processing_latency(BuildHistogram()
                             .Name("portalwatch_processing_latency_seconds")
                             .Help("Time to decode an event and run every detector on it")
                             .Register(*registry_)
                             .Add({}, prometheus::Histogram::BucketBoundaries{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5,
                                                                              1e-4, 2.5e-4, 1e-3, 1e-2, 1e-1})),
      consumer_lag(BuildGauge()
                       .Name("portalwatch_consumer_lag_messages")
                       .Help("Messages between the consumer's position and the high watermark, summed over assigned partitions")
                       .Register(*registry_)
                       .Add({})),
      group_lag(BuildGauge()
                    .Name("portalwatch_consumer_group_lag_messages")
                    .Help("Messages between the consumer group's committed offsets and the high "
                          "watermarks, over every partition of the topics (whichever member holds "
                          "them); NaN while the cluster cannot tell")
                    .Register(*registry_)
                    .Add({})),
      group_lag_unmeasured(BuildGauge()
                               .Name("portalwatch_consumer_group_lag_unmeasured_partitions")
                               .Help("Partitions left out of portalwatch_consumer_group_lag_messages "
                                     "because the cluster did not give their committed offset or "
                                     "watermarks (a leader unreachable)")
                               .Register(*registry_)
                               .Add({})),
      assigned_partitions(BuildGauge()
                              .Name("portalwatch_kafka_assigned_partitions")
                              .Help("Partitions currently assigned to this consumer")
                              .Register(*registry_)
                              .Add({})),
      input_held_messages(BuildGauge()
                              .Name("portalwatch_kafka_held_messages")
                              .Help("Messages fetched and not yet processed: in the partitions' queues, waiting for "
                                    "their turn in event-time order")
                              .Register(*registry_)
                              .Add({})),
      partition_waits_expired(BuildCounter()
                                  .Name("portalwatch_kafka_partition_waits_expired_total")
                                  .Help("Times a partition with nothing fetched held the others back for "
                                        "kafka.max_partition_wait_ms and event time went on without it")
                                  .Register(*registry_)
                                  .Add({})),
      input_buffered_bytes(BuildGauge()
                               .Name("portalwatch_kafka_buffered_bytes")
                               .Help("Bytes of the messages fetched and waiting for their turn in event-time order "
                                     "(keys and payloads; about kafka.buffer_mb at most, see the README)")
                               .Register(*registry_)
                               .Add({})),
      partition_pauses(BuildCounter()
                           .Name("portalwatch_kafka_partition_pauses_total")
                           .Help("Times a partition's fetching was paused because its buffer held more than its "
                                 "share of kafka.buffer_mb (resumed at three quarters of it)")
                           .Register(*registry_)
                           .Add({})),
      paused_partitions(BuildGauge()
                            .Name("portalwatch_kafka_paused_partitions")
                            .Help("Assigned partitions paused now because they hold more than their share of "
                                  "kafka.buffer_mb")
                            .Register(*registry_)
                            .Add({})),
      last_event_time(BuildGauge()
                          .Name("portalwatch_event_time_watermark_seconds")
                          .Help("Event-time watermark (newest event time minus allowed lateness), Unix seconds")
                          .Register(*registry_)
                          .Add({})),
      commits(BuildCounter()
                  .Name("portalwatch_kafka_commits_total")
                  .Help("Successful offset commits")
                  .Register(*registry_)
                  .Add({})),
      commit_failures(BuildCounter()
                          .Name("portalwatch_kafka_commit_failures_total")
                          .Help("Offset commits that failed (retried at the next interval)")
                          .Register(*registry_)
                          .Add({})),
      rebalances(BuildCounter()
                     .Name("portalwatch_kafka_rebalances_total")
                     .Help("Consumer group rebalances (assignments and revocations)")
                     .Register(*registry_)
                     .Add({})),
      consume_errors(BuildCounter()
                         .Name("portalwatch_kafka_consume_errors_total")
                         .Help("Errors returned by the consumer (broker down, unknown topic...)")
                         .Register(*registry_)
                         .Add({})),
      state_write_failures(BuildCounter()
                               .Name("portalwatch_state_write_failures_total")
                               .Help("Writes to the state store (published findings) that failed")
                               .Register(*registry_)
                               .Add({})),
      events_warmup(BuildCounter()
                        .Name("portalwatch_events_warmup_total")
                        .Help("Events already processed, read again to rebuild detector windows after a restart "
                              "or a late partition assignment (they change no profile and publish no finding "
                              "again)")
                        .Register(*registry_)
                        .Add({})),
      detection_restarts(BuildCounter()
                             .Name("portalwatch_detection_restarts_total")
                             .Help("Times detection started again from the held partitions' warm-up points "
                                   "because partitions were assigned after this process had moved on")
                             .Register(*registry_)
                             .Add({})),
      cluster_partitions(BuildGauge()
                             .Name("portalwatch_cluster_partitions")
                             .Help("Partitions of cluster.state_topic: what the members of a cluster share out (0: "
                                   "not a cluster member)")
                             .Register(*registry_)
                             .Add({})),
      cluster_owned_partitions(BuildGauge()
                                   .Name("portalwatch_cluster_owned_partitions")
                                   .Help("Partitions of cluster.state_topic this member owns: it publishes the "
                                         "findings and decisions whose keys fall in them and runs their hooks")
                                   .Register(*registry_)
                                   .Add({})),
      cluster_held_dropped(BuildCounter()
                               .Name("portalwatch_cluster_held_dropped_total")
                               .Help("Findings and decisions held for another member and dropped unpublished "
                                     "(over cluster.standby_max)")
                               .Register(*registry_)
                               .Add({})) {
  auto& held_family = BuildGauge()
                          .Name("portalwatch_cluster_held")
                          .Help("Findings and decisions another member owns, held in case this member takes "
                                "their partition over before their owner publishes them")
                          .Register(*registry_);
  auto& taken_over_family = BuildCounter()
                                .Name("portalwatch_cluster_taken_over_total")
                                .Help("Findings and decisions published by this member when it took their "
                                      "partition over, their previous owner not having published them")
                                .Register(*registry_);
  auto& before_family = BuildCounter()
                            .Name("portalwatch_cluster_published_before_total")
                            .Help("Findings and decisions of this member's partitions not published because "
                                  "their previous owner had published them (same id)")
                            .Register(*registry_);
  for (std::size_t k = 0; k < 2; ++k) {
    const std::map<std::string, std::string> kind{{"kind", k == 0 ? "finding" : "decision"}};
    cluster_held[k] = &held_family.Add(kind);
    cluster_taken_over[k] = &taken_over_family.Add(kind);
    cluster_published_before[k] = &before_family.Add(kind);
  }
  auto& suppressed_family = BuildCounter()
                                .Name("portalwatch_findings_suppressed_total")
                                .Help("Findings not published again: raised by an event replayed after a crash, or "
                                      "repeating one published before a restart")
                                .Register(*registry_);
  findings_suppressed[0] = &suppressed_family.Add({{"reason", "replayed"}});
  findings_suppressed[1] = &suppressed_family.Add({{"reason", "repeat"}});
  auto& produced_family = BuildCounter()
                              .Name("portalwatch_kafka_produced_total")
                              .Help("Messages delivered to an output topic")
                              .Register(*registry_);
  auto& produce_fail_family = BuildCounter()
                                  .Name("portalwatch_kafka_produce_failures_total")
                                  .Help("Messages that could not be delivered to an output topic")
                                  .Register(*registry_);
  for (size_t r = 0; r < produced.size(); ++r) {
    const std::string role(to_string(static_cast<TopicRole>(r)));
    produced[r] = &produced_family.Add({{"topic", role}});
    produce_failures[r] = &produce_fail_family.Add({{"topic", role}});
  }

  auto& kafka_errors_family = BuildCounter()
                                  .Name("portalwatch_kafka_errors_total")
                                  .Help("Errors reported by librdkafka's error callback, by kind")
                                  .Register(*registry_);
  for (size_t k = 0; k < kafka_errors.size(); ++k)
    kafka_errors[k] = &kafka_errors_family.Add({{"kind", std::string(to_string(static_cast<KafkaErrorKind>(k)))}});
  auto& brokers_up_family = BuildGauge()
                                .Name("portalwatch_kafka_brokers_up")
                                .Help("Brokers this client is connected to (state UP in librdkafka's statistics)")
                                .Register(*registry_);
  auto& rtt_family = BuildGauge()
                         .Name("portalwatch_kafka_broker_rtt_seconds")
                         .Help("Highest average request round-trip time among the connected brokers, last statistics interval")
                         .Register(*registry_);
  auto& leader_family = BuildCounter()
                            .Name("portalwatch_kafka_leader_changes_total")
                            .Help("Partition leader moves seen in librdkafka's statistics")
                            .Register(*registry_);
  for (size_t c = 0; c < kafka_brokers_up.size(); ++c) {
    const prometheus::Labels labels{{"client", c == static_cast<size_t>(KafkaClient::kConsumer) ? "consumer" : "producer"}};
    kafka_brokers_up[c] = &brokers_up_family.Add(labels);
    kafka_broker_rtt[c] = &rtt_family.Add(labels);
    kafka_leader_changes[c] = &leader_family.Add(labels);
  }

  received_ = &BuildCounter()
                   .Name("portalwatch_events_received_total")
                   .Help("Messages received, accepted or not")
                   .Register(*registry_)
                   .Add({});
  auto& rejected_family = BuildCounter()
                              .Name("portalwatch_events_rejected_total")
                              .Help("Messages rejected, by reason")
                              .Register(*registry_);
  for (size_t r = 0; r < kRejectReasonCount; ++r)
    rejected_[r] = &rejected_family.Add({{"reason", std::string(to_string(static_cast<RejectReason>(r)))}});
  auto& clamped_family = BuildCounter()
                             .Name("portalwatch_events_time_clamped_total")
                             .Help("Events whose timestamp was replaced: too late (placed at the watermark) or too far in the future")
                             .Register(*registry_);
  late_clamped_ = &clamped_family.Add({{"kind", "late"}});
  future_clamped_ = &clamped_family.Add({{"kind", "future"}});
  auto& ignored_family = BuildCounter()
                             .Name("portalwatch_event_fields_ignored_total")
                             .Help("Optional fields present but unusable (wrong type or value); the event was kept without them")
                             .Register(*registry_);
  for (size_t f = 0; f < kFieldCount; ++f)
    ignored_fields_[f] = &ignored_family.Add({{"field", std::string(field_name(static_cast<Field>(f)))}});

  decisions_family_ = &BuildCounter()
                            .Name("portalwatch_decisions_total")
                            .Help("Decisions made, by action, state (on/off), scope type and origin (policy/operator)")
                            .Register(*registry_);
  // Every series exists from the start at 0, so increase() sees the first decision.
  for (const auto action : {DecisionAction::kLockdown, DecisionAction::kReauthenticate})
    for (const char* state : {"on", "off"})
      for (std::size_t t = 0; t < kScopeTypeCount; ++t)
        for (const char* origin : {"policy", "operator"})
          decisions_family_->Add({{"action", std::string(to_string(action))},
                                  {"state", state},
                                  {"scope", std::string(to_string(static_cast<ScopeType>(t)))},
                                  {"origin", origin}});
  auto& lockdown_family = BuildGauge()
                              .Name("portalwatch_lockdowns_active")
                              .Help("Lockdowns in force (dry-run ones included), by scope type")
                              .Register(*registry_);
  for (std::size_t t = 0; t < kScopeTypeCount; ++t)
    lockdowns_active_[t] = &lockdown_family.Add({{"scope", std::string(to_string(static_cast<ScopeType>(t)))}});
  findings_family_ = &BuildCounter()
                         .Name("portalwatch_findings_total")
                         .Help("Findings raised, by detector instance and severity")
                         .Register(*registry_);
  keys_family_ = &BuildGauge()
                      .Name("portalwatch_detector_state_keys")
                      .Help("Keys held in a detector's keyed table")
                      .Register(*registry_);
  cap_family_ = &BuildGauge()
                     .Name("portalwatch_detector_state_capacity_keys")
                     .Help("Configured cap of a detector's keyed table")
                     .Register(*registry_);
  evict_family_ = &BuildCounter()
                       .Name("portalwatch_detector_state_evictions_total")
                       .Help("Live keys evicted because a table was full")
                       .Register(*registry_);
  expire_family_ = &BuildCounter()
                        .Name("portalwatch_detector_state_expirations_total")
                        .Help("Idle keys removed after their state aged out")
                        .Register(*registry_);
  bind_detectors(engine);
  auto& keys_family = *keys_family_;
  auto& cap_family = *cap_family_;
  auto& evict_family = *evict_family_;
  auto& expire_family = *expire_family_;
  for (const auto& t : engine.tables()) {
    const prometheus::Labels labels{{"detector", "engine"}, {"table", std::string(t.table)}};
    engine_tables_.push_back({&keys_family.Add(labels), &cap_family.Add(labels), &evict_family.Add(labels),
                              &expire_family.Add(labels), 0, 0, std::string(t.table)});
  }

  if (geoip) {
    geoip_ = geoip;
    auto& lookups_family = BuildCounter()
                               .Name("portalwatch_geoip_lookups_total")
                               .Help("Events that needed a GeoIP database (city: no source.geo.location; asn: no source.as), "
                                     "by database kind and result, answered from the cache or not")
                               .Register(*registry_);
    for (size_t k = 0; k < kGeoDatabaseKindCount; ++k)
      for (size_t r = 0; r < kGeoLookupResultCount; ++r)
        geoip_lookups_[k][r] = &lookups_family.Add({{"database", std::string(to_string(static_cast<GeoDatabaseKind>(k)))},
                                                    {"result", std::string(to_string(static_cast<GeoLookupResult>(r)))}});
    geoip_cache_hits_ = &BuildCounter()
                             .Name("portalwatch_geoip_cache_hits_total")
                             .Help("GeoIP lookups answered from the cache of recent addresses")
                             .Register(*registry_)
                             .Add({});
  }

  BuildGauge()
      .Name("portalwatch_build_info")
      .Help("Build facts; the value is always 1")
      .Register(*registry_)
      .Add({{"version", PORTALWATCH_VERSION}})
      .Set(1);
  BuildGauge()
      .Name("portalwatch_start_time_seconds")
      .Help("When this process started, Unix seconds")
      .Register(*registry_)
      .Add({})
      .Set(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
}

Metrics::~Metrics() = default;

void Metrics::serve(const std::string& listen) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(listen, 2);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot serve metrics on " + listen + ": " + e.what());
  }
  exposer_->RegisterCollectable(registry_);
}

int Metrics::port() const {
  if (!exposer_) return 0;
  const auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void Metrics::sync_table(TableSeries& series, const TableStats& stats) {
  series.keys->Set(static_cast<double>(stats.keys));
  series.capacity->Set(static_cast<double>(stats.capacity));
  add_delta(*series.evictions, stats.evictions, series.last_evictions);
  add_delta(*series.expirations, stats.expirations, series.last_expirations);
}

void Metrics::bind_detectors(const Engine& engine) {
  // Table series that the new set of instances does not have go (a gauge left behind would show
  // keys nobody holds); the findings counters stay (a counter that vanished would read as a reset).
  std::set<std::pair<std::string, std::string>> kept;
  for (const auto& d : engine.detectors())
    for (const auto& t : d.detector->tables()) kept.emplace(d.common.name, std::string(t.table));
  for (size_t i = 0; i < tables_.size(); ++i) {
    for (const TableSeries& t : tables_[i]) {
      if (kept.count({bound_names_[i], t.table})) continue;
      keys_family_->Remove(t.keys);
      cap_family_->Remove(t.capacity);
      evict_family_->Remove(t.evictions);
      expire_family_->Remove(t.expirations);
    }
  }
  findings_.clear();
  tables_.clear();
  bound_names_.clear();
  for (const auto& d : engine.detectors()) {
    std::array<prometheus::Counter*, kSeverityCount> by_severity{};
    for (size_t s = 0; s < kSeverityCount; ++s)
      by_severity[s] = &findings_family_->Add({{"detector", std::string(d.detector->detector())},
                                               {"name", d.common.name},
                                               {"severity", std::string(to_string(static_cast<Severity>(s)))}});
    findings_.push_back(by_severity);
    std::vector<TableSeries> series;
    for (const auto& t : d.detector->tables()) {
      const prometheus::Labels labels{{"detector", d.common.name}, {"table", std::string(t.table)}};
      // Counted from the table as it is now: a kept instance goes on, a new one starts at zero.
      series.push_back({&keys_family_->Add(labels), &cap_family_->Add(labels), &evict_family_->Add(labels),
                        &expire_family_->Add(labels), t.evictions, t.expirations, std::string(t.table)});
    }
    tables_.push_back(std::move(series));
    bound_names_.push_back(d.common.name);
  }
  last_findings_ = engine.detector_counts();
}

void Metrics::rebind_detectors(const Engine& engine) { bind_detectors(engine); }

void Metrics::sync(const Engine& engine) {
  const EngineStats& s = engine.stats();
  add_delta(*received_, s.received, last_.received);
  for (size_t r = 0; r < kRejectReasonCount; ++r) add_delta(*rejected_[r], s.rejected[r], last_.rejected[r]);
  add_delta(*late_clamped_, s.late_clamped, last_.late_clamped);
  add_delta(*future_clamped_, s.future_clamped, last_.future_clamped);
  const DecoderStats& ds = engine.decoder_stats();
  for (size_t f = 0; f < kFieldCount; ++f)
    add_delta(*ignored_fields_[f], ds.ignored_fields[f], last_decoder_.ignored_fields[f]);
  for (size_t i = 0; i < engine.detectors().size(); ++i) {
    for (size_t sev = 0; sev < kSeverityCount; ++sev)
      add_delta(*findings_[i][sev], engine.detector_counts()[i].findings[sev], last_findings_[i].findings[sev]);
    const auto tables = engine.detectors()[i].detector->tables();
    for (size_t t = 0; t < tables.size() && t < tables_[i].size(); ++t) sync_table(tables_[i][t], tables[t]);
  }
  const auto engine_tables = engine.tables();
  for (size_t t = 0; t < engine_tables.size() && t < engine_tables_.size(); ++t) sync_table(engine_tables_[t], engine_tables[t]);
  last_event_time.Set(static_cast<double>(engine.watermark()) / 1000.0);
  if (geoip_) {
    const GeoIpStats& g = geoip_->stats();
    for (size_t k = 0; k < kGeoDatabaseKindCount; ++k)
      for (size_t r = 0; r < kGeoLookupResultCount; ++r)
        add_delta(*geoip_lookups_[k][r], g.lookups[k][r], last_geoip_.lookups[k][r]);
    add_delta(*geoip_cache_hits_, g.cache_hits, last_geoip_.cache_hits);
  }
}

void Metrics::count_decision(const Decision& d, const std::map<std::string, Lockdown>& active) {
  decisions_family_
      ->Add({{"action", std::string(to_string(d.action))},
             {"state", d.on ? "on" : "off"},
             {"scope", std::string(to_string(d.scope.type))},
             {"origin", d.by.rfind("operator:", 0) == 0 ? "operator" : "policy"}})
      .Increment();
  set_lockdowns(active);
}

void Metrics::set_lockdowns(const std::map<std::string, Lockdown>& active) {
  std::array<double, kScopeTypeCount> n{};
  for (const auto& [key, l] : active) n[static_cast<std::size_t>(l.decision.scope.type)] += 1;
  for (std::size_t t = 0; t < kScopeTypeCount; ++t) lockdowns_active_[t]->Set(n[t]);
}

}  // namespace portalwatch
