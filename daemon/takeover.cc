#include "daemon/takeover.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "detectors/time.h"

namespace portalwatch {

namespace {
constexpr std::string_view kWarmupPrefix = "portalwatch warmup=";
}

std::string warmup_metadata(std::int64_t warmup_offset) {
  return std::string(kWarmupPrefix) + std::to_string(warmup_offset);
}

std::optional<std::int64_t> parse_warmup_metadata(std::string_view metadata) {
  if (metadata.substr(0, kWarmupPrefix.size()) != kWarmupPrefix) return std::nullopt;
  const std::string digits(metadata.substr(kWarmupPrefix.size()));
  if (digits.empty() || digits.size() > 19 || digits.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::strtoll(digits.c_str(), nullptr, 10);
}

namespace {
rd_kafka_topic_partition_list_t* commit_list(const GroupCommitter::Offsets& next, const GroupCommitter::Offsets& warmups) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(next.size()));
  for (const auto& [tp, offset] : next) {
    rd_kafka_topic_partition_t* p = rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second);
    p->offset = offset;
    const auto w = warmups.find(tp);
    if (w == warmups.end()) continue;
    const std::string meta = warmup_metadata(w->second);
    p->metadata = std::malloc(meta.size());  // freed by librdkafka with the list
    std::memcpy(p->metadata, meta.data(), meta.size());
    p->metadata_size = meta.size();
  }
  return list;
}
}  // namespace

GroupCommitter::GroupCommitter(rd_kafka_s* consumer, Done done)
    : consumer_(consumer), queue_(rd_kafka_queue_new(consumer)), done_(std::move(done)) {}

GroupCommitter::~GroupCommitter() { rd_kafka_queue_destroy(queue_); }

void GroupCommitter::on_commit(rd_kafka_s*, int err, void* offsets, void* opaque) {
  auto* self = static_cast<GroupCommitter*>(opaque);
  if (self->in_flight_) --self->in_flight_;
  self->report(err, offsets);
}

void GroupCommitter::report(int err, const void* offsets) {
  std::vector<Result> results;
  if (const auto* list = static_cast<const rd_kafka_topic_partition_list_t*>(offsets))
    for (int i = 0; i < list->cnt; ++i)
      results.push_back({list->elems[i].topic, list->elems[i].partition, list->elems[i].offset, list->elems[i].err});
  done_(err, results);
}

void GroupCommitter::commit(const Offsets& next, const Offsets& warmups, bool async, int wait_ms) {
  rd_kafka_topic_partition_list_t* list = commit_list(next, warmups);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  // Those in flight first, so that two commits never race and the group's offset never moves back.
  if (!async) drain(wait_ms);
  const auto err = rd_kafka_commit_queue(
      consumer_, list, queue_,
      [](rd_kafka_t* rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t* o, void* opaque) {
        on_commit(rk, e, o, opaque);
      },
      this);
  if (err) report(err, list);
  else ++in_flight_;
  rd_kafka_topic_partition_list_destroy(list);
  // Waiting: sent asynchronously all the same, so that an unreachable coordinator costs at most
  // wait_ms (rd_kafka_commit() waits for as long as the coordinator takes).
  if (!async) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    drain(static_cast<int>(std::max<std::int64_t>(0, left.count())));
  }
}

void GroupCommitter::drain(int wait_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (in_flight_ && std::chrono::steady_clock::now() < until) serve(100);
}

void GroupCommitter::serve(int timeout_ms) {
  while (in_flight_ && rd_kafka_queue_poll_callback(queue_, timeout_ms) > 0) timeout_ms = 0;
}

bool committed_positions(rd_kafka_s* consumer, const std::vector<std::pair<std::string, std::int32_t>>& partitions,
                         std::vector<GroupPosition>& out, int timeout_ms) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  for (const auto& [topic, partition] : partitions) rd_kafka_topic_partition_list_add(list, topic.c_str(), partition);
  const bool ok = rd_kafka_committed(consumer, list, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
  out.assign(partitions.size(), GroupPosition{});
  for (int i = 0; ok && i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& p = list->elems[i];
    out[static_cast<std::size_t>(i)].offset = p.err ? -1 : p.offset;
    if (!p.err && p.metadata && p.metadata_size) {
      const auto w = parse_warmup_metadata({static_cast<const char*>(p.metadata), p.metadata_size});
      if (w) out[static_cast<std::size_t>(i)].warmup = *w;
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  return ok;
}

std::optional<PublishedFinding> parse_published_finding(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(json.data(), json.size(), true).get(doc)) return std::nullopt;
  std::string_view id, detector, name, severity, type, value, at, start, end;
  if (doc["id"].get_string().get(id) || doc["detector"].get_string().get(detector) ||
      doc["severity"].get_string().get(severity) || doc["entity"]["type"].get_string().get(type) ||
      doc["entity"]["value"].get_string().get(value) || doc["at"].get_string().get(at) ||
      doc["window"]["start"].get_string().get(start) || doc["window"]["end"].get_string().get(end))
    return std::nullopt;
  if (doc["name"].get_string().get(name)) name = detector;  // absent when it is the detector's name
  const auto sev = parse_severity(severity);
  const auto entity_type = parse_entity_type(type);
  const auto t_at = parse_rfc3339(at), t_start = parse_rfc3339(start), t_end = parse_rfc3339(end);
  if (!sev || !entity_type || !t_at || !t_start || !t_end || id.size() < 3 || id.substr(0, 2) != "f-") return std::nullopt;
  Finding f;
  f.name = std::string(name);
  f.entity_type = *entity_type;
  f.entity = std::string(value);
  f.severity = *sev;
  f.at = *t_at;
  f.window_start = *t_start;
  f.window_end = *t_end;
  return PublishedFinding{FindingLedger::key_of(f), LedgerEntry::of(f)};
}

std::vector<PublishedFinding> read_published_findings(const std::map<std::string, std::string>& properties,
                                                      const std::string& topic, std::int64_t per_partition,
                                                      std::chrono::milliseconds timeout, std::string& error) {
  std::vector<PublishedFinding> out;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  for (const auto& [k, v] : properties) conf->set(k, v, err);  // already validated by the daemon's own clients
  conf->set("group.id", "portalwatch-takeover-reader", err);  // assign() only: never joins, never commits
  conf->set("enable.auto.commit", "false", err);
  conf->set("statistics.interval.ms", "0", err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!c) {
    error = "cannot create a reader of " + topic + ": " + err;
    return out;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left_ms = [&] {
    return static_cast<int>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count()));
  };
  RdKafka::Metadata* md = nullptr;
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(c.get(), topic, nullptr, err));
  if (!t || c->metadata(false, t.get(), &md, left_ms()) != RdKafka::ERR_NO_ERROR || !md || md->topics()->empty()) {
    delete md;
    error = "cannot read the metadata of " + topic;
    return out;
  }
  std::vector<RdKafka::TopicPartition*> parts;
  std::int64_t remaining = 0;
  for (const auto* p : *md->topics()->front()->partitions()) {
    std::int64_t low = 0, high = 0;
    if (c->query_watermark_offsets(topic, p->id(), &low, &high, left_ms()) != RdKafka::ERR_NO_ERROR) continue;
    const std::int64_t from = std::max(low, high - per_partition);
    remaining += high - from;
    if (high > from) parts.push_back(RdKafka::TopicPartition::create(topic, p->id(), from));
  }
  delete md;
  if (!parts.empty()) c->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  while (remaining > 0 && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(c->consume(std::min(100, left_ms())));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    --remaining;
    if (auto f = parse_published_finding({static_cast<const char*>(m->payload()), m->len()})) out.push_back(std::move(*f));
  }
  if (remaining > 0) error = std::to_string(remaining) + " message(s) of " + topic + " not read in time";
  c->close();
  return out;
}

}  // namespace portalwatch
