#include "daemon/cluster.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>

#include "daemon/log.h"

namespace portalwatch {

std::string_view published_id(std::string_view json) {
  constexpr std::string_view kStart = "{\"id\":\"";
  if (!json.starts_with(kStart)) return {};
  json.remove_prefix(kStart.size());
  return json.substr(0, json.find('"'));
}

std::string owner_key(const Finding& f) { return std::string(to_string(f.entity_type)) + ":" + f.entity; }

std::string owner_key(const Decision& d) { return d.scope.key(); }

std::int32_t key_partition(std::string_view key, std::int32_t partitions) {
  // librdkafka's murmur2 partitioner is the Java client's (Utils.toPositive(murmur2(key)) % n);
  // it reads neither the topic handle nor the opaques.
  return rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), std::max<std::int32_t>(1, partitions),
                                          nullptr, nullptr);
}

ClusterShare::ClusterShare(const ClusterConfig& cluster, const KafkaConfig& kafka, Metrics& metrics,
                           KafkaClientEvents& events)
    : config_(cluster), kafka_(kafka), metrics_(metrics), events_(events) {}

ClusterShare::~ClusterShare() { close(); }

bool ClusterShare::start(const std::map<std::string, std::string>& common, const std::string& member,
                         std::string& error) {
  auto props = common;
  props["group.id"] = kafka_.group_id;
  if (!member.empty()) props["group.instance.id"] = member;
  if (!props.count("partition.assignment.strategy")) props["partition.assignment.strategy"] = "cooperative-sticky";
  cooperative_sticky_ = props["partition.assignment.strategy"].find("cooperative-sticky") != std::string::npos;
  props["enable.auto.commit"] = "false";  // nothing is read, nothing committed
  props["enable.partition.eof"] = "false";
  props["client.id"] = props.count("client.id") ? props["client.id"] + "-cluster" : "portalwatch-cluster";
  auto conf = make_kafka_conf(props, error);
  if (!conf) return false;
  std::string err;
  conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err);
  consumer_events_ = std::make_unique<DetachableEventCb>(&events_);
  conf->set("event_cb", static_cast<RdKafka::EventCb*>(consumer_events_.get()), err);
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer_) {
    error = "cannot create the cluster's Kafka consumer: " + err;
    return false;
  }
  // The partitions must be known before anything is owned: every member computes the same
  // partition for a key only with the same count.
  std::unique_ptr<RdKafka::Topic> topic(RdKafka::Topic::create(consumer_.get(), config_.state_topic, nullptr, err));
  RdKafka::Metadata* md = nullptr;
  const auto rc = topic ? consumer_->metadata(false, topic.get(), &md, 10000) : RdKafka::ERR__INVALID_ARG;
  std::unique_ptr<RdKafka::Metadata> metadata(md);
  if (rc != RdKafka::ERR_NO_ERROR || !metadata || metadata->topics()->empty() ||
      metadata->topics()->front()->err() != RdKafka::ERR_NO_ERROR ||
      metadata->topics()->front()->partitions()->empty()) {
    const auto topic_err = metadata && !metadata->topics()->empty() ? metadata->topics()->front()->err() : rc;
    error = "cluster.state_topic " + config_.state_topic + " cannot be used: " + RdKafka::err2str(topic_err) +
            " (create it: README, \"Running several members\")";
    return false;
  }
  partitions_ = static_cast<std::int32_t>(metadata->topics()->front()->partitions()->size());
  metrics_.cluster_partitions.Set(partitions_);
  if (const auto e = consumer_->subscribe({config_.state_topic}); e != RdKafka::ERR_NO_ERROR) {
    error = "cannot join the cluster's group on " + config_.state_topic + ": " + RdKafka::err2str(e);
    return false;
  }
  spdlog::info("cluster: member {} of group {}, {} partitions of {} to share out", member, kafka_.group_id,
               partitions_, config_.state_topic);
  return start_reader(common, error);
}

// A consumer of its own, no group (assign only, nothing committed), on every partition of the
// alerts and decisions topics from their last kTopicHistory messages.
bool ClusterShare::start_reader(const std::map<std::string, std::string>& common, std::string& error) {
  auto props = common;
  props["group.id"] = kafka_.group_id + ".published-reader";  // assign() only: never joins, never commits
  props["enable.auto.commit"] = "false";
  props["enable.partition.eof"] = "false";
  props["client.id"] = props.count("client.id") ? props["client.id"] + "-published" : "portalwatch-published";
  for (const char* k : {"partition.assignment.strategy", "group.instance.id"}) props.erase(k);
  auto conf = make_kafka_conf(props, error);
  if (!conf) return false;
  std::string err;
  conf->set("event_cb", static_cast<RdKafka::EventCb*>(consumer_events_.get()), err);
  reader_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!reader_) {
    error = "cannot create the cluster's reader of the alerts and decisions topics: " + err;
    return false;
  }
  std::vector<RdKafka::TopicPartition*> parts;
  for (const std::string& name : {kafka_.alerts_topic, kafka_.decisions_topic}) {
    std::unique_ptr<RdKafka::Topic> topic(RdKafka::Topic::create(reader_.get(), name, nullptr, err));
    RdKafka::Metadata* md = nullptr;
    const auto rc = topic ? reader_->metadata(false, topic.get(), &md, 10000) : RdKafka::ERR__INVALID_ARG;
    std::unique_ptr<RdKafka::Metadata> metadata(md);
    if (rc != RdKafka::ERR_NO_ERROR || !metadata || metadata->topics()->empty() ||
        metadata->topics()->front()->err() != RdKafka::ERR_NO_ERROR) {
      const auto e = metadata && !metadata->topics()->empty() ? metadata->topics()->front()->err() : rc;
      error = "a cluster member reads " + name + ", which cannot be used: " + RdKafka::err2str(e);
      RdKafka::TopicPartition::destroy(parts);
      return false;
    }
    for (const auto* p : *metadata->topics()->front()->partitions()) {
      std::int64_t low = 0, high = 0;
      if (reader_->query_watermark_offsets(name, p->id(), &low, &high, 10000) != RdKafka::ERR_NO_ERROR) {
        error = "cannot read the offsets of " + name + " partition " + std::to_string(p->id());
        RdKafka::TopicPartition::destroy(parts);
        return false;
      }
      parts.push_back(RdKafka::TopicPartition::create(name, p->id(), std::max(low, high - kTopicHistory)));
    }
  }
  reader_->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  return true;
}

void ClusterShare::read_published(int max_messages) {
  for (int i = 0; reader_ && i < max_messages; ++i) {
    std::unique_ptr<RdKafka::Message> m(reader_->consume(0));
    if (m->err() == RdKafka::ERR__TIMED_OUT) break;
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;  // reported through the event callback
    seen_published(published_id({static_cast<const char*>(m->payload()), m->len()}));
  }
}

void ClusterShare::poll() {
  if (!consumer_) return;
  for (int i = 0; i < 100; ++i) {
    std::unique_ptr<RdKafka::Message> m(consumer_->consume(0));  // serves rebalance_cb and event_cb
    if (m->err() == RdKafka::ERR__TIMED_OUT) break;
    // A message fetched between an assignment and its pause: nothing to do with it.
  }
  read_published(10'000);
}

bool ClusterShare::catch_up(std::chrono::milliseconds timeout) {
  if (!reader_) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<RdKafka::TopicPartition*> parts;
  if (reader_->assignment(parts) != RdKafka::ERR_NO_ERROR) return false;
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> ends;
  for (auto* p : parts) {
    std::int64_t low = 0, high = 0;
    if (reader_->query_watermark_offsets(p->topic(), p->partition(), &low, &high, 5000) == RdKafka::ERR_NO_ERROR)
      ends[{p->topic(), p->partition()}] = high;
  }
  bool done = false;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    read_published(10'000);
    if (reader_->position(parts) != RdKafka::ERR_NO_ERROR) break;
    done = true;
    for (auto* p : parts) {
      const auto end = ends.find({p->topic(), p->partition()});
      // A partition with nothing read yet has no position (OFFSET_INVALID): not caught up unless empty.
      if (end != ends.end() && end->second > 0 && p->offset() < end->second) done = false;
    }
    if (!done) {
      std::unique_ptr<RdKafka::Message> m(reader_->consume(10));
      if (m->err() == RdKafka::ERR_NO_ERROR)
        seen_published(published_id({static_cast<const char*>(m->payload()), m->len()}));
    }
  }
  RdKafka::TopicPartition::destroy(parts);
  return done;
}

void ClusterShare::close() {
  if (reader_) {
    reader_->close();
    reader_.reset();
  }
  if (!consumer_) return;
  consumer_->close();
  release_kafka_consumer(consumer_, consumer_events_, ever_assigned_, cooperative_sticky_);
  owned_.clear();
}

std::vector<std::int32_t> ClusterShare::take_gained() {
  std::vector<std::int32_t> out;
  out.swap(gained_);
  return out;
}

void ClusterShare::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                                std::vector<RdKafka::TopicPartition*>& partitions) {
  const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
  std::string list;
  for (auto* p : partitions) list += (list.empty() ? "" : ",") + std::to_string(p->partition());
  if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
    ever_assigned_ = true;
    if (cooperative) {
      if (RdKafka::Error* e = consumer->incremental_assign(partitions)) {
        spdlog::error("cluster: incremental assign failed: {}", e->str());
        delete e;
      }
    } else {
      consumer->assign(partitions);
      owned_.clear();  // eager: this is the whole assignment
    }
    consumer->pause(partitions);  // owned, never read
    for (auto* p : partitions)
      if (owned_.insert(p->partition()).second) gained_.push_back(p->partition());
    spdlog::info("cluster: owns {} more partition(s) of {} ({}): {} in all", partitions.size(),
                 config_.state_topic, list.empty() ? "none" : list, owned_.size());
  } else if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
    if (cooperative) {
      if (RdKafka::Error* e = consumer->incremental_unassign(partitions)) {
        spdlog::error("cluster: incremental unassign failed: {}", e->str());
        delete e;
      }
    } else {
      consumer->unassign();
    }
    for (auto* p : partitions) {
      owned_.erase(p->partition());
      gained_.erase(std::remove(gained_.begin(), gained_.end(), p->partition()), gained_.end());
    }
    spdlog::info("cluster: gave up partition(s) {} of {}: {} left", list.empty() ? "none" : list,
                 config_.state_topic, owned_.size());
  } else {
    spdlog::error("cluster: rebalance error: {}", RdKafka::err2str(err));
    consumer->unassign();
    owned_.clear();
    gained_.clear();
  }
  metrics_.cluster_owned_partitions.Set(static_cast<double>(owned_.size()));
}

void ClusterShare::hold(Held h) {
  if (published_.count(h.id) || held_by_id_.count(h.id)) return;
  ++held_count_[h.decision ? 1 : 0];
  const std::string id = h.id;
  held_.push_back(std::move(h));
  held_by_id_[id] = std::prev(held_.end());
  while (held_.size() > config_.standby_max) {
    --held_count_[held_.front().decision ? 1 : 0];
    held_by_id_.erase(held_.front().id);
    held_.pop_front();
    metrics_.cluster_held_dropped.Increment();
  }
}

std::vector<ClusterShare::Held> ClusterShare::release(const std::vector<std::int32_t>& partitions) {
  const std::set<std::int32_t> wanted(partitions.begin(), partitions.end());
  std::vector<Held> out;
  for (auto it = held_.begin(); it != held_.end();) {
    if (!wanted.count(it->partition)) {
      ++it;
      continue;
    }
    --held_count_[it->decision ? 1 : 0];
    held_by_id_.erase(it->id);
    out.push_back(std::move(*it));
    it = held_.erase(it);
  }
  return out;
}

void ClusterShare::seen_published(std::string_view id) {
  if (id.empty()) return;
  std::string key(id);
  if (const auto h = held_by_id_.find(key); h != held_by_id_.end()) {
    --held_count_[h->second->decision ? 1 : 0];
    held_.erase(h->second);
    held_by_id_.erase(h);
  }
  if (!published_.insert(key).second) return;
  published_order_.push_back(std::move(key));
  while (published_order_.size() > 4 * config_.standby_max) {
    published_.erase(published_order_.front());
    published_order_.pop_front();
  }
}

void ClusterShare::sync_metrics() {
  metrics_.cluster_held[0]->Set(static_cast<double>(held_count_[0]));
  metrics_.cluster_held[1]->Set(static_cast<double>(held_count_[1]));
  metrics_.cluster_owned_partitions.Set(static_cast<double>(owned_.size()));
}

}  // namespace portalwatch
