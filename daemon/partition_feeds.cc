#include "daemon/partition_feeds.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>

#include "daemon/log.h"

namespace portalwatch {

namespace {
constexpr std::size_t kBatch = 256;            // messages taken from a partition's queue at once
constexpr std::size_t kMinShare = 64 * 1024;   // a partition's share of buffer_bytes, at least

std::size_t bytes_of(const rd_kafka_message_t& m) { return m.len + m.key_len; }
}  // namespace

PartitionFeeds::PartitionFeeds(rd_kafka_s* consumer, Engine& engine, Handler& handler,
                               std::chrono::milliseconds max_wait, int wake_fd, std::size_t buffer_bytes)
    : consumer_(consumer),
      engine_(engine),
      buffer_bytes_(buffer_bytes),
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

std::size_t PartitionFeeds::share() const {
  return std::max(kMinShare, buffer_bytes_ / std::max<std::size_t>(1, feeds_.size()));
}

PartitionFeeds::Message PartitionFeeds::view(const Feed& f, const rd_kafka_message_t& m) {
  return {f.topic, f.partition, m.offset,
          std::string_view(static_cast<const char*>(m.key), m.key ? m.key_len : 0),
          std::string_view(static_cast<const char*>(m.payload), m.payload ? m.len : 0)};
}

void PartitionFeeds::assigned(const std::vector<std::pair<std::string, std::int32_t>>& partitions, Instant now) {
  for (const auto& [topic, partition] : partitions) {
    if (find(topic, partition)) continue;
    // Paused by this consumer when it was dropped: fetched again from now on (librdkafka keeps an
    // application's pause across assignments). The partition is not being fetched yet, so this
    // only clears the flag.
    if (left_paused_.erase({topic, partition})) {
      rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(list, topic.c_str(), partition);
      rd_kafka_resp_err_t err = rd_kafka_resume_partitions(consumer_, list);
      if (!err) err = list->elems[0].err;
      rd_kafka_topic_partition_list_destroy(list);
      if (err) spdlog::warn("kafka: resuming {}/{} failed: {}", topic, partition, rd_kafka_err2str(err));
    }
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

void PartitionFeeds::release(Feed& f, rd_kafka_message_t* m) {
  const std::size_t n = bytes_of(*m);
  f.bytes -= n;
  held_bytes_ -= n;
  rd_kafka_message_destroy(m);
  if (f.paused && f.bytes <= share() / 4 * 3) set_paused(f, false);
}

void PartitionFeeds::drop(Feed& f) {
  if (released_ == &f) released_ = nullptr;
  if (moved_ == &f) moved_ = nullptr;
  // Resumed if it comes back (assigned()): not now, as it goes (nothing to fetch it for) or as the
  // consumer closes.
  if (f.paused) left_paused_.insert({f.topic, f.partition});
  if (f.head) rd_kafka_message_destroy(f.head);
  f.head = nullptr;
  for (auto* m : f.fetched) rd_kafka_message_destroy(m);
  f.fetched.clear();
  held_bytes_ -= f.bytes;
  f.bytes = 0;
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

void PartitionFeeds::set_paused(Feed& f, bool paused) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, f.topic.c_str(), f.partition);
  rd_kafka_resp_err_t err =
      paused ? rd_kafka_pause_partitions(consumer_, list) : rd_kafka_resume_partitions(consumer_, list);
  if (!err) err = list->elems[0].err;
  rd_kafka_topic_partition_list_destroy(list);
  if (err) {
    // Not paused: it goes on being fetched as far as librdkafka's queued.* settings let it. Not
    // resumed: tried again as its next message goes.
    std::uint64_t suppressed = 0;
    if (error_limiter_.allow(0, suppressed))
      spdlog::warn("kafka: {} {}/{} failed: {}{}", paused ? "pausing" : "resuming", f.topic, f.partition,
                   rd_kafka_err2str(err), suppressed ? fmt::format(" [{} similar suppressed]", suppressed) : "");
    return;
  }
  f.paused = paused;
  if (paused) ++pauses_;
}

// Everything the queue holds is taken (librdkafka's queued.* settings bound it) before a pause, so
// that what librdkafka drops of the partition while it is paused (what arrives meanwhile; it is
// fetched again from where the partition stopped) is at most one fetch.
void PartitionFeeds::pull(Feed& f) {
  if (f.paused && f.bytes <= share() / 4 * 3) set_paused(f, false);  // a failed resume, again
  if (!f.queue || f.paused) return;
  rd_kafka_message_t* batch[kBatch];
  for (;;) {
    const ssize_t n = rd_kafka_consume_batch_queue(f.queue, 0, batch, kBatch);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      f.bytes += bytes_of(*batch[i]);
      held_bytes_ += bytes_of(*batch[i]);
    }
    f.fetched.insert(f.fetched.end(), batch, batch + n);
    if (static_cast<std::size_t>(n) < kBatch) break;
  }
  if (f.bytes > share()) set_paused(f, true);
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
  f->bytes += bytes_of(*m);
  held_bytes_ += bytes_of(*m);
  if (!f->head) fill(*f, now);
}

// Brings the partition's next message to the front and decodes it; what is not an event for the
// merge (the end of the partition, an error, a message to skip or reject) is dealt with on the way.
void PartitionFeeds::fill(Feed& f, Instant now) {
  while (!f.head) {
    if (f.fetched.empty()) {
      pull(f);
      if (f.fetched.empty()) return;
    }
    rd_kafka_message_t* m = f.fetched.front();
    f.fetched.pop_front();
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      f.at_end = true;
      merge_.set_at_end(f.slot, true, now);
      release(f, m);
      continue;
    }
    if (f.at_end) {
      f.at_end = false;
      merge_.set_at_end(f.slot, false, now);
    }
    if (m->err) {
      handler_.error(*m);
      release(f, m);
      continue;
    }
    const Message message = view(f, *m);
    if (handler_.skip(message)) {
      release(f, m);
      continue;
    }
    // A reload changed how messages are read: the decoder follows before the next message (the
    // heads decoded before keep their text).
    if (decoder_generation_ != engine_.decoder_generation()) {
      engine_.configure_decoder(*decoder_);
      decoder_generation_ = engine_.decoder_generation();
    }
    const Engine::Result r = engine_.decode(*decoder_, message.payload, false, f.event);
    if (!r.accepted) {
      handler_.rejected(message, r);
      release(f, m);
      continue;
    }
    keep_strings(f.event, f.text);
    f.head = m;
    merge_.set_head(f.slot, engine_.ordering_time(f.event.timestamp));
  }
}

void PartitionFeeds::refresh(Instant now) {
  for (auto& f : feeds_) {
    pull(*f);
    if (!f->head) fill(*f, now);
  }
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
  out.message = view(*released_, *released_->head);
  out.event = &released_->event;
  return true;
}

void PartitionFeeds::done(Instant now) {
  if (!released_) return;
  Feed& f = *released_;
  released_ = nullptr;
  rd_kafka_message_t* m = f.head;
  f.head = nullptr;
  release(f, m);
  merge_.take_head(f.slot, now);
  moved_ = &f;
}

bool PartitionFeeds::idle() const {
  for (const auto& f : feeds_)
    if (f->head || !f->fetched.empty() || !f->at_end || f->paused ||
        (f->queue && rd_kafka_queue_length(f->queue) > 0))
      return false;
  return true;
}

std::size_t PartitionFeeds::paused_count() const {
  return static_cast<std::size_t>(std::count_if(feeds_.begin(), feeds_.end(), [](const auto& f) { return f->paused; }));
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
