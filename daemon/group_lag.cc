#include "daemon/group_lag.h"

#include <regex.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <sstream>
#include <utility>

namespace portalwatch {
namespace {

constexpr int kRequestTimeoutMs = 2000;  // each request to the cluster

struct PartitionsOwner {
  std::vector<RdKafka::TopicPartition*> list;
  PartitionsOwner() = default;
  PartitionsOwner(const PartitionsOwner&) = delete;
  PartitionsOwner& operator=(const PartitionsOwner&) = delete;
  ~PartitionsOwner() { RdKafka::TopicPartition::destroy(list); }
};

// A POSIX extended regular expression, compiled as librdkafka compiles subscriptions.
class Pattern {
 public:
  explicit Pattern(const std::string& text) {
    ok_ = regcomp(&re_, text.c_str(), REG_EXTENDED | REG_NOSUB) == 0;
  }
  ~Pattern() {
    if (ok_) regfree(&re_);
  }
  Pattern(const Pattern&) = delete;
  Pattern& operator=(const Pattern&) = delete;
  bool ok() const { return ok_; }
  bool matches(const std::string& s) const { return ok_ && regexec(&re_, s.c_str(), 0, nullptr, 0) == 0; }

 private:
  regex_t re_{};
  bool ok_ = false;
};

// The partitions of `md`'s topics that `wanted` accepts. A topic with an error (not created yet,
// not authorised) is left out, as librdkafka leaves it out of a subscription.
template <typename Wanted>
void add_partitions(const RdKafka::Metadata& md, Wanted wanted, PartitionsOwner& out) {
  for (const RdKafka::TopicMetadata* t : *md.topics()) {
    if (t->err() != RdKafka::ERR_NO_ERROR || !wanted(t->topic())) continue;
    for (const RdKafka::PartitionMetadata* p : *t->partitions())
      out.list.push_back(RdKafka::TopicPartition::create(t->topic(), p->id()));
  }
}

// Each partition's offset at `when` (-1: the high watermark, -2: the low), in one request per
// partition leader.
bool watermarks(RdKafka::KafkaConsumer& consumer, const PartitionsOwner& partitions,
                std::int64_t when, PartitionsOwner& out, std::string& error) {
  for (const RdKafka::TopicPartition* p : partitions.list)
    out.list.push_back(RdKafka::TopicPartition::create(p->topic(), p->partition(), when));
  const RdKafka::ErrorCode rc = consumer.offsetsForTimes(out.list, kRequestTimeoutMs);
  if (rc == RdKafka::ERR_NO_ERROR) return true;
  error = std::string(when == -1 ? "high" : "low") + " watermarks: " + RdKafka::err2str(rc);
  return false;
}

}  // namespace

GroupLagProbe::GroupLagProbe(RdKafka::KafkaConsumer& consumer, Options options,
                             prometheus::Gauge& lag, prometheus::Gauge& unmeasured)
    : consumer_(consumer), options_(std::move(options)), lag_(lag), unmeasured_(unmeasured) {}

GroupLagProbe::~GroupLagProbe() { stop(); }

void GroupLagProbe::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void GroupLagProbe::request_stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
}

void GroupLagProbe::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
}

bool GroupLagProbe::stopping() {
  std::lock_guard lock(mutex_);
  return stop_;
}

void GroupLagProbe::run() {
  int failures = 0;  // in a row
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    std::string error;
    const std::optional<Measure> m = measure(error);
    lock.lock();
    if (stop_) break;  // cut short: not a failure
    constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
    lag_.Set(m ? static_cast<double>(m->lag) : kNaN);
    unmeasured_.Set(m ? static_cast<double>(m->unmeasured) : kNaN);
    // Once per failing spell, from the second failure on (the first may come before the consumer
    // has reached the cluster).
    if (!m && ++failures == 2)
      spdlog::warn(
          "kafka: the consumer group's lag cannot be measured ({}); "
          "portalwatch_consumer_group_lag_messages is NaN until it can",
          error);
    if (m) {
      if (failures >= 2) spdlog::info("kafka: the consumer group's lag is measured again");
      failures = 0;
    }
    wake_.wait_for(lock, options_.interval, [this] { return stop_; });
  }
}

std::optional<GroupLagProbe::Measure> GroupLagProbe::measure(std::string& error) {
  PartitionsOwner partitions;
  std::vector<std::string> names;
  std::vector<std::unique_ptr<Pattern>> patterns, excluded;
  for (const auto& t : options_.topics) {
    if (!t.empty() && t[0] == '^') {
      patterns.push_back(std::make_unique<Pattern>(t));
      if (!patterns.back()->ok()) {
        error = "the topic pattern " + t + " is not a POSIX extended regular expression";
        return std::nullopt;
      }
    } else {
      names.push_back(t);
    }
  }
  std::istringstream blacklist(options_.blacklist);
  for (std::string re; std::getline(blacklist, re, ',');)
    if (!re.empty()) excluded.push_back(std::make_unique<Pattern>(re));
  const auto counted = [&](const std::string& topic) {
    return std::none_of(excluded.begin(), excluded.end(),
                        [&](const auto& re) { return re->matches(topic); });
  };

  for (const auto& name : names) {
    if (stopping()) return std::nullopt;
    std::unique_ptr<RdKafka::Topic> topic(RdKafka::Topic::create(&consumer_, name, nullptr, error));
    if (!topic) return std::nullopt;
    RdKafka::Metadata* raw = nullptr;
    const RdKafka::ErrorCode rc = consumer_.metadata(false, topic.get(), &raw, kRequestTimeoutMs);
    std::unique_ptr<RdKafka::Metadata> md(raw);
    if (rc != RdKafka::ERR_NO_ERROR) {
      error = "metadata of " + name + ": " + RdKafka::err2str(rc);
      return std::nullopt;
    }
    add_partitions(*md, [&](const std::string& n) { return n == name && counted(n); }, partitions);
  }
  if (!patterns.empty()) {
    if (stopping()) return std::nullopt;
    RdKafka::Metadata* raw = nullptr;
    const RdKafka::ErrorCode rc = consumer_.metadata(true, nullptr, &raw, kRequestTimeoutMs);
    std::unique_ptr<RdKafka::Metadata> md(raw);
    if (rc != RdKafka::ERR_NO_ERROR) {
      error = std::string("metadata of the cluster's topics: ") + RdKafka::err2str(rc);
      return std::nullopt;
    }
    const auto matches = [&](const std::string& n) {
      if (std::find(names.begin(), names.end(), n) != names.end()) return false;  // counted
      return counted(n) && std::any_of(patterns.begin(), patterns.end(),
                                       [&](const auto& re) { return re->matches(n); });
    };
    add_partitions(*md, matches, partitions);
  }
  Measure out;
  if (partitions.list.empty()) return out;

  if (stopping()) return std::nullopt;
  const RdKafka::ErrorCode rc = consumer_.committed(partitions.list, kRequestTimeoutMs);
  if (rc != RdKafka::ERR_NO_ERROR) {
    error = std::string("committed offsets: ") + RdKafka::err2str(rc);
    return std::nullopt;
  }
  PartitionsOwner high, low;
  if (stopping() || !watermarks(consumer_, partitions, -1, high, error)) return std::nullopt;
  if (stopping() || !watermarks(consumer_, partitions, -2, low, error)) return std::nullopt;
  for (std::size_t i = 0; i < partitions.list.size(); ++i) {
    const RdKafka::TopicPartition* tp = partitions.list[i];
    if (tp->err() != RdKafka::ERR_NO_ERROR || high.list[i]->err() != RdKafka::ERR_NO_ERROR ||
        low.list[i]->err() != RdKafka::ERR_NO_ERROR || high.list[i]->offset() < 0) {
      ++out.unmeasured;  // its leader unreachable, say: the others still tell
      continue;
    }
    const std::int64_t h = high.list[i]->offset(), l = std::max<std::int64_t>(0, low.list[i]->offset());
    std::int64_t from = tp->offset();
    if (from < 0) from = options_.from_latest ? h : l;  // never committed
    out.lag += std::max<std::int64_t>(0, h - std::max(from, l));
  }
  return out;
}

}  // namespace portalwatch
