#include "daemon/kafka_source.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>

namespace portalwatch {

namespace {

using TopicPartitionKey = std::pair<std::string, std::int32_t>;

// Taking over partitions: how many of the newest findings of each alerts partition are read back.
constexpr std::int64_t kTakeoverFindings = 20'000;
// With no partition assigned for this long, time goes on by the wall clock (lockdowns end).
constexpr auto kUnassignedIdle = std::chrono::seconds(30);

void delete_partitions(std::vector<RdKafka::TopicPartition*>& parts) {
  RdKafka::TopicPartition::destroy(parts);
  parts.clear();
}

std::vector<TopicPartitionKey> keys_of(const std::vector<RdKafka::TopicPartition*>& partitions) {
  std::vector<TopicPartitionKey> keys;
  keys.reserve(partitions.size());
  for (auto* p : partitions) keys.emplace_back(p->topic(), p->partition());
  return keys;
}

}  // namespace

KafkaSource::KafkaSource(const Config& config, Pipeline& pipeline, StateStore* store,
                         Metrics& metrics, DaemonOutputs& outputs, KafkaClientEvents& events,
                         OnProcessed on_processed)
    : config_(config),
      pipeline_(pipeline),
      engine_(pipeline.engine()),
      ledger_(pipeline.ledger()),
      store_(store),
      metrics_(metrics),
      outputs_(outputs),
      events_(events),
      on_processed_(std::move(on_processed)),
      reject_limiter_(std::chrono::seconds(std::max(0, config.log.reject_log_interval_seconds))) {}

KafkaSource::~KafkaSource() {
  release_queues();
  release_consumer();
  for (int fd : wake_)
    if (fd >= 0) ::close(fd);
}

bool KafkaSource::start(const std::map<std::string, std::string>& common, std::string& error) {
  kafka_common_ = common;
  auto cconf_props = common;
  instance_ = group_instance_id(config_.kafka.group_instance_id);
  // A cluster member reads every event: alone in a group named after it (daemon/cluster.h).
  cconf_props["group.id"] =
      config_.cluster.enabled ? config_.kafka.group_id + "." + instance_ : config_.kafka.group_id;
  if (!instance_.empty()) cconf_props["group.instance.id"] = instance_;
  // A rebalance moves only the partitions that change owner; the others go on being read.
  if (!cconf_props.count("partition.assignment.strategy"))
    cconf_props["partition.assignment.strategy"] = "cooperative-sticky";
  cooperative_sticky_ =
      cconf_props["partition.assignment.strategy"].find("cooperative-sticky") != std::string::npos;
  cconf_props["enable.auto.commit"] = "false";        // we commit what we finished, when delivered
  cconf_props["enable.auto.offset.store"] = "false";  // stored only after an event is processed
  if (!cconf_props.count("auto.offset.reset")) cconf_props["auto.offset.reset"] = "earliest";
  // How long the broker may hold a fetch is latency added to detection: librdkafka's 500 ms by
  // default. 10 ms costs an idle consumer a hundred small fetches a second per broker.
  if (!cconf_props.count("fetch.wait.max.ms")) cconf_props["fetch.wait.max.ms"] = "10";
  // The event-time merge must know when a partition has nothing more (PartitionFeeds).
  cconf_props["enable.partition.eof"] = "true";
  // Each partition is read from its own queue, so these bound each partition's prefetch, not the
  // consumer's (librdkafka's defaults, 64 MiB and 100,000 messages, would allow gigabytes).
  if (!cconf_props.count("queued.max.messages.kbytes"))
    cconf_props["queued.max.messages.kbytes"] = "4096";
  if (!cconf_props.count("queued.min.messages")) cconf_props["queued.min.messages"] = "20000";
  auto cconf = make_kafka_conf(cconf_props, error);
  if (!cconf) return false;
  // A fetch may wait this long on the broker; its round trip is not slowness.
  const double fetch_wait_seconds = std::atof(cconf_props["fetch.wait.max.ms"].c_str()) / 1000.0;
  events_.set_slow_rtt(KafkaClient::kConsumer, std::max(1.0, 2 * fetch_wait_seconds));
  std::string err;
  cconf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err);
  consumer_events_ = std::make_unique<DetachableEventCb>(&events_);
  cconf->set("event_cb", static_cast<RdKafka::EventCb*>(consumer_events_.get()), err);
  consumer_.reset(RdKafka::KafkaConsumer::create(cconf.get(), err));
  if (!consumer_) {
    error = "cannot create Kafka consumer: " + err;
    return false;
  }
  committer_ = std::make_unique<GroupCommitter>(
      consumer_->c_ptr(),
      [this](int e, const std::vector<GroupCommitter::Result>& r) { commit_done(e, r); });
  if (::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) {
    error = std::string("cannot create a pipe: ") + std::strerror(errno);
    return false;
  }
  static const char kWake = 'c';
  consumer_queue_ = rd_kafka_queue_get_consumer(consumer_->c_ptr());
  rd_kafka_queue_io_event_enable(consumer_queue_, wake_[1], &kWake, 1);
  feeds_ = std::make_unique<PartitionFeeds>(
      consumer_->c_ptr(), engine_, static_cast<PartitionFeeds::Handler&>(*this),
      std::chrono::milliseconds(config_.kafka.max_partition_wait_ms), wake_[1],
      static_cast<std::size_t>(config_.kafka.buffer_mb) * 1024 * 1024);
  return true;
}

bool KafkaSource::subscribe(std::string& error) {
  const auto rc = consumer_->subscribe(config_.kafka.topics);
  if (rc == RdKafka::ERR_NO_ERROR) {
    if (config_.kafka.group_lag_interval_ms > 0) {
      GroupLagProbe::Options o;
      o.topics = config_.kafka.topics;
      const auto reset = kafka_common_.find("auto.offset.reset");
      o.from_latest = reset != kafka_common_.end() &&
                      (reset->second == "latest" || reset->second == "largest" ||
                       reset->second == "end");
      if (const auto b = kafka_common_.find("topic.blacklist"); b != kafka_common_.end())
        o.blacklist = b->second;
      o.interval = std::chrono::milliseconds(config_.kafka.group_lag_interval_ms);
      group_lag_ = std::make_unique<GroupLagProbe>(*consumer_, std::move(o), metrics_.group_lag,
                                                   metrics_.group_lag_unmeasured);
      group_lag_->start();
    } else {
      metrics_.group_lag.Set(std::numeric_limits<double>::quiet_NaN());  // not measured
      metrics_.group_lag_unmeasured.Set(std::numeric_limits<double>::quiet_NaN());
    }
    return true;
  }
  error = "cannot subscribe: " + RdKafka::err2str(rc);
  return false;
}

bool KafkaSource::nothing_assigned() {
  std::vector<RdKafka::TopicPartition*> parts;
  const bool none = consumer_->assignment(parts) == RdKafka::ERR_NO_ERROR && parts.empty();
  delete_partitions(parts);
  return none;
}

void KafkaSource::sync_metrics() {
  metrics_.input_held_messages.Set(static_cast<double>(feeds_ ? feeds_->held_messages() : 0));
  if (feeds_)
    metrics_.partition_waits_expired.Increment(
        static_cast<double>(feeds_->waits_expired() - synced_waits_));
  if (feeds_) synced_waits_ = feeds_->waits_expired();
  metrics_.input_buffered_bytes.Set(static_cast<double>(feeds_ ? feeds_->held_bytes() : 0));
  metrics_.paused_partitions.Set(static_cast<double>(feeds_ ? feeds_->paused_count() : 0));
  if (feeds_) {
    metrics_.partition_pauses.Increment(static_cast<double>(feeds_->pauses() - synced_pauses_));
    synced_pauses_ = feeds_->pauses();
  }
}

void KafkaSource::release_queues() {
  group_lag_.reset();  // its thread asks the consumer
  committer_.reset();  // its queue before the consumer
  feeds_.reset();      // the partitions' queues and the messages they hold, likewise
  if (consumer_queue_) {
    rd_kafka_queue_io_event_enable(consumer_queue_, -1, nullptr, 0);
    rd_kafka_queue_destroy(consumer_queue_);
    consumer_queue_ = nullptr;
  }
}

void KafkaSource::release_consumer() {
  release_kafka_consumer(consumer_, consumer_events_, ever_assigned_, cooperative_sticky_);
}

// The event path's Kafka end: the consumer's own queue (rebalances, errors, statistics, and
// messages of a partition whose queue was not set apart yet), then the partitions' events in
// event-time order, at most a batch of them. Returns when to wait until (nothing could go), or
// nothing when it stopped at the end of a batch.
std::optional<KafkaSource::Clock::time_point> KafkaSource::consume_some() {
  rd_kafka_t* rk = consumer_->c_ptr();
  drain_wake();
  auto now = Clock::now();
  for (int i = 0; i < 10'000; ++i) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 0);  // serves rebalance_cb and event_cb
    if (!m) break;
    if (m->rkt &&
        (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
      feeds_->route(m, now);  // takes it
      continue;
    }
    consume_error(m->err, rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
  }
  feeds_->refresh(now);
  constexpr int kBatch = 1024;
  PartitionFeeds::Ready ready;
  Clock::time_point wait_until = Clock::time_point::max();
  for (int n = 0; n < kBatch; ++n) {
    if ((n & 63) == 63) now = Clock::now();
    if (!feeds_->next(ready, now, wait_until)) return wait_until;
    process(ready.message, *ready.event);
    feeds_->done(now);
  }
  return std::nullopt;
}

// Until a partition's queue or the consumer's gets something (librdkafka writes to the pipe), or
// until `until`.
void KafkaSource::wait_for_input(Clock::time_point until) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
  if (ms <= 0) return;
  pollfd p{wake_[0], POLLIN, 0};
  ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(ms, 1000)));
}

void KafkaSource::drain_wake() {
  char buf[256];
  while (::read(wake_[0], buf, sizeof buf) > 0) {
  }
}

// Every assigned partition read to its end, or none assigned for a while (another member of the
// group has them all, or the group has not settled): no event will carry time.
bool KafkaSource::input_idle(Clock::time_point now) {
  if (feeds_->assigned_count() > 0) {
    no_partitions_since_ = now;
    return feeds_->idle();
  }
  return now - no_partitions_since_ >= kUnassignedIdle;
}

void KafkaSource::consume_error(rd_kafka_resp_err_t err, const char* text) {
  if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF || err == RD_KAFKA_RESP_ERR__TIMED_OUT) return;
  metrics_.consume_errors.Increment();
  std::uint64_t suppressed = 0;
  if (error_limiter_.allow(kConsumeError, suppressed))
    spdlog::warn("kafka consume error: {}{}", text ? text : rd_kafka_err2str(err),
                 suppressed ? fmt::format(" [{} similar suppressed]", suppressed) : "");
}

// PartitionFeeds::Handler: librdkafka's error on a partition.
void KafkaSource::error(const rd_kafka_message_t& m) {
  consume_error(m.err, rd_kafka_message_errstr(&m));
}

// PartitionFeeds::Handler: read again after this process lost the partition (a session timeout,
// a rebalance) and got it back: the detectors' windows hold this event already; a second pass
// would count it twice (and take a finding for one already published).
bool KafkaSource::skip(const PartitionFeeds::Message& m) {
  const TopicPartitionKey key{std::string(m.topic), m.partition};
  const auto seen = seen_until_.find(key);
  if (seen == seen_until_.end() || m.offset >= seen->second) return false;
  next_offsets_[key] = m.offset + 1;
  dirty_ = true;
  return true;
}

// An event whose turn came (PartitionFeeds: the oldest of the partitions' next events), decoded.
void KafkaSource::process(const PartitionFeeds::Message& msg, Event& event) {
  const TopicPartitionKey key{std::string(msg.topic), msg.partition};
  const auto t0 = Clock::now();
  // An event the profile store already includes (processed, then the process died before its
  // Kafka offset was committed) runs through the detectors but does not count twice.
  const bool included =
      store_ && msg.offset < store_->position(key.first + "/" + std::to_string(key.second));
  // Taken over from another member, which processed it and published its findings (see
  // start_warmup()); this member's profiles learn it, its findings are not published again.
  const auto taken = taken_over_until_.find(key);
  const bool inherited = taken != taken_over_until_.end() && msg.offset < taken->second;
  // Read again after a late assignment (see restart_if_late()): the profiles have it; a finding
  // it raises is published unless exactly that finding was published before.
  const auto rebuilt_it = rebuild_until_.find(key);
  const bool rebuilt = rebuilt_it != rebuild_until_.end() && msg.offset < rebuilt_it->second;
  pipeline_.process(event, {.findings_published = inherited || (included && !rebuilt),
                            .profiles_include = included || rebuilt,
                            .read_again = rebuilt});
  if (included || inherited || rebuilt) metrics_.events_warmup.Increment();
  metrics_.processing_latency.Observe(std::chrono::duration<double>(Clock::now() - t0).count());
  finished(key, msg.offset);
}

// Fully processed (its findings queued for delivery; the commit waits for that delivery).
void KafkaSource::finished(const TopicPartitionKey& key, std::int64_t offset) {
  seen_until_[key] = offset + 1;
  next_offsets_[key] = offset + 1;
  mark_warmup(key, offset);
  dirty_ = true;
  if (on_processed_) on_processed_(key.first, key.second, offset);
}

// PartitionFeeds::Handler: counted by the engine; logged (within limits) and copied to the dead
// letter topic.
void KafkaSource::rejected(const PartitionFeeds::Message& msg, const Engine::Result& r) {
  const TopicPartitionKey key{std::string(msg.topic), msg.partition};
  std::uint64_t suppressed = 0;
  if (reject_limiter_.allow(static_cast<size_t>(r.reason), suppressed))
    spdlog::warn("rejected message {}/{}@{} ({}): {}{}", key.first, key.second, msg.offset,
                 to_string(r.reason), r.detail,
                 suppressed ? fmt::format(" [{} similar suppressed]", suppressed) : "");
  outputs_.dead_letter(msg.topic, msg.partition, msg.offset, msg.key, msg.payload, r.reason);
  finished(key, msg.offset);
}

// RebalanceCb, for both the eager and the cooperative protocol.
void KafkaSource::rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                               std::vector<RdKafka::TopicPartition*>& partitions) {
  metrics_.rebalances.Increment();
  const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
  std::string list;
  for (auto* p : partitions)
    list += (list.empty() ? "" : ",") + p->topic() + "/" + std::to_string(p->partition());
  if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
    ever_assigned_ = true;
    spdlog::info("kafka: assigned {} ({})", list.empty() ? "nothing" : list,
                 cooperative ? "cooperative" : "eager");
    restart_if_late(*consumer, partitions, cooperative);
    start_warmup(*consumer, partitions);
    // Each partition's queue is set apart before fetching starts (librdkafka then keeps it so).
    feeds_->assigned(keys_of(partitions), Clock::now());
    if (cooperative) {
      if (RdKafka::Error* e = consumer->incremental_assign(partitions)) {
        spdlog::error("kafka: incremental assign failed: {}", e->str());
        delete e;
      }
    } else {
      consumer->assign(partitions);
    }
  } else if (err == RdKafka::ERR__REVOKE_PARTITIONS) {
    spdlog::info("kafka: revoked {} ({})", list.empty() ? "nothing" : list,
                 cooperative ? "cooperative" : "eager");
    // Commit what we finished on these partitions before another consumer takes them.
    commit_processed(&partitions);
    feeds_->revoked(keys_of(partitions));  // what they held unprocessed is the next owner's
    if (cooperative) {
      if (RdKafka::Error* e = consumer->incremental_unassign(partitions)) {
        spdlog::error("kafka: incremental unassign failed: {}", e->str());
        delete e;
      }
    } else {
      consumer->unassign();
    }
    for (auto* p : partitions) {
      next_offsets_.erase({p->topic(), p->partition()});
      // warmup_marks_ stay (commits shrink them): a partition assigned again (eager: every
      // partition is revoked before each assignment) may have to be read again from its warm-up
      // point (restart_if_late()).
      rebuild_until_.erase({p->topic(), p->partition()});
      group_behind_.erase({p->topic(), p->partition()});
      taken_over_until_.erase({p->topic(), p->partition()});
      lag_from_.erase({p->topic(), p->partition()});
    }
  } else {
    spdlog::error("kafka: rebalance error: {}", RdKafka::err2str(err));
    feeds_->revoke_all();
    lag_from_.clear();
    consumer->unassign();
  }
}

// Commits the next offset of every fully processed partition (or only of `only`), after every
// finding produced so far has been delivered: a crash never commits past an undelivered alert.
//
// The periodic commit (wait false) never blocks the event loop for long: findings get a short
// wait to be delivered (else the commit waits for the next round) and the offsets go out
// asynchronously, their outcome served at the next round. While a broker or the group coordinator
// is unreachable, a blocking commit would stall processing, metrics and the watchdog for as long
// as the session timeout. Revocation and shutdown (wait true) wait for the outcome, all waits
// together within wait_ms (shutdown gives what its time limit leaves).
void KafkaSource::commit_processed(const std::vector<RdKafka::TopicPartition*>* only, bool wait,
                                   int wait_ms) {
  auto until = Clock::now() + std::chrono::milliseconds(wait_ms);
  if (stop_deadline_) until = std::min(until, *stop_deadline_);
  const auto budget = [&](int most) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    return static_cast<int>(std::clamp<std::int64_t>(left, 0, most));
  };
  // Outcomes of earlier asynchronous commits first: a failed one makes its partitions due again.
  // A commit that waits (revocation, shutdown) waits for them too.
  if (wait)
    committer_->drain(budget(5000));
  else
    committer_->serve(0);
  if (!dirty_ && !only) return;
  std::vector<RdKafka::TopicPartition*> offsets;
  for (const auto& [tp, next] : next_offsets_) {
    if (only) {
      bool wanted = false;
      for (auto* p : *only) wanted |= p->topic() == tp.first && p->partition() == tp.second;
      if (!wanted) continue;
    }
    // Still warming up (re-reading what the store already includes): nothing new to commit,
    // and the stored position and the group's offset must not move back. Unless the store has
    // it but the group's commit failed: then the group gets it again.
    if (store_ && next <= store_->position(tp.first + "/" + std::to_string(tp.second))) {
      const auto behind = group_behind_.find(tp);
      if (behind == group_behind_.end() || next < behind->second) continue;
    }
    // Re-reading what another member processed: the group's offset must not move back.
    if (const auto taken = taken_over_until_.find(tp);
        taken != taken_over_until_.end() && next <= taken->second)
      continue;
    // Re-reading what this process had read before a late assignment: likewise (from where it
    // had read to on, the offset is the one its first reading would have committed).
    if (const auto rebuilt = rebuild_until_.find(tp);
        rebuilt != rebuild_until_.end() && next < rebuilt->second)
      continue;
    offsets.push_back(RdKafka::TopicPartition::create(tp.first, tp.second, next));
  }
  if (offsets.empty()) return;
  if (outputs_.producing()) {
    outputs_.send_failed_again();
    const auto rc = outputs_.flush(wait ? budget(only ? 10000 : 2000) : 100);
    if (rc != RdKafka::ERR_NO_ERROR || outputs_.delivery_failed()) {
      // Keep the offsets uncommitted until every finding is delivered. A periodic round that
      // only found deliveries in flight is deferred to the next; for long, it is a problem.
      const auto now = Clock::now();
      if (!commit_deferred_since_) commit_deferred_since_ = now;
      std::uint64_t suppressed = 0;
      if ((wait || outputs_.delivery_failed() ||
           now - *commit_deferred_since_ >= std::chrono::seconds(10)) &&
          error_limiter_.allow(kNotDelivered, suppressed)) {
        spdlog::warn("kafka: findings not yet delivered ({}); offsets not committed for {:.1f} s{}",
                     !outputs_.delivery_failed() ? RdKafka::err2str(rc) : "a delivery failed",
                     std::chrono::duration<double>(now - *commit_deferred_since_).count(),
                     suppressed ? fmt::format(" [{} similar suppressed]", suppressed) : "");
        metrics_.commit_failures.Increment();
      }
      delete_partitions(offsets);
      return;
    }
    commit_deferred_since_.reset();
  }
  // Ledger entries whose window ended before the watermark cannot suppress anything any more.
  const std::vector<std::string> forget = ledger_.prune(engine_.watermark());
  // A late assignment reads the warm-up period again (restart_if_late()).
  ledger_.forget_published_before(engine_.watermark() - config_.state.warmup_ms);
  // The marks of partitions this process no longer holds shrink as stream time moves on, to the
  // last one (where it stopped reading): a partition held once costs one mark, not a warm-up's.
  for (const auto& held : warmup_marks_)
    if (!next_offsets_.count(held.first))
      warmup_offset(held.first, engine_.watermark() - config_.state.warmup_ms);
  const std::map<std::string, std::int64_t> warmups = warmup_offsets(offsets);
  if (store_) {
    // Profiles first, with the positions they include: a crash between the two replays events
    // the store already has, which process() then does not apply twice.
    std::map<std::string, std::int64_t> positions;
    for (auto* p : offsets) {
      const std::string tp = p->topic() + "/" + std::to_string(p->partition());
      if (p->offset() > store_->position(tp)) positions[tp] = p->offset();
    }
    std::string error;
    if (!store_->commit(positions, true, error, forget, warmups)) {
      spdlog::error("{}; offsets not committed this round", error);
      metrics_.commit_failures.Increment();
      delete_partitions(offsets);
      return;
    }
  }
  consumer_->offsets_store(offsets);
  if (!only) dirty_ = false;
  // Each offset goes with its partition's warm-up offset, for a member that takes it over.
  std::map<TopicPartitionKey, std::int64_t> next, warmup;
  for (auto* p : offsets) {
    next[{p->topic(), p->partition()}] = p->offset();
    const auto w = warmups.find(p->topic() + "/" + std::to_string(p->partition()));
    if (w != warmups.end()) warmup[{p->topic(), p->partition()}] = w->second;
  }
  committer_->commit(next, warmup, !wait, budget(10000));
  delete_partitions(offsets);
}

// A commit's outcome (a synchronous one at once, an asynchronous one when served).
void KafkaSource::commit_done(int err, const std::vector<GroupCommitter::Result>& results) {
  for (const auto& r : results)
    if (!err) err = r.err;
  if (!err) {
    metrics_.commits.Increment();
    for (const auto& r : results) {
      auto it = group_behind_.find({r.topic, r.partition});
      if (it != group_behind_.end() && it->second <= r.offset) group_behind_.erase(it);
    }
    return;
  }
  // The state store has these positions already; the group gets them again at the next round.
  for (const auto& r : results) group_behind_[{r.topic, r.partition}] = r.offset;
  dirty_ = true;
  metrics_.commit_failures.Increment();
  std::uint64_t suppressed = 0;
  if (error_limiter_.allow(kCommitFailed, suppressed))
    spdlog::warn("kafka: offset commit failed: {}{}",
                 RdKafka::err2str(static_cast<RdKafka::ErrorCode>(err)),
                 suppressed ? fmt::format(" [{} similar suppressed]", suppressed) : "");
}

// One mark a second of event time per partition: (watermark, offset of the event then).
void KafkaSource::mark_warmup(const TopicPartitionKey& tp, std::int64_t offset) {
  auto& marks = warmup_marks_[tp];
  const TimeMs wm = engine_.watermark();
  if (marks.empty() || wm >= marks.back().first + kSecondMs) marks.emplace_back(wm, offset);
}

// Where each partition's warm-up would start if the daemon stopped now: the last mark at or
// before (watermark - warm-up period).
std::map<std::string, std::int64_t> KafkaSource::warmup_offsets(
    const std::vector<RdKafka::TopicPartition*>& offsets) {
  std::map<std::string, std::int64_t> out;
  const TimeMs from = engine_.watermark() - config_.state.warmup_ms;
  for (auto* p : offsets)
    if (const auto offset = warmup_offset({p->topic(), p->partition()}, from))
      out[p->topic() + "/" + std::to_string(p->partition())] = *offset;
  return out;
}

// The offset of the partition's last mark at or before stream time `from` (the marks before it
// go); none without marks.
std::optional<std::int64_t> KafkaSource::warmup_offset(const TopicPartitionKey& tp, TimeMs from) {
  const auto it = warmup_marks_.find(tp);
  if (it == warmup_marks_.end() || it->second.empty()) return std::nullopt;
  auto& marks = it->second;
  while (marks.size() > 1 && marks[1].first <= from) marks.pop_front();
  return marks.front().second;
}

// A partition new to this process, assigned while it holds partitions it has read (the second
// step of an assignment, a member leaving the group): its events are likely older than this
// process's stream time and would all be late. Detection starts again from nothing and the
// partitions it holds are read again from their warm-up points (the last mark at or before
// stream time less state.warmup_minutes), merged in event-time order with the new ones, as
// after a restart (Pipeline::restart): the events read again change no profile and move no
// committed offset back, and a finding they raise is published unless exactly that finding was
// published already (EventOrigin::read_again).
void KafkaSource::restart_if_late(RdKafka::KafkaConsumer& consumer,
                                  std::vector<RdKafka::TopicPartition*>& partitions,
                                  bool cooperative) {
  bool late = false;
  for (auto* p : partitions)
    late |= seen_until_.find({p->topic(), p->partition()}) == seen_until_.end();
  if (!late || engine_.watermark() == 0) return;  // nothing read yet
  // The partitions read before that are in this list (eager: every partition is revoked first
  // and assigned again; cooperative: lost and assigned again) and, cooperative, those that stay
  // assigned (not in this list).
  std::vector<TopicPartitionKey> held, staying;
  for (auto* p : partitions)
    if (seen_until_.count({p->topic(), p->partition()}))
      held.emplace_back(p->topic(), p->partition());
  if (cooperative)
    for (const auto& [tp, from] : lag_from_)
      if (seen_until_.count(tp) && std::find(held.begin(), held.end(), tp) == held.end())
        staying.push_back(tp);
  held.insert(held.end(), staying.begin(), staying.end());
  if (held.empty()) return;
  if (config_.state.warmup_ms <= 0) {
    spdlog::warn(
        "kafka: partitions assigned after this process moved on; with no warm-up "
        "(state.warmup_minutes: 0) their older events are late");
    return;
  }
  std::vector<DetectorInstance> fresh = build_detectors_again(config_);
  if (fresh.empty()) {
    spdlog::warn(
        "kafka: partitions assigned after this process moved on; the detectors cannot be built "
        "again from the configuration, so their older events are late");
    return;
  }
  const TimeMs from = engine_.watermark() - config_.state.warmup_ms;
  std::map<TopicPartitionKey, std::int64_t> rewind;
  for (const auto& tp : held)
    rewind[tp] = warmup_offset(tp, from).value_or(RdKafka::Topic::OFFSET_BEGINNING);
  const TimeMs stream_time = engine_.watermark();
  metrics_.sync(engine_);  // what the instances counted so far
  pipeline_.restart(std::move(fresh));
  metrics_.rebind_detectors(engine_);
  metrics_.detection_restarts.Increment();
  // The detectors hold nothing now: a partition read before and not held is new when it comes
  // back; the marks are made again as the events are read again.
  warmup_marks_.clear();
  std::int64_t again = 0;
  for (const auto& [tp, offset] : rewind) {
    const std::int64_t until = seen_until_[tp];
    rebuild_until_[tp] = std::max(rebuild_until_[tp], until);
    if (offset >= 0) again += until - offset;
  }
  seen_until_.clear();
  spdlog::warn(
      "kafka: partitions assigned after this process moved on: detection starts again at stream "
      "time {}; {} partition(s) held are read again from their warm-up points ({} events)",
      format_rfc3339(stream_time), held.size(), again);
  for (auto* p : partitions)
    if (const auto it = rewind.find({p->topic(), p->partition()}); it != rewind.end())
      p->set_offset(it->second);
  if (staying.empty()) return;
  // Those that stay assigned are sought back; what was fetched of them is dropped.
  feeds_->revoked(staying);
  rd_kafka_topic_partition_list_t* seek =
      rd_kafka_topic_partition_list_new(static_cast<int>(staying.size()));
  for (const auto& tp : staying)
    rd_kafka_topic_partition_list_add(seek, tp.first.c_str(), tp.second)->offset = rewind[tp];
  if (rd_kafka_error_t* e = rd_kafka_seek_partitions(consumer.c_ptr(), seek, 10000)) {
    spdlog::error("kafka: seeking partitions back to their warm-up points failed: {}",
                  rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  }
  for (int i = 0; i < seek->cnt; ++i)
    if (seek->elems[i].err)
      spdlog::error("kafka: {}/{}: seeking back to offset {} failed: {}", seek->elems[i].topic,
                    seek->elems[i].partition, seek->elems[i].offset,
                    rd_kafka_err2str(seek->elems[i].err));
  rd_kafka_topic_partition_list_destroy(seek);
  feeds_->assigned(staying, Clock::now());
  for (const auto& tp : staying) {
    next_offsets_.erase(tp);
    lag_from_[tp] = std::max(lag_from_[tp], rebuild_until_[tp]);
  }
}

// On assignment: a partition this daemon's store is current for is read again from its warm-up
// offset; the events up to the stored position are "included" (see process()). A partition
// another member was reading (this store is behind the group, or has never seen it) is read
// again from the warm-up offset that member committed with its offsets: its events up to the
// group's offset rebuild the windows and publish nothing, and the findings it published are
// read back from the alerts topic into the ledger, so that an attack it reported but whose
// offset it had not committed yet is not reported a second time.
void KafkaSource::start_warmup(RdKafka::KafkaConsumer& consumer,
                               std::vector<RdKafka::TopicPartition*>& partitions) {
  std::vector<std::pair<std::string, std::int32_t>> keys;
  for (auto* p : partitions) keys.emplace_back(p->topic(), p->partition());
  std::vector<GroupPosition> group;
  const bool known = committed_positions(consumer.c_ptr(), keys, group, 10000);
  bool taking_over = false;
  for (std::size_t i = 0; i < partitions.size(); ++i) {
    auto* p = partitions[i];
    const std::string tp = p->topic() + "/" + std::to_string(p->partition());
    const std::int64_t position = store_ ? store_->position(tp) : -1,
                       from = store_ ? store_->warmup(tp) : -1;
    const std::int64_t group_offset = known ? group[i].offset : -1;
    lag_from_[keys[i]] = std::max(group_offset, position);
    // The store has more than the group (a commit failed, or the partition was lost before the
    // group took it): the group gets the store's position once that is read to again.
    if (known && position > group_offset) group_behind_[keys[i]] = position;
    if (const auto rebuilt = rebuild_until_.find(keys[i]); rebuilt != rebuild_until_.end()) {
      lag_from_[keys[i]] = std::max(lag_from_[keys[i]], rebuilt->second);
      continue;  // read again from its warm-up point (restart_if_late() set the offset)
    }
    if (const auto seen = seen_until_.find(keys[i]); seen != seen_until_.end()) {
      // Assigned again to this process: its detectors still hold what it read (see process()).
      spdlog::info(
          "kafka: {}: assigned again; events before offset {} are in the detectors already", tp,
          seen->second);
      continue;
    }
    if (from >= 0 && position >= 0 && from < position && known && group_offset <= position) {
      p->set_offset(from);
      spdlog::info(
          "kafka: {}: warming up from offset {} ({} events already processed, read again to "
          "rebuild windows)",
          tp, from, position - from);
      continue;
    }
    if (known && group[i].warmup >= 0 && group[i].warmup < group_offset) {
      p->set_offset(group[i].warmup);
      taken_over_until_[keys[i]] = group_offset;
      taking_over = true;
      spdlog::info(
          "kafka: {}: taking over at offset {}; warming up from offset {} (processed by another "
          "member)",
          tp, group_offset, group[i].warmup);
      continue;
    }
    if (position >= 0 && group_offset > position)
      spdlog::info("kafka: {}: no warm-up (group at {}, this state store at {})", tp, group_offset,
                   position);
  }
  if (taking_over && !config_.kafka.alerts_topic.empty()) {
    std::string error;
    const auto published =
        read_published_findings(kafka_common_, config_.kafka.alerts_topic, kTakeoverFindings,
                                std::chrono::seconds(5), error);
    for (const auto& f : published) ledger_.remember(f.ledger_key, f.entry);
    if (!error.empty())
      spdlog::warn("kafka: taking over partitions: {}; a finding may be reported twice", error);
    spdlog::info("kafka: {} recent finding(s) read back from {} into the ledger", published.size(),
                 config_.kafka.alerts_topic);
  }
}

// Lag: per assigned partition, its high watermark (librdkafka's, from fetches and from the
// statistics' offset queries) less the next offset to process: what this process has processed,
// else where the group or the state store had got to when the partition was assigned (the events
// read again to warm up are not lag), else the partition's start.
void KafkaSource::update_lag() {
  std::int64_t lag = 0;
  std::size_t assigned = 0;
  for (const auto& [tp, from] : lag_from_) {
    ++assigned;
    std::int64_t low = 0, high = 0;
    if (consumer_->get_watermark_offsets(tp.first, tp.second, &low, &high) !=
            RdKafka::ERR_NO_ERROR ||
        high < 0)
      continue;
    std::int64_t next = std::max(from, low);
    if (const auto it = next_offsets_.find(tp); it != next_offsets_.end())
      next = std::max(next, it->second);
    if (const auto it = rebuild_until_.find(tp); it != rebuild_until_.end())
      next = std::max(next, it->second);
    if (high > next) lag += high - next;
  }
  metrics_.consumer_lag.Set(static_cast<double>(lag));
  metrics_.assigned_partitions.Set(static_cast<double>(assigned));
}

// Leaves the group (revoking the partitions, which commits once more) by `deadline`. The close
// runs in librdkafka's background (rd_kafka_consumer_close_queue) with its callbacks served here,
// because with the coordinator unreachable a blocking close() waits for as long as that lasts.
// Past the deadline the daemon stops without it: the offsets were committed as far as the cluster
// allowed, and the group gives the partitions to another member after session.timeout.ms. (The
// C++ consumer's destructor does not close again: RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE.)
void KafkaSource::close(Clock::time_point deadline) {
  group_lag_.reset();  // no question to the cluster while leaving the group
  rd_kafka_t* rk = consumer_->c_ptr();
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  if (rd_kafka_error_t* e = rd_kafka_consumer_close_queue(rk, queue)) {
    spdlog::warn("kafka: leaving the consumer group: {}", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  } else {
    // Polled as events: callbacks (event_cb) are served by the poll; the revocation comes back as
    // a rebalance event, handled by rebalance_cb as in any rebalance; the end is a terminate op.
    while (!rd_kafka_consumer_closed(rk) && Clock::now() < deadline) {
      rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 100);
      if (!ev) continue;
      if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
        std::vector<RdKafka::TopicPartition*> partitions;
        if (const rd_kafka_topic_partition_list_t* list = rd_kafka_event_topic_partition_list(ev))
          for (int i = 0; i < list->cnt; ++i)
            partitions.push_back(
                RdKafka::TopicPartition::create(list->elems[i].topic, list->elems[i].partition));
        rebalance_cb(consumer_.get(), static_cast<RdKafka::ErrorCode>(rd_kafka_event_error(ev)),
                     partitions);
        RdKafka::TopicPartition::destroy(partitions);
      }
      rd_kafka_event_destroy(ev);
    }
    if (!rd_kafka_consumer_closed(rk))
      spdlog::warn(
          "kafka: leaving the consumer group did not finish in the shutdown time (coordinator "
          "unreachable?); stopping without it: the group reassigns the partitions after "
          "session.timeout.ms");
  }
  rd_kafka_queue_destroy(queue);
}

}  // namespace portalwatch
