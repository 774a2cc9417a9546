#include "daemon/kafka_client.h"

#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <cctype>
#include <mutex>
#include <utility>
#include <vector>

namespace portalwatch {

std::unique_ptr<RdKafka::Conf> make_kafka_conf(const std::map<std::string, std::string>& props,
                                               std::string& error) {
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

std::map<std::string, std::string> kafka_common_properties(const KafkaConfig& kafka) {
  std::map<std::string, std::string> common = kafka.properties;
  common["bootstrap.servers"] = kafka.bootstrap_servers;
  if (!common.count("client.id")) common["client.id"] = "portalwatch";
  // Statistics feed the broker health metrics and the broker lost/back log lines.
  if (!common.count("statistics.interval.ms")) common["statistics.interval.ms"] = "1000";
  return common;
}

std::string group_instance_id(const std::string& configured) {
  if (configured != "auto") return configured;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || !host[0]) return {};
  std::string id = host;
  for (char& c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '-';
  return id;
}

void KafkaClientEvents::event_cb(RdKafka::Event& event) {
  switch (event.type()) {
    case RdKafka::Event::EVENT_ERROR: {
      metrics_.kafka_errors[static_cast<size_t>(classify_kafka_error(event.err()))]->Increment();
      std::uint64_t suppressed = 0;
      if (error_limiter_.allow(0, suppressed))
        spdlog::log(event.fatal() ? spdlog::level::critical : spdlog::level::warn, "kafka: {}{}",
                    event.str(),
                    suppressed ? fmt::format(" [{} similar suppressed]", suppressed) : "");
      break;
    }
    case RdKafka::Event::EVENT_LOG:
      spdlog::log(event.severity() <= RdKafka::Event::EVENT_SEVERITY_ERROR ? spdlog::level::err
                  : event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING
                      ? spdlog::level::warn
                      : spdlog::level::debug,
                  "kafka {}: {}", event.fac(), event.str());
      break;
    case RdKafka::Event::EVENT_STATS:
      on_stats(event.str());
      break;
    default:
      break;
  }
}

// A client's statistics (every statistics.interval.ms, on the thread that polls it: the event
// loop): broker health into metrics, and a warning when a broker is lost or back or a leader
// moves, so a broker fault shows in the log while it lasts.
void KafkaClientEvents::on_stats(const std::string& json) {
  const auto report = parse_kafka_stats(json);
  if (!report) return;
  const auto client =
      report->client_type == "producer" ? KafkaClient::kProducer : KafkaClient::kConsumer;
  const auto c = static_cast<size_t>(client);
  KafkaHealth& health = health_[c];
  const std::uint64_t moves_before = health.leader_changes();
  for (const auto& change : health.update(*report))
    spdlog::warn("kafka {}: {}", report->client_type, change);
  metrics_.kafka_brokers_up[c]->Set(health.brokers_up());
  metrics_.kafka_broker_rtt[c]->Set(health.max_rtt_seconds());
  if (health.leader_changes() > moves_before)
    metrics_.kafka_leader_changes[c]->Increment(
        static_cast<double>(health.leader_changes() - moves_before));
}

void release_kafka_consumer(std::unique_ptr<RdKafka::KafkaConsumer>& consumer,
                            std::unique_ptr<DetachableEventCb>& events, bool ever_assigned,
                            bool cooperative_sticky) {
  if (consumer && !ever_assigned && cooperative_sticky && rd_kafka_version() < 0x020300ff) {
    // The rebalance callback is only served by polls, which end here.
    if (events) events->detach();
    static std::mutex kept_mu;
    static auto* kept = new std::vector<
        std::pair<std::unique_ptr<RdKafka::KafkaConsumer>, std::unique_ptr<DetachableEventCb>>>;
    std::lock_guard lock(kept_mu);
    kept->emplace_back(std::move(consumer), std::move(events));
  }
  consumer.reset();
}

}  // namespace portalwatch
