#include "daemon/partition_feeds.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>

namespace portalwatch {

namespace {
constexpr std::size_t kBatch = 256;  // messages taken from a partition's queue at once
}

PartitionFeeds::PartitionFeeds(rd_kafka_s* consumer, Engine& engine, Handler& handler,
                               std::chrono::milliseconds max_wait, int wake_fd)
    : consumer_(consumer),
      engine_(engine),
      decoder_(engine.make_decoder()),
      decoder_generation_(engine.decoder_generation()),
      handler_(handler),
      wake_fd_(wake_fd),
      merge_(max_wait) {}

PartitionFeeds::~PartitionFeeds() { revoke_all(); }

PartitionFeeds::Feed* PartitionFeeds::find(const std::string& topic, std::int32_t partition) {
  for (auto& f : feeds_)
    if (f->partition == partition && f->topic == topic) return f.get();
  return nullptr;
}

void PartitionFeeds::assigned(const std::vector<std::pair<std::string, std::int32_t>>& partitions, Instant now) {
  for (const auto& [topic, partition] : partitions) {
    if (find(topic, partition)) continue;
    auto f = std::make_unique<Feed>();
    f->topic = topic;
    f->partition = partition;
    f->queue = rd_kafka_queue_get_partition(consumer_, topic.c_str(), partition);
    if (f->queue) {
      // Its messages stay in its own queue (librdkafka keeps an application's forwarding).
      rd_kafka_queue_forward(f->queue, nullptr);
      static const char kWake = 'p';
      rd_kafka_queue_io_event_enable(f->queue, wake_fd_, &kWake, 1);
    }
    f->slot = merge_.add(now);
    if (by_slot_.size() <= f->slot) by_slot_.resize(f->slot + 1, nullptr);
    by_slot_[f->slot] = f.get();
    feeds_.push_back(std::move(f));
  }
}

void PartitionFeeds::drop(Feed& f) {
  if (released_ == &f) released_ = nullptr;
  if (moved_ == &f) moved_ = nullptr;
  if (f.head) rd_kafka_message_destroy(f.head);
  f.head = nullptr;
  for (auto* m : f.fetched) rd_kafka_message_destroy(m);
  f.fetched.clear();
  if (f.queue) {
    rd_kafka_queue_io_event_enable(f.queue, -1, nullptr, 0);
    rd_kafka_queue_destroy(f.queue);
    f.queue = nullptr;
  }
  merge_.remove(f.slot);
  by_slot_[f.slot] = nullptr;
}

void PartitionFeeds::revoked(const std::vector<std::pair<std::string, std::int32_t>>& partitions) {
  for (const auto& [topic, partition] : partitions) {
    auto it = std::find_if(feeds_.begin(), feeds_.end(),
                           [&](const auto& f) { return f->partition == partition && f->topic == topic; });
    if (it == feeds_.end()) continue;
    drop(**it);
    feeds_.erase(it);
  }
}

void PartitionFeeds::revoke_all() {
  for (auto& f : feeds_) drop(*f);
  feeds_.clear();
}

void PartitionFeeds::route(rd_kafka_message_s* m, Instant now) {
  Feed* f = m->rkt ? find(rd_kafka_topic_name(m->rkt), m->partition) : nullptr;
  if (!f) {
    rd_kafka_message_destroy(m);
    return;
  }
  // Came before the partition's queue was set apart: older than what that queue holds.
  auto at = f->fetched.begin();
  while (at != f->fetched.end() && (*at)->offset <= m->offset) ++at;
  f->fetched.insert(at, m);
  if (!f->head) fill(*f, now);
}

// Brings the partition's next message to the front and decodes it; what is not an event for the
// merge (the end of the partition, an error, a message to skip or reject) is dealt with on the way.
void PartitionFeeds::fill(Feed& f, Instant now) {
  while (!f.head) {
    if (f.fetched.empty()) {
      if (!f.queue) return;
      rd_kafka_message_t* batch[kBatch];
      const ssize_t n = rd_kafka_consume_batch_queue(f.queue, 0, batch, kBatch);
      if (n <= 0) return;
      f.fetched.insert(f.fetched.end(), batch, batch + n);
    }
    rd_kafka_message_t* m = f.fetched.front();
    f.fetched.pop_front();
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      f.at_end = true;
      merge_.set_at_end(f.slot, true, now);
      rd_kafka_message_destroy(m);
      continue;
    }
    if (f.at_end) {
      f.at_end = false;
      merge_.set_at_end(f.slot, false, now);
    }
    if (m->err) {
      handler_.error(*m);
      rd_kafka_message_destroy(m);
      continue;
    }
    if (handler_.skip(*m)) {
      rd_kafka_message_destroy(m);
      continue;
    }
    // A reload changed how messages are read: the decoder follows before the next message (the
    // heads decoded before keep their text).
    if (decoder_generation_ != engine_.decoder_generation()) {
      engine_.configure_decoder(*decoder_);
      decoder_generation_ = engine_.decoder_generation();
    }
    const std::string_view payload(static_cast<const char*>(m->payload), m->len);
    const Engine::Result r = engine_.decode(*decoder_, payload, false, f.event);
    if (!r.accepted) {
      handler_.rejected(*m, r);
      rd_kafka_message_destroy(m);
      continue;
    }
    keep_strings(f.event, f.text);
    f.head = m;
    merge_.set_head(f.slot, engine_.ordering_time(f.event.timestamp));
  }
}

void PartitionFeeds::refresh(Instant now) {
  for (auto& f : feeds_)
    if (!f->head) fill(*f, now);
}

bool PartitionFeeds::next(Ready& out, Instant now, Instant& wait_until) {
  if (moved_) {
    fill(*moved_, now);
    moved_ = nullptr;
  }
  PartitionMerge::Next n = merge_.next(now);
  if (n.what != PartitionMerge::Next::What::kRelease) {
    // Something may have come for the partitions with nothing ready since they were looked at.
    refresh(now);
    n = merge_.next(now);
    if (n.what != PartitionMerge::Next::What::kRelease) {
      wait_until = n.what == PartitionMerge::Next::What::kWait ? n.until : Instant::max();
      return false;
    }
  }
  released_ = by_slot_[n.slot];
  out.message = released_->head;
  out.event = &released_->event;
  return true;
}

void PartitionFeeds::done(Instant now) {
  if (!released_) return;
  Feed& f = *released_;
  released_ = nullptr;
  rd_kafka_message_destroy(f.head);
  f.head = nullptr;
  merge_.take_head(f.slot, now);
  moved_ = &f;
}

bool PartitionFeeds::idle() const {
  for (const auto& f : feeds_)
    if (f->head || !f->fetched.empty() || !f->at_end || (f->queue && rd_kafka_queue_length(f->queue) > 0)) return false;
  return true;
}

std::size_t PartitionFeeds::held_messages() const {
  std::size_t n = 0;
  for (const auto& f : feeds_) {
    n += f->fetched.size() + (f->head ? 1 : 0);
    if (f->queue) n += rd_kafka_queue_length(f->queue);
  }
  return n;
}

}  // namespace portalwatch
