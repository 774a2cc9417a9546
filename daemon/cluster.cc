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
  member_ = member;
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
  // A fetch held by the broker delays what follows it on the connection (the offsets asked for
  // before a takeover or a status): 500 ms by default.
  if (!props.count("fetch.wait.max.ms")) props["fetch.wait.max.ms"] = "50";
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
  for (const std::string& name : {kafka_.alerts_topic, kafka_.decisions_topic, config_.state_topic}) {
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
      // The state topic whole (compacted: the newest record of each key, and what came since).
      const std::int64_t from =
          name == config_.state_topic ? RdKafka::Topic::OFFSET_BEGINNING : std::max(low, high - kTopicHistory);
      parts.push_back(RdKafka::TopicPartition::create(name, p->id(), from));
    }
  }
  reader_->assign(parts);
  RdKafka::TopicPartition::destroy(parts);

  // The operator's changes: stored on every in-sync replica before they are answered.
  auto pprops = common;
  for (const char* k : {"partition.assignment.strategy", "group.instance.id", "auto.offset.reset",
                        "session.timeout.ms", "heartbeat.interval.ms", "fetch.wait.max.ms",
                        "queued.min.messages", "queued.max.messages.kbytes", "enable.partition.eof",
                        "max.poll.interval.ms"})
    pprops.erase(k);
  pprops["acks"] = "all";
  pprops["enable.idempotence"] = "true";
  pprops["linger.ms"] = "0";
  // A record not stored within this is failed for good (write_state waits for that answer), so
  // that a change refused to the operator does not land later.
  pprops["message.timeout.ms"] = std::to_string(kStateWriteTimeoutMs);
  pprops["partitioner"] = "murmur2_random";  // a key's partition as the Java client's
  pprops["client.id"] = props["client.id"] + "-state";
  auto pconf = make_kafka_conf(pprops, error);
  if (!pconf) return false;
  pconf->set("event_cb", static_cast<RdKafka::EventCb*>(consumer_events_.get()), err);
  pconf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(this), err);
  state_producer_.reset(RdKafka::Producer::create(pconf.get(), err));
  if (!state_producer_) {
    error = "cannot create the cluster's producer of state records: " + err;
    return false;
  }
  return true;
}

void ClusterShare::dr_cb(RdKafka::Message& m) {
  const auto it = deliveries_.find(static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(m.msg_opaque())));
  if (it == deliveries_.end()) {
    if (m.err() != RdKafka::ERR_NO_ERROR)
      spdlog::error("cluster: a state record answered too late was not stored: {}", m.errstr());
    return;
  }
  it->second = {true, m.err(), m.partition(), m.offset(),
                m.status() == RdKafka::Message::MSG_STATUS_POSSIBLY_PERSISTED};
}

void ClusterShare::on_message(const RdKafka::Message& m) {
  const std::string_view payload{static_cast<const char*>(m.payload()), m.len()};
  if (m.topic_name() == config_.state_topic) {
    if (on_state_ && m.key()) on_state_(*m.key(), payload, loading_);
    return;
  }
  seen_published(published_id(payload));
}

bool ClusterShare::load_state(std::chrono::milliseconds timeout) {
  loading_ = true;
  const bool done = catch_up(timeout);
  loading_ = false;
  return done;
}

bool ClusterShare::write_state(const std::string& key, const std::string& value, std::chrono::milliseconds timeout,
                               std::string& error) {
  if (!state_producer_) {
    error = "not a cluster member";
    return false;
  }
  const std::uint64_t n = next_write_++;
  deliveries_[n] = {};
  const auto rc = state_producer_->produce(config_.state_topic, RdKafka::Topic::PARTITION_UA,
                                           RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
                                           value.size(), key.data(), key.size(), 0,
                                           reinterpret_cast<void*>(static_cast<std::uintptr_t>(n)));
  if (rc != RdKafka::ERR_NO_ERROR) {
    deliveries_.erase(n);
    error = "cannot store it on " + config_.state_topic + ": " + RdKafka::err2str(rc);
    return false;
  }
  // librdkafka answers within message.timeout.ms: stored, or failed for good.
  const auto answer_by = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStateWriteTimeoutMs + 2000);
  while (!deliveries_[n].done && std::chrono::steady_clock::now() < answer_by) state_producer_->poll(10);
  const Delivery outcome = deliveries_[n];
  deliveries_.erase(n);
  if (!outcome.done) {
    error = "no answer from librdkafka in time: it may have been stored (see status)";
    return false;
  }
  if (outcome.err != RdKafka::ERR_NO_ERROR) {
    error = outcome.possibly_stored
                ? "the brokers did not confirm it (" + RdKafka::err2str(outcome.err) +
                      ") but it may have been stored: see status"
                : "not stored on " + config_.state_topic + ": " + RdKafka::err2str(outcome.err);
    return false;
  }
  if (!read_state_to(outcome.partition, outcome.offset, std::chrono::steady_clock::now() + timeout)) {
    error = "stored, but not read back within " + std::to_string(timeout.count() / 1000) +
            " s: it applies when it is read";
    return false;
  }
  return true;
}

bool ClusterShare::read_state_to(std::int32_t partition, std::int64_t offset,
                                 std::chrono::steady_clock::time_point deadline) {
  std::vector<RdKafka::TopicPartition*> at{RdKafka::TopicPartition::create(config_.state_topic, partition)};
  bool done = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (reader_->position(at) == RdKafka::ERR_NO_ERROR && at[0]->offset() > offset) {
      done = true;
      break;
    }
    std::unique_ptr<RdKafka::Message> m(reader_->consume(10));
    if (m->err() == RdKafka::ERR_NO_ERROR) on_message(*m);
  }
  RdKafka::TopicPartition::destroy(at);
  return done;
}

void ClusterShare::read_published(int max_messages) {
  for (int i = 0; reader_ && i < max_messages; ++i) {
    std::unique_ptr<RdKafka::Message> m(reader_->consume(0));
    if (m->err() == RdKafka::ERR__TIMED_OUT) break;
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;  // reported through the event callback
    on_message(*m);
  }
}

void ClusterShare::poll() {
  if (!consumer_) return;
  for (int i = 0; i < 100; ++i) {
    std::unique_ptr<RdKafka::Message> m(consumer_->consume(0));  // serves rebalance_cb and event_cb
    if (m->err() == RdKafka::ERR__TIMED_OUT) break;
    // A message fetched between an assignment and its pause: nothing to do with it.
  }
  if (state_producer_) state_producer_->poll(0);
  read_published(10'000);
}

bool ClusterShare::catch_up(std::chrono::milliseconds timeout) {
  if (!reader_) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<RdKafka::TopicPartition*> parts;
  if (reader_->assignment(parts) != RdKafka::ERR_NO_ERROR) return false;
  // Every partition's first and end offsets, each in one request per leader (offsetsForTimes
  // with "earliest" and "latest").
  using Offsets = std::map<std::pair<std::string, std::int32_t>, std::int64_t>;
  const auto ask = [&](std::int64_t which, Offsets& out) {
    std::vector<RdKafka::TopicPartition*> query;
    for (auto* p : parts) query.push_back(RdKafka::TopicPartition::create(p->topic(), p->partition(), which));
    if (reader_->offsetsForTimes(query, 5000) == RdKafka::ERR_NO_ERROR)
      for (auto* q : query)
        if (q->err() == RdKafka::ERR_NO_ERROR) out[{q->topic(), q->partition()}] = q->offset();
    RdKafka::TopicPartition::destroy(query);
    return out.size() == parts.size();
  };
  Offsets starts, ends;
  if (!ask(RdKafka::Topic::OFFSET_BEGINNING, starts) || !ask(RdKafka::Topic::OFFSET_END, ends)) {
    RdKafka::TopicPartition::destroy(parts);
    return false;
  }
  bool done = false;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    read_published(10'000);
    if (reader_->position(parts) != RdKafka::ERR_NO_ERROR) break;
    done = true;
    for (auto* p : parts) {
      const std::int64_t start = starts[{p->topic(), p->partition()}], end = ends[{p->topic(), p->partition()}];
      // Nothing to read: empty, or emptied by retention (a partition read from where it ends has
      // no position until something comes). Else read up to its end.
      if (end <= start) continue;
      if (p->offset() < 0 || p->offset() < end) done = false;
    }
    if (!done) {
      std::unique_ptr<RdKafka::Message> m(reader_->consume(10));
      if (m->err() == RdKafka::ERR_NO_ERROR) on_message(*m);
    }
  }
  RdKafka::TopicPartition::destroy(parts);
  return done;
}

void ClusterShare::close() {
  if (state_producer_) {
    state_producer_->flush(1000);
    state_producer_.reset();
  }
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

void ClusterShare::activate(const std::vector<std::int32_t>& partitions) {
  for (const std::int32_t p : partitions)
    if (pending_.erase(p)) owned_.insert(p);
  metrics_.cluster_owned_partitions.Set(static_cast<double>(owned_.size()));
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
    if (!cooperative) pending_.clear();
    for (auto* p : partitions)
      if (!owned_.count(p->partition()) && pending_.insert(p->partition()).second) gained_.push_back(p->partition());
    spdlog::info("cluster: assigned {} more partition(s) of {} ({}): {} in all", partitions.size(),
                 config_.state_topic, list.empty() ? "none" : list, owned_.size() + pending_.size());
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
      pending_.erase(p->partition());
      gained_.erase(std::remove(gained_.begin(), gained_.end(), p->partition()), gained_.end());
    }
    spdlog::info("cluster: gave up partition(s) {} of {}: {} left", list.empty() ? "none" : list,
                 config_.state_topic, owned_.size());
  } else {
    spdlog::error("cluster: rebalance error: {}", RdKafka::err2str(err));
    consumer->unassign();
    owned_.clear();
    pending_.clear();
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
