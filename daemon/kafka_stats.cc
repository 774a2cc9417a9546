#include "daemon/kafka_stats.h"

#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include <algorithm>
#include <cstdio>

namespace portalwatch {

std::string_view to_string(KafkaErrorKind k) {
  switch (k) {
    case KafkaErrorKind::kTransport: return "transport";
    case KafkaErrorKind::kAllBrokersDown: return "all_brokers_down";
    case KafkaErrorKind::kTimedOut: return "timed_out";
    case KafkaErrorKind::kResolve: return "resolve";
    case KafkaErrorKind::kAuth: return "auth";
    case KafkaErrorKind::kOther:
    case KafkaErrorKind::kCount: break;
  }
  return "other";
}

KafkaErrorKind classify_kafka_error(int code) {
  switch (static_cast<rd_kafka_resp_err_t>(code)) {
    case RD_KAFKA_RESP_ERR__TRANSPORT: return KafkaErrorKind::kTransport;
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN: return KafkaErrorKind::kAllBrokersDown;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT: return KafkaErrorKind::kTimedOut;
    case RD_KAFKA_RESP_ERR__RESOLVE: return KafkaErrorKind::kResolve;
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED: return KafkaErrorKind::kAuth;
    default: return KafkaErrorKind::kOther;
  }
}

std::optional<KafkaStatsReport> parse_kafka_stats(std::string_view json) {
  // Once a second at most: a DOM parse of a copy is simple and cheap enough.
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size(), true).get(doc)) return std::nullopt;
  simdjson::dom::object brokers;
  if (doc["brokers"].get_object().get(brokers)) return std::nullopt;
  KafkaStatsReport r;
  std::string_view type;
  if (!doc["type"].get_string().get(type)) r.client_type = std::string(type);
  for (auto [name, b] : brokers) {
    std::int64_t node = -1;
    std::string_view state, source;
    if (b["nodeid"].get_int64().get(node) || b["state"].get_string().get(state)) continue;
    // Bootstrap entries (not yet learned) and the logical coordinator broker have no node id of
    // their own; they would count one broker twice.
    if (node < 0 || (!b["source"].get_string().get(source) && source == "logical")) continue;
    KafkaStatsReport::Broker out{std::string(name), static_cast<std::int32_t>(node), std::string(state), 0};
    std::int64_t avg_us = 0, count = 0;
    if (!b["rtt"]["avg"].get_int64().get(avg_us) && !b["rtt"]["cnt"].get_int64().get(count) && count > 0)
      out.rtt_avg_seconds = static_cast<double>(avg_us) / 1e6;
    r.brokers.push_back(std::move(out));
  }
  simdjson::dom::object topics;
  if (!doc["topics"].get_object().get(topics)) {
    for (auto [topic, t] : topics) {
      simdjson::dom::object partitions;
      if (t["partitions"].get_object().get(partitions)) continue;
      for (auto [key, p] : partitions) {
        std::int64_t partition = -1, leader = -1;
        if (p["partition"].get_int64().get(partition) || partition < 0) continue;  // -1: unassigned messages
        if (p["leader"].get_int64().get(leader)) continue;
        r.leaders[{std::string(topic), static_cast<std::int32_t>(partition)}] = static_cast<std::int32_t>(leader);
      }
    }
  }
  return r;
}

std::vector<std::string> KafkaHealth::update(const KafkaStatsReport& r) {
  std::vector<std::string> changes;
  int up = 0;
  max_rtt_ = 0;
  for (const auto& b : r.brokers) up += b.state == "UP";
  for (const auto& b : r.brokers) {
    const bool now_up = b.state == "UP";
    if (now_up) max_rtt_ = std::max(max_rtt_, b.rtt_avg_seconds);
    // A broker that has not been up yet (starting, or never needed) is not news; one that was up
    // and is not any more, or comes back, is.
    auto& seen = seen_[b.name];
    if (now_up == (seen == Seen::kUp) || (!now_up && seen == Seen::kNeverUp)) continue;
    const bool back = seen == Seen::kLost;
    seen = now_up ? Seen::kUp : Seen::kLost;
    if (now_up && !back) continue;
    const std::string count = " (" + std::to_string(up) + " of " + std::to_string(r.brokers.size()) + " brokers up)";
    changes.push_back(now_up ? "broker " + b.name + " is up again" + count
                             : "lost broker " + b.name + ", now " + b.state + count);
  }
  char rtt[64];
  if (!slow_ && max_rtt_ >= slow_rtt_) {
    slow_ = true;
    std::snprintf(rtt, sizeof rtt, "%.2f s", max_rtt_);
    changes.push_back(std::string("brokers slow: average round-trip time up to ") + rtt);
  } else if (slow_ && up > 0 && max_rtt_ < slow_rtt_ / 2) {
    slow_ = false;
    std::snprintf(rtt, sizeof rtt, "%.0f ms", max_rtt_ * 1000);
    changes.push_back(std::string("brokers answer in time again (average round-trip time ") + rtt + ")");
  }
  for (const auto& [tp, leader] : r.leaders) {
    if (leader < 0) continue;  // being elected: the move counts once it lands
    auto [it, fresh] = leaders_.emplace(tp, leader);
    if (fresh || it->second == leader) continue;
    ++leader_changes_;
    changes.push_back(tp.first + "/" + std::to_string(tp.second) + ": leader moved from broker " +
                      std::to_string(it->second) + " to " + std::to_string(leader));
    it->second = leader;
  }
  brokers_up_ = up;
  return changes;
}

}  // namespace portalwatch
