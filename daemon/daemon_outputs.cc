#include "daemon/daemon_outputs.h"

#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "daemon/kafka_client.h"

namespace portalwatch {

namespace {

// The delivery report carries the topic role and, for findings and decisions, their running
// number (the outbox entry to remove).
void* opaque(TopicRole role, std::uint64_t seq) {
  return reinterpret_cast<void*>(
      static_cast<std::uintptr_t>((seq << 8) | static_cast<std::uint64_t>(role)));
}


}  // namespace

DaemonOutputs::DaemonOutputs(const KafkaConfig& kafka, StateStore* store, Metrics& metrics,
                             const Engine& engine, PolicyEngine& policies, HookCoordinator& hooks,
                             Observers observers)
    : alerts_topic_(kafka.alerts_topic),
      decisions_topic_(kafka.decisions_topic),
      dead_letter_topic_(kafka.dead_letter_topic),
      store_(store),
      metrics_(metrics),
      engine_(engine),
      policies_(policies),
      hooks_(hooks),
      observers_(std::move(observers)) {}

bool DaemonOutputs::start_producer(const std::map<std::string, std::string>& common,
                                   RdKafka::EventCb& events, std::string& error) {
  if (alerts_topic_.empty() && dead_letter_topic_.empty() && decisions_topic_.empty()) return true;
  auto pconf_props = common;
  // Consumer-only settings would only produce warnings on the producer.
  for (const char* k :
       {"partition.assignment.strategy", "auto.offset.reset", "session.timeout.ms",
        "heartbeat.interval.ms", "max.poll.interval.ms", "group.instance.id", "group.protocol.type",
        "fetch.max.bytes", "fetch.min.bytes", "fetch.wait.max.ms", "fetch.error.backoff.ms",
        "max.partition.fetch.bytes", "queued.min.messages", "queued.max.messages.kbytes",
        "enable.partition.eof", "isolation.level", "check.crcs", "coordinator.query.interval.ms",
        "auto.commit.interval.ms"})
    pconf_props.erase(k);
  if (!pconf_props.count("linger.ms")) pconf_props["linger.ms"] = "5";
  auto pconf = make_kafka_conf(pconf_props, error);
  if (!pconf) return false;
  std::string err;
  pconf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(this), err);
  pconf->set("event_cb", &events, err);
  producer_.reset(RdKafka::Producer::create(pconf.get(), err));
  if (!producer_) {
    error = "cannot create Kafka producer: " + err;
    return false;
  }
  return true;
}

bool DaemonOutputs::open_decision_log(const std::string& path, std::string& error) {
  if (path == decision_log_path_) return true;
  std::unique_ptr<std::FILE, FileCloser> opened;
  if (!path.empty()) {
    opened.reset(std::fopen(path.c_str(), "ae"));
    if (!opened) {
      error = "cannot open the decision log " + path + ": " + std::strerror(errno);
      return false;  // the log in use, if any, stays
    }
  }
  decision_log_ = std::move(opened);
  decision_log_path_ = path;
  return true;
}

void DaemonOutputs::resend_undelivered() {
  if (!store_) return;
  std::size_t decisions = 0;
  for (const auto& e : store_->undelivered_decisions()) {
    if (decisions_topic_.empty() || !producer_) break;
    produce(TopicRole::kDecisions, decisions_topic_, e.json.data(), e.json.size(), e.key, nullptr,
            e.seq);
    ++decisions;
  }
  if (decisions)
    spdlog::warn(
        "sending again {} decision(s) whose delivery was not confirmed before the last stop",
        decisions);
  if (store_->undelivered().empty()) return;
  std::size_t sent = 0;
  for (const auto& e : store_->undelivered()) {
    if (e.seq == 0) continue;  // staged while no alerts topic was configured
    if (!alerts_topic_.empty() && producer_) {
      produce(TopicRole::kAlerts, alerts_topic_, e.json.data(), e.json.size(), e.key, nullptr,
              e.seq);
      ++sent;
    }
  }
  spdlog::warn("sending again {} finding(s) whose delivery was not confirmed before the last stop",
               sent);
}

void DaemonOutputs::publish(const Finding& f, const std::string& json,
                            const std::string& ledger_key) {
  if (cluster_) {
    const std::string id = f.id_string();
    const std::string key = owner_key(f);
    if (!cluster_->owns(key)) {
      // Another member publishes it; held in memory only (a restart of this member forgets it,
      // and its owner, or whoever takes its partition over, publishes it).
      spdlog::debug("finding {} held for the member that owns {}", id, key);
      cluster_->hold({id, cluster_->partition_of(key), json, f.entity, f.seq, ledger_key, LedgerEntry::of(f),
                      std::nullopt});
      if (observers_.on_published) observers_.on_published(ControlStream::kFindings, json);
      return;
    }
    if (cluster_->published_before(id)) {
      metrics_.cluster_published_before[0]->Increment();
      return;
    }
  }
  send_finding(f.seq, f.id_string(), f.severity, f.entity, json, ledger_key, LedgerEntry::of(f));
  if (observers_.on_finding) observers_.on_finding(f);
  if (observers_.on_published) observers_.on_published(ControlStream::kFindings, json);
}

void DaemonOutputs::send_finding(std::uint64_t seq, const std::string& id, Severity severity,
                                 const std::string& message_key, const std::string& json,
                                 const std::string& ledger_key, const LedgerEntry& entry) {
  const bool to_kafka = !alerts_topic_.empty() && producer_;
  if (store_) {
    // Written ahead of the produce: a crash from here on neither fires it again (ledger) nor
    // loses it (outbox, sent again at start-up with the same id).
    std::string error;
    if (!store_->stage_finding(ledger_key, entry, {to_kafka ? seq : 0, message_key, json},
                               engine_.next_finding_id(), error)) {
      metrics_.state_write_failures.Increment();
      spdlog::error("{}: finding {} is published but a crash could repeat it", error, id);
    }
  }
  if (severity >= Severity::kHigh)
    spdlog::warn("finding {}", json);
  else
    spdlog::info("finding {}", json);
  if (to_kafka)
    produce(TopicRole::kAlerts, alerts_topic_, json.data(), json.size(), message_key, nullptr, seq);
}

void DaemonOutputs::decide(Decision&& d) {
  const std::string json = d.to_json();
  if (cluster_) {
    const std::string id = d.id_string();
    const std::string key = owner_key(d);
    // Made from the state topic's records as this member starts (the operator's changes so far):
    // acted on when they were made.
    const bool held = !cluster_->owns(key) && !cluster_->loading();
    if (held || cluster_->loading() || cluster_->published_before(id)) {
      // Another member acts on it (or did): every member keeps the same lockdown state, and this
      // one runs no hook for it, now or after a restart, unless it takes its partition over.
      const std::string lockdown_key = PolicyEngine::key_of(d.action, d.scope);
      if (d.on) policies_.mark_hooks_done(lockdown_key, d.seq);
      const auto it = policies_.active().find(lockdown_key);
      write_lockdown(lockdown_key, d.on && it != policies_.active().end() ? &it->second : nullptr, nullptr);
      metrics_.count_decision(d, policies_.active());
      if (held) {
        spdlog::info("decision {} held for the member that owns {}", id, key);
        cluster_->hold({id, cluster_->partition_of(key), json, d.scope.key(), d.seq, {}, {}, d});
        if (observers_.on_published) observers_.on_published(ControlStream::kDecisions, json);
      } else if (!cluster_->loading()) {
        metrics_.cluster_published_before[1]->Increment();
      }
      return;
    }
  }
  act_on(d, json);
  if (observers_.on_decision) observers_.on_decision(d);
}

void DaemonOutputs::act_on(const Decision& d, const std::string& json, bool seen) {
  const std::string key = PolicyEngine::key_of(d.action, d.scope);
  const std::size_t hook_count = hooks_.hooks_for(d);
  if (d.on && hook_count == 0) policies_.mark_hooks_done(key, d.seq);  // nothing to run
  const bool to_kafka = producer_ && !decisions_topic_.empty();
  if (store_) {
    const auto it = policies_.active().find(key);
    const Lockdown* on = d.on && it != policies_.active().end() ? &it->second : nullptr;
    const OutboxEntry outbox{d.seq, d.scope.key(), json};
    write_lockdown(
        key, on, to_kafka ? &outbox : nullptr,
        fmt::format("decision {} is acted on but a restart may not know it", d.id_string()));
  }
  spdlog::warn("decision {}", json);
  if (decision_log_) {
    std::fputs((json + "\n").c_str(), decision_log_.get());
    std::fflush(decision_log_.get());
  }
  if (to_kafka)
    produce(TopicRole::kDecisions, decisions_topic_, json.data(), json.size(), d.scope.key(),
            nullptr, d.seq);
  if (!seen) {
    metrics_.count_decision(d, policies_.active());
    if (observers_.on_published) observers_.on_published(ControlStream::kDecisions, json);
  }
  if (hook_count) hooks_.run(d, key);
}

void DaemonOutputs::take_over(const std::vector<std::int32_t>& partitions) {
  if (!cluster_ || partitions.empty()) return;
  const auto started = std::chrono::steady_clock::now();
  // What the topics have now is published, whoever published it (the same finding or decision
  // has the same id on every member): what is still held after reading them to their ends was
  // not.
  if (!cluster_->catch_up(std::chrono::seconds(10)))
    spdlog::warn(
        "cluster: taking partitions over: the alerts and decisions topics were not read to their ends in "
        "10 s; what is held for these partitions is published, some of it perhaps a second time");
  // From here on this member publishes for them; what was made for them until now (held, also
  // while the topics were read) goes first, in the order it was made.
  cluster_->activate(partitions);
  std::array<std::size_t, 2> sent{};
  for (auto& h : cluster_->release(partitions)) {
    const std::size_t kind = h.decision ? 1 : 0;
    ++sent[kind];
    metrics_.cluster_taken_over[kind]->Increment();
    if (h.decision) {
      spdlog::warn("cluster: decision {} taken over: its previous owner had not published it", h.id);
      // Held, it was marked done here (another member's to act on); its hooks run now, and until
      // they have, a restart runs them again.
      if (h.decision->on)
        policies_.mark_hooks_done(PolicyEngine::key_of(h.decision->action, h.decision->scope), h.decision->seq, false);
      act_on(*h.decision, h.json, /*seen=*/true);
    } else {
      send_finding(h.seq, h.id, h.ledger_entry.severity, h.message_key, h.json, h.ledger_key, h.ledger_entry);
    }
  }
  spdlog::info(
      "cluster: took over {} partition(s) in {} ms: {} finding(s) and {} decision(s) held for them, not "
      "published by their previous owner, published",
      partitions.size(),
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count(),
      sent[0], sent[1]);
}

void DaemonOutputs::write_lockdown(const std::string& key, const Lockdown* on,
                                   const OutboxEntry* outbox, const std::string& consequence) {
  if (!store_) return;
  std::string error;
  if (store_->write_lockdown(key, on, policies_.next_decision_id(), error, outbox)) return;
  metrics_.state_write_failures.Increment();
  if (consequence.empty())
    spdlog::error("{}", error);
  else
    spdlog::error("{}: {}", error, consequence);
}

void DaemonOutputs::dead_letter(std::string_view topic, std::int32_t partition, std::int64_t offset,
                                std::string_view key, std::string_view payload, RejectReason reason) {
  if (dead_letter_topic_.empty() || !producer_) return;
  auto* headers = RdKafka::Headers::create();
  headers->add("portalwatch.reason", std::string(to_string(reason)));
  headers->add("portalwatch.source", std::string(topic) + "/" + std::to_string(partition) + "@" +
                                         std::to_string(offset));
  produce(TopicRole::kDeadLetter, dead_letter_topic_, payload.data(), payload.size(), std::string(key),
          headers);
}

void DaemonOutputs::send_failed_again() {
  std::vector<Retry> again;
  again.swap(retries_);
  for (const auto& r : again)
    produce(r.role, r.topic, r.payload.data(), r.payload.size(), r.key, nullptr, r.seq);
}

void DaemonOutputs::stop_producing(std::chrono::milliseconds wait) {
  if (producer_->flush(static_cast<int>(wait.count())) != RdKafka::ERR_NO_ERROR)
    spdlog::warn(
        "{} message(s) to Kafka not delivered at shutdown: findings among them are {} at the next "
        "start",
        producer_->outq_len(),
        store_ ? "sent again from the state store"
               : "raised again (their events' offsets were not committed)");
  // Dropped now (their delivery reports are never served), so that destroying the producer does
  // not wait for requests in flight to a broker that is not answering.
  producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT |
                   RdKafka::Producer::PURGE_NON_BLOCKING);
}

void DaemonOutputs::produce(TopicRole role, const std::string& topic, const void* data, size_t len,
                            const std::string& key, RdKafka::Headers* headers, std::uint64_t id) {
  for (;;) {
    const auto rc =
        producer_->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                           const_cast<void*>(data), len, key.empty() ? nullptr : key.data(),
                           key.size(), 0, headers, opaque(role, id));
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

void DaemonOutputs::dr_cb(RdKafka::Message& msg) {
  const auto bits = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(msg.msg_opaque()));
  const auto role = static_cast<size_t>(bits & 0xff);
  const std::uint64_t seq = bits >> 8;
  if (role >= static_cast<size_t>(TopicRole::kCount)) return;
  if (msg.err() == RdKafka::ERR_NO_ERROR) {
    metrics_.produced[role]->Increment();
    std::string error;
    const bool decision = role == static_cast<size_t>(TopicRole::kDecisions);
    if (seq && store_ &&
        !(decision ? store_->decision_delivered(seq, error) : store_->delivered(seq, error))) {
      metrics_.state_write_failures.Increment();
      spdlog::error("{}: {} {} may be sent again after a restart", error,
                    decision ? "decision" : "finding",
                    published_id({static_cast<const char*>(msg.payload()), msg.len()}));
    }
  } else {
    // librdkafka has already retried for delivery.timeout.ms. Keep the message and send it again
    // before the next commit; offsets stay behind it until it is delivered.
    metrics_.produce_failures[role]->Increment();
    spdlog::error("delivery to {} failed: {}; will retry", msg.topic_name(), msg.errstr());
    retries_.push_back({static_cast<TopicRole>(role), msg.topic_name(),
                        std::string(static_cast<const char*>(msg.payload()), msg.len()),
                        msg.key() ? *msg.key() : std::string(), seq});
  }
}

}  // namespace portalwatch
