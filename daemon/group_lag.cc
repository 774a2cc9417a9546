#include "daemon/group_lag.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <regex>
#include <utility>

namespace portalwatch {
namespace {

constexpr int kRequestTimeoutMs = 2000;  // each request to the cluster

struct PartitionsOwner {
  std::vector<RdKafka::TopicPartition*> list;
  ~PartitionsOwner() { RdKafka::TopicPartition::destroy(list); }
};

// The partitions of `md`'s topics that `wanted` accepts; false when a topic's metadata has an
// error other than "no such topic" (a topic not created yet has no partitions to lag).
template <typename Wanted>
bool add_partitions(const RdKafka::Metadata& md, Wanted wanted, PartitionsOwner& out) {
  for (const RdKafka::TopicMetadata* t : *md.topics()) {
    if (!wanted(t->topic())) continue;
    if (t->err() == RdKafka::ERR_UNKNOWN_TOPIC_OR_PART) continue;
    if (t->err() != RdKafka::ERR_NO_ERROR) return false;
    for (const RdKafka::PartitionMetadata* p : *t->partitions())
      out.list.push_back(RdKafka::TopicPartition::create(t->topic(), p->id()));
  }
  return true;
}

}  // namespace

GroupLagProbe::GroupLagProbe(RdKafka::KafkaConsumer& consumer, std::vector<std::string> topics,
                             bool from_latest, prometheus::Gauge& lag,
                             std::chrono::milliseconds interval)
    : consumer_(consumer),
      topics_(std::move(topics)),
      lag_(lag),
      from_latest_(from_latest),
      interval_(interval) {}

GroupLagProbe::~GroupLagProbe() { stop(); }

void GroupLagProbe::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void GroupLagProbe::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool GroupLagProbe::stopping() {
  std::lock_guard lock(mutex_);
  return stop_;
}

void GroupLagProbe::run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    const std::optional<std::int64_t> lag = measure();
    lag_.Set(lag ? static_cast<double>(*lag) : std::numeric_limits<double>::quiet_NaN());
    lock.lock();
    if (!lag && !stop_ && !warned_) {
      warned_ = true;  // once: an unreachable cluster is reported by the consumer already
      spdlog::warn(
          "kafka: the consumer group's lag cannot be measured (metadata, committed offsets or "
          "watermarks not answered within {} ms); portalwatch_consumer_group_lag_messages is NaN "
          "until it can",
          kRequestTimeoutMs);
    }
    if (lag) warned_ = false;
    wake_.wait_for(lock, interval_, [this] { return stop_; });
  }
}

std::optional<std::int64_t> GroupLagProbe::measure() {
  PartitionsOwner partitions;
  std::vector<std::string> names;
  std::vector<std::regex> patterns;
  for (const auto& t : topics_) {
    if (!t.empty() && t[0] == '^') {
      try {
        patterns.emplace_back(t, std::regex::extended);
      } catch (const std::regex_error&) {
        return std::nullopt;  // librdkafka refused the subscription already
      }
    } else {
      names.push_back(t);
    }
  }
  for (const auto& name : names) {
    std::string error;
    std::unique_ptr<RdKafka::Topic> topic(
        RdKafka::Topic::create(&consumer_, name, nullptr, error));
    if (!topic) return std::nullopt;
    RdKafka::Metadata* raw = nullptr;
    if (consumer_.metadata(false, topic.get(), &raw, kRequestTimeoutMs) != RdKafka::ERR_NO_ERROR)
      return std::nullopt;
    std::unique_ptr<RdKafka::Metadata> md(raw);
    if (!add_partitions(*md, [&](const std::string& n) { return n == name; }, partitions))
      return std::nullopt;
    if (stopping()) return std::nullopt;
  }
  if (!patterns.empty()) {
    RdKafka::Metadata* raw = nullptr;
    if (consumer_.metadata(true, nullptr, &raw, kRequestTimeoutMs) != RdKafka::ERR_NO_ERROR)
      return std::nullopt;
    std::unique_ptr<RdKafka::Metadata> md(raw);
    const auto matches = [&](const std::string& n) {
      if (std::find(names.begin(), names.end(), n) != names.end()) return false;  // counted
      return std::any_of(patterns.begin(), patterns.end(),
                         [&](const std::regex& re) { return std::regex_search(n, re); });
    };
    if (!add_partitions(*md, matches, partitions)) return std::nullopt;
  }
  if (partitions.list.empty()) return 0;

  if (consumer_.committed(partitions.list, kRequestTimeoutMs) != RdKafka::ERR_NO_ERROR)
    return std::nullopt;
  std::int64_t lag = 0;
  for (const RdKafka::TopicPartition* tp : partitions.list) {
    if (stopping()) return std::nullopt;
    if (tp->err() != RdKafka::ERR_NO_ERROR) return std::nullopt;
    std::int64_t low = 0, high = 0;
    if (consumer_.query_watermark_offsets(tp->topic(), tp->partition(), &low, &high,
                                          kRequestTimeoutMs) != RdKafka::ERR_NO_ERROR)
      return std::nullopt;
    std::int64_t from = tp->offset();
    if (from < 0) from = from_latest_ ? high : low;  // never committed
    lag += std::max<std::int64_t>(0, high - std::max(from, low));
  }
  return lag;
}

}  // namespace portalwatch
