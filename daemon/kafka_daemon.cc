#include "daemon/kafka_daemon.h"

#include "daemon/profile_store.h"

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <csignal>
#include <map>
#include <thread>

#include "daemon/geoip.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/system_clock.h"

namespace portalwatch {

namespace {

using Clock = std::chrono::steady_clock;
using TopicPartitionKey = std::pair<std::string, std::int32_t>;

std::atomic<bool> g_stop{false};

void on_stop_signal(int) { g_stop.store(true); }

// Builds a librdkafka configuration; a property librdkafka refuses is a start-up error naming it.
std::unique_ptr<RdKafka::Conf> make_conf(const std::map<std::string, std::string>& props, std::string& error) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  for (const auto& [k, v] : props) {
    std::string err;
    if (conf->set(k, v, err) != RdKafka::Conf::CONF_OK) {
      error = "kafka property \"" + k + "\": " + err;
      return nullptr;
    }
  }
  return conf;
}

void delete_partitions(std::vector<RdKafka::TopicPartition*>& parts) {
  RdKafka::TopicPartition::destroy(parts);
  parts.clear();
}

class KafkaDaemon final : public RdKafka::RebalanceCb, public RdKafka::EventCb, public RdKafka::DeliveryReportCb, public FindingSink {
 public:
  KafkaDaemon(Config config, const DaemonOptions& options)
      : config_(std::move(config)),
        options_(options),
        store_(open_store(config_.profiles, store_error_)),
        geoip_(start_geoip(config_, wall_clock_, geoip_error_)),
        engine_(config_.engine, std::move(config_.detectors), &wall_clock_, store_.get(), geoip_.get()),
        metrics_(engine_, geoip_.get()),
        error_limiter_(std::chrono::seconds(10)),
        reject_limiter_(std::chrono::seconds(std::max(0, config_.log.reject_log_interval_seconds))) {}

  ~KafkaDaemon() override {
    producer_.reset();
    consumer_.reset();
  }

  bool start(std::string& error) {
    if (!store_error_.empty()) {
      error = store_error_;
      return false;
    }
    if (!geoip_error_.empty()) {
      error = geoip_error_;
      return false;
    }
    if (store_)
      spdlog::info("profiles in {} ({} consumer positions recorded)", config_.profiles.path, store_->positions().size());
    std::map<std::string, std::string> common = config_.kafka.properties;
    common["bootstrap.servers"] = config_.kafka.bootstrap_servers;
    if (!common.count("client.id")) common["client.id"] = "portalwatch";

    auto cconf_props = common;
    cconf_props["group.id"] = config_.kafka.group_id;
    cconf_props["enable.auto.commit"] = "false";        // we commit what we finished, when delivered
    cconf_props["enable.auto.offset.store"] = "false";  // stored only after an event is processed
    if (!cconf_props.count("auto.offset.reset")) cconf_props["auto.offset.reset"] = "earliest";
    auto cconf = make_conf(cconf_props, error);
    if (!cconf) return false;
    std::string err;
    cconf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err);
    cconf->set("event_cb", static_cast<RdKafka::EventCb*>(this), err);
    consumer_.reset(RdKafka::KafkaConsumer::create(cconf.get(), err));
    if (!consumer_) {
      error = "cannot create Kafka consumer: " + err;
      return false;
    }

    if (needs_producer()) {
      auto pconf_props = common;
      // Consumer-only settings would only produce warnings on the producer.
      for (const char* k : {"partition.assignment.strategy", "auto.offset.reset", "session.timeout.ms",
                            "heartbeat.interval.ms", "max.poll.interval.ms", "group.instance.id",
                            "group.protocol.type", "fetch.max.bytes", "fetch.min.bytes", "fetch.wait.max.ms",
                            "fetch.error.backoff.ms", "max.partition.fetch.bytes", "queued.min.messages",
                            "queued.max.messages.kbytes", "enable.partition.eof", "isolation.level", "check.crcs",
                            "coordinator.query.interval.ms", "auto.commit.interval.ms"})
        pconf_props.erase(k);
      if (!pconf_props.count("linger.ms")) pconf_props["linger.ms"] = "5";
      auto pconf = make_conf(pconf_props, error);
      if (!pconf) return false;
      pconf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(this), err);
      pconf->set("event_cb", static_cast<RdKafka::EventCb*>(this), err);
      producer_.reset(RdKafka::Producer::create(pconf.get(), err));
      if (!producer_) {
        error = "cannot create Kafka producer: " + err;
        return false;
      }
    }

    const auto rc = consumer_->subscribe(config_.kafka.topics);
    if (rc != RdKafka::ERR_NO_ERROR) {
      error = "cannot subscribe: " + RdKafka::err2str(rc);
      return false;
    }
    if (config_.metrics.enabled) {
      try {
        metrics_.serve(config_.metrics.listen);
      } catch (const std::exception& e) {
        error = e.what();
        return false;
      }
    }
    std::string topics;
    for (const auto& t : config_.kafka.topics) topics += (topics.empty() ? "" : ",") + t;
    spdlog::info("portalwatch consuming {} from {} as group {}; {} detector(s); metrics {}", topics,
                 config_.kafka.bootstrap_servers, config_.kafka.group_id, engine_.detectors().size(),
                 config_.metrics.enabled ? "on port " + std::to_string(metrics_.port()) : std::string("off"));
    if (options_.on_ready) options_.on_ready(metrics_.port());
    return true;
  }

  void run(const std::atomic<bool>& stop) {
    const auto started = Clock::now();
    auto next_commit = started + std::chrono::milliseconds(config_.kafka.commit_interval_ms);
    auto next_sync = started;
    auto next_lag = started;
    while (!stop.load(std::memory_order_relaxed)) {
      if (options_.duration && Clock::now() - started >= *options_.duration) break;
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(config_.kafka.poll_timeout_ms));
      handle(*msg);
      const auto now = Clock::now();
      if (producer_) producer_->poll(0);
      if (now >= next_sync) {
        metrics_.sync(engine_);
        next_sync = now + std::chrono::milliseconds(250);
      }
      if (now >= next_lag) {
        update_lag();
        next_lag = now + std::chrono::seconds(1);
      }
      if (now >= next_commit) {
        commit_processed(nullptr);
        next_commit = now + std::chrono::milliseconds(config_.kafka.commit_interval_ms);
      }
    }
    shutdown();
  }

  // FindingSink: called by the engine while it processes a message.
  void emit(Finding&& f) override { pending_findings_.push_back(std::move(f)); }

 private:
  bool needs_producer() const {
    return !config_.kafka.alerts_topic.empty() || !config_.kafka.dead_letter_topic.empty() ||
           !config_.kafka.decisions_topic.empty();
  }

  void handle(RdKafka::Message& msg) {
    switch (msg.err()) {
      case RdKafka::ERR_NO_ERROR:
        process(msg);
        return;
      case RdKafka::ERR__TIMED_OUT:
      case RdKafka::ERR__PARTITION_EOF:
        return;
      default: {
        metrics_.consume_errors.Increment();
        std::uint64_t suppressed = 0;
        if (error_limiter_.allow(0, suppressed))
          spdlog::warn("kafka consume error: {}{}", msg.errstr(),
                       suppressed ? fmt::format(" [{} similar suppressed]", suppressed) : "");
        return;
      }
    }
  }

  void process(RdKafka::Message& msg) {
    const auto t0 = Clock::now();
    const std::string_view payload(static_cast<const char*>(msg.payload()), msg.len());
    // An event the profile store already includes (processed, then the process died before its
    // Kafka offset was committed) runs through the detectors but does not count twice.
    const bool included = store_ && msg.offset() < store_->position(msg.topic_name() + "/" + std::to_string(msg.partition()));
    const Engine::Result r = engine_.process(payload, false, *this, !included);
    if (!r.accepted) reject(msg, r);
    for (auto& f : pending_findings_) publish(f);
    pending_findings_.clear();
    metrics_.processing_latency.Observe(std::chrono::duration<double>(Clock::now() - t0).count());
    // Fully processed: its findings are queued for delivery. The commit waits for that delivery.
    next_offsets_[{msg.topic_name(), msg.partition()}] = msg.offset() + 1;
    dirty_ = true;
    if (options_.on_processed) options_.on_processed(msg.topic_name(), msg.partition(), msg.offset());
  }

  void reject(RdKafka::Message& msg, const Engine::Result& r) {
    std::uint64_t suppressed = 0;
    if (reject_limiter_.allow(static_cast<size_t>(r.reason), suppressed))
      spdlog::warn("rejected message {}/{}@{} ({}): {}{}", msg.topic_name(), msg.partition(), msg.offset(),
                   to_string(r.reason), r.detail, suppressed ? fmt::format(" [{} similar suppressed]", suppressed) : "");
    if (config_.kafka.dead_letter_topic.empty() || !producer_) return;
    auto* headers = RdKafka::Headers::create();
    headers->add("portalwatch.reason", std::string(to_string(r.reason)));
    headers->add("portalwatch.source", msg.topic_name() + "/" + std::to_string(msg.partition()) + "@" +
                                           std::to_string(msg.offset()));
    produce(TopicRole::kDeadLetter, config_.kafka.dead_letter_topic, msg.payload(), msg.len(),
            msg.key() ? *msg.key() : std::string(), headers);
  }

  void publish(const Finding& f) {
    const std::string json = f.to_json();
    if (f.severity >= Severity::kHigh) spdlog::warn("finding {}", json);
    else spdlog::info("finding {}", json);
    if (!config_.kafka.alerts_topic.empty() && producer_)
      produce(TopicRole::kAlerts, config_.kafka.alerts_topic, json.data(), json.size(), f.entity, nullptr);
    if (options_.on_finding) options_.on_finding(f);
  }

  void produce(TopicRole role, const std::string& topic, const void* data, size_t len, const std::string& key,
               RdKafka::Headers* headers) {
    for (;;) {
      const auto rc = producer_->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                                         const_cast<void*>(data), len, key.empty() ? nullptr : key.data(), key.size(),
                                         0, headers, reinterpret_cast<void*>(static_cast<std::uintptr_t>(role)));
      if (rc == RdKafka::ERR_NO_ERROR) return;  // headers now belong to librdkafka
      if (rc == RdKafka::ERR__QUEUE_FULL) {
        // Back-pressure: the broker is slower than our findings; wait rather than lose one.
        producer_->poll(50);
        continue;
      }
      delete headers;
      metrics_.produce_failures[static_cast<size_t>(role)]->Increment();
      spdlog::error("cannot produce to {}: {}", topic, RdKafka::err2str(rc));
      return;
    }
  }

  // DeliveryReportCb
  void dr_cb(RdKafka::Message& msg) override {
    const auto role = static_cast<size_t>(reinterpret_cast<std::uintptr_t>(msg.msg_opaque()));
    if (role >= static_cast<size_t>(TopicRole::kCount)) return;
    if (msg.err() == RdKafka::ERR_NO_ERROR) {
      metrics_.produced[role]->Increment();
    } else {
      // librdkafka has already retried for delivery.timeout.ms. Keep the message and send it again
      // before the next commit; offsets stay behind it until it is delivered.
      metrics_.produce_failures[role]->Increment();
      spdlog::error("delivery to {} failed: {}; will retry", msg.topic_name(), msg.errstr());
      retries_.push_back({static_cast<TopicRole>(role), msg.topic_name(),
                          std::string(static_cast<const char*>(msg.payload()), msg.len()),
                          msg.key() ? *msg.key() : std::string()});
    }
  }

  // EventCb: librdkafka's own errors and logs.
  void event_cb(RdKafka::Event& event) override {
    switch (event.type()) {
      case RdKafka::Event::EVENT_ERROR: {
        std::uint64_t suppressed = 0;
        if (error_limiter_.allow(1, suppressed))
          spdlog::log(event.fatal() ? spdlog::level::critical : spdlog::level::warn, "kafka: {}{}", event.str(),
                      suppressed ? fmt::format(" [{} similar suppressed]", suppressed) : "");
        break;
      }
      case RdKafka::Event::EVENT_LOG:
        spdlog::log(event.severity() <= RdKafka::Event::EVENT_SEVERITY_ERROR ? spdlog::level::err
                    : event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING ? spdlog::level::warn
                                                                                 : spdlog::level::debug,
                    "kafka {}: {}", event.fac(), event.str());
        break;
      default:
        break;
    }
  }

  // RebalanceCb, for both the eager and the cooperative protocol.
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& partitions) override {
    metrics_.rebalances.Increment();
    const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
    std::string list;
    for (auto* p : partitions) list += (list.empty() ? "" : ",") + p->topic() + "/" + std::to_string(p->partition());
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      spdlog::info("kafka: assigned {} ({})", list.empty() ? "nothing" : list, cooperative ? "cooperative" : "eager");
      if (cooperative) {
        if (RdKafka::Error* e = consumer->incremental_assign(partitions)) {
          spdlog::error("kafka: incremental assign failed: {}", e->str());
          delete e;
        }
      } else {
        consumer->assign(partitions);
      }
    } else if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
      spdlog::info("kafka: revoked {} ({})", list.empty() ? "nothing" : list, cooperative ? "cooperative" : "eager");
      // Commit what we finished on these partitions before another consumer takes them.
      commit_processed(&partitions);
      if (cooperative) {
        if (RdKafka::Error* e = consumer->incremental_unassign(partitions)) {
          spdlog::error("kafka: incremental unassign failed: {}", e->str());
          delete e;
        }
      } else {
        consumer->unassign();
      }
      for (auto* p : partitions) next_offsets_.erase({p->topic(), p->partition()});
    } else {
      spdlog::error("kafka: rebalance error: {}", RdKafka::err2str(err));
      consumer->unassign();
    }
  }

  // Commits the next offset of every fully processed partition (or only of `only`), after every
  // finding produced so far has been delivered: a crash never commits past an undelivered alert.
  void commit_processed(const std::vector<RdKafka::TopicPartition*>* only) {
    if (!dirty_ && !only) return;
    std::vector<RdKafka::TopicPartition*> offsets;
    for (const auto& [tp, next] : next_offsets_) {
      if (only) {
        bool wanted = false;
        for (auto* p : *only) wanted |= p->topic() == tp.first && p->partition() == tp.second;
        if (!wanted) continue;
      }
      offsets.push_back(RdKafka::TopicPartition::create(tp.first, tp.second, next));
    }
    if (offsets.empty()) return;
    if (producer_) {
      std::vector<Retry> again;
      again.swap(retries_);
      for (const auto& r : again) produce(r.role, r.topic, r.payload.data(), r.payload.size(), r.key, nullptr);
      const auto rc = producer_->flush(only ? 10000 : 2000);
      if (rc != RdKafka::ERR_NO_ERROR || !retries_.empty()) {
        // Keep the offsets uncommitted until every finding is delivered.
        spdlog::warn("kafka: findings not yet delivered ({}); offsets not committed this round",
                     retries_.empty() ? RdKafka::err2str(rc) : "a delivery failed");
        metrics_.commit_failures.Increment();
        delete_partitions(offsets);
        return;
      }
    }
    if (store_) {
      // Profiles first, with the positions they include: a crash between the two replays events
      // the store already has, which process() then does not apply twice.
      std::map<std::string, std::int64_t> positions;
      for (auto* p : offsets) positions[p->topic() + "/" + std::to_string(p->partition())] = p->offset();
      std::string error;
      if (!store_->commit(positions, true, error)) {
        spdlog::error("{}; offsets not committed this round", error);
        metrics_.commit_failures.Increment();
        delete_partitions(offsets);
        return;
      }
    }
    consumer_->offsets_store(offsets);
    const auto rc = consumer_->commitSync(offsets);
    if (rc == RdKafka::ERR_NO_ERROR) {
      metrics_.commits.Increment();
      if (!only) dirty_ = false;
    } else {
      metrics_.commit_failures.Increment();
      std::uint64_t suppressed = 0;
      if (error_limiter_.allow(2, suppressed)) spdlog::warn("kafka: offset commit failed: {}", RdKafka::err2str(rc));
    }
    delete_partitions(offsets);
  }

  void update_lag() {
    std::vector<RdKafka::TopicPartition*> parts;
    if (consumer_->assignment(parts) != RdKafka::ERR_NO_ERROR) return;
    consumer_->position(parts);
    std::int64_t lag = 0;
    for (auto* p : parts) {
      std::int64_t low = 0, high = 0;
      if (consumer_->get_watermark_offsets(p->topic(), p->partition(), &low, &high) != RdKafka::ERR_NO_ERROR) continue;
      const std::int64_t pos = p->offset() >= 0 ? p->offset() : low;
      if (high > pos) lag += high - pos;
    }
    metrics_.consumer_lag.Set(static_cast<double>(lag));
    metrics_.assigned_partitions.Set(static_cast<double>(parts.size()));
    delete_partitions(parts);
  }

  void shutdown() {
    spdlog::info("shutting down: committing processed offsets");
    commit_processed(nullptr);
    consumer_->close();
    if (producer_) producer_->flush(5000);
    metrics_.sync(engine_);
    const auto& s = engine_.stats();
    spdlog::info("stopped after {} events ({} rejected), {} findings", s.received, s.rejected_total(), s.findings);
  }

  static std::unique_ptr<ProfileStore> open_store(const ProfilesConfig& pc, std::string& error) {
    if (pc.path.empty()) return nullptr;
    ProfileStoreOptions o;
    o.path = pc.path;
    o.cache_accounts = pc.cache_accounts;
    o.block_cache_mib = pc.block_cache_mib;
    return ProfileStore::open(o, error);
  }

  Config config_;
  DaemonOptions options_;
  SystemClock wall_clock_;
  std::string store_error_;
  std::unique_ptr<ProfileStore> store_;  // before engine_, which holds a pointer to it
  std::string geoip_error_;
  std::unique_ptr<GeoIp> geoip_;  // likewise
  Engine engine_;
  Metrics metrics_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::vector<Finding> pending_findings_;
  std::map<TopicPartitionKey, std::int64_t> next_offsets_;
  struct Retry {
    TopicRole role;
    std::string topic;
    std::string payload;
    std::string key;
  };
  std::vector<Retry> retries_;  // failed deliveries, produced again before the next commit
  bool dirty_ = false;
  LogLimiter<4> error_limiter_;
  LogLimiter<kRejectReasonCount> reject_limiter_;
};

}  // namespace

const std::atomic<bool>& install_stop_signals() {
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return g_stop;
}

int run_daemon(Config config, const DaemonOptions& options, const std::atomic<bool>& stop) {
  init_logging(config.log);
  KafkaDaemon daemon(std::move(config), options);
  std::string error;
  if (!daemon.start(error)) {
    spdlog::critical("{}", error);
    return 1;
  }
  daemon.run(stop);
  return 0;
}

}  // namespace portalwatch
