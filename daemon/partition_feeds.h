// The assigned partitions of a Kafka consumer, read in event-time order (PartitionMerge).
//
// Each assigned partition is read from a queue of its own (librdkafka's partition queue, forwarded
// nowhere), so what one partition has fetched never waits behind another's. What a partition's
// queue gets is taken out at once (the messages themselves, not copies) and held in that
// partition's order until its turn, its bytes counted. The partitions together hold about
// `buffer_bytes` of messages: a partition holding more than its share (buffer_bytes over the
// partitions assigned, at least 64 KiB) is paused once its queue is emptied, so librdkafka stops
// fetching it (what arrives of it meanwhile is dropped, and fetched again), and resumed when the
// merge has read it down to three quarters of its share, from where it stopped. Beyond its share
// a partition holds at most what librdkafka had queued of it when it was emptied
// (queued.max.messages.kbytes, plus one fetch). The process holds more than the messages' bytes:
// the fetch responses they came in (one response carries many partitions and is freed with its
// last message).
// A share too small for a partition's rate costs time: a resumed partition's next fetch takes
// milliseconds to tens of milliseconds, and the merge waits for a partition that ran dry meanwhile.
//
// Each partition's next message is decoded as soon as it reaches the front, to learn its event
// time, by one decoder for all partitions; the event then keeps a copy of its text
// (keep_strings), so that the decoded heads of all partitions stay valid together. A rejected or
// skipped message goes at once, in its partition's order, through the handler.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/log.h"
#include "daemon/partition_merge.h"
#include "detectors/engine.h"

struct rd_kafka_s;
struct rd_kafka_queue_s;
struct rd_kafka_message_s;

namespace portalwatch {

class PartitionFeeds {
 public:
  using Instant = PartitionMerge::Instant;

  /// A message of an assigned partition, as the merge holds it.
  struct Message {
    std::string_view topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::string_view key;
    std::string_view payload;
  };

  /// Hears of the messages that do not go through the merge, in their partition's order.
  class Handler {
   public:
    virtual ~Handler() = default;
    /// Whether this message was processed before by this process (it lost and got back the
    /// partition): it is then dropped here.
    virtual bool skip(const Message& message) = 0;
    /// The message was rejected (the engine has counted it).
    virtual void rejected(const Message& message, const Engine::Result& result) = 0;
    /// librdkafka reported an error on the partition (not the end of it), as it was fetched.
    virtual void error(const rd_kafka_message_s& message) = 0;
  };

  /// wake_fd: written to (librdkafka's queue I/O events) whenever a partition's queue gets
  /// something while it was empty, so that the caller can wait on it. buffer_bytes: what the
  /// partitions' buffers hold together before partitions are paused.
  PartitionFeeds(rd_kafka_s* consumer, Engine& engine, Handler& handler, std::chrono::milliseconds max_wait,
                 int wake_fd, std::size_t buffer_bytes);
  ~PartitionFeeds();
  PartitionFeeds(const PartitionFeeds&) = delete;
  PartitionFeeds& operator=(const PartitionFeeds&) = delete;

  /// Partitions just assigned (call right after assign()/incremental_assign()).
  void assigned(const std::vector<std::pair<std::string, std::int32_t>>& partitions, Instant now);
  /// Partitions revoked or lost: what they held unprocessed is dropped (their offsets were not
  /// committed, so the next owner reads it).
  void revoked(const std::vector<std::pair<std::string, std::int32_t>>& partitions);
  void revoke_all();
  /// A message that came on the consumer's own queue (before its partition's queue was set apart):
  /// it goes in its partition's order, before what its queue gives. Takes ownership.
  void route(rd_kafka_message_s* message, Instant now);

  struct Ready {
    Message message;
    Event* event = nullptr;
  };
  /// Copies what every partition's queue holds into its buffer and looks again at the partitions
  /// with nothing ready (call when the wake fd was written to, and now and then).
  void refresh(Instant now);
  /// The next event in event-time order. False when none may go now: nothing is there, or a
  /// partition may still bring an older one (ask again on input, or at wait_until).
  bool next(Ready& out, Instant now, Instant& wait_until);
  /// The event next() gave was processed: it is released and its partition moves on.
  void done(Instant now);

  /// Every assigned partition is read to its end and nothing is held (also with no partitions).
  bool idle() const;
  std::size_t assigned_count() const { return feeds_.size(); }
  /// Messages fetched and not processed yet: in librdkafka's partition queues and held here.
  std::size_t held_messages() const;
  /// Bytes of the messages held here (keys and payloads).
  std::size_t held_bytes() const { return held_bytes_; }
  /// Times a partition was paused because it held more than its share.
  std::uint64_t pauses() const { return pauses_; }
  /// Assigned partitions paused now.
  std::size_t paused_count() const;
  /// Whether this assigned partition is paused now.
  bool paused(const std::string& topic, std::int32_t partition) {
    const Feed* f = find(topic, partition);
    return f && f->paused;
  }
  /// Times a partition held the others back for max_wait and time went on without it.
  std::uint64_t waits_expired() const { return merge_.waits_expired(); }

 private:
  struct Feed {
    std::string topic;
    std::int32_t partition = 0;
    rd_kafka_queue_s* queue = nullptr;
    std::deque<rd_kafka_message_s*> fetched;  // taken from the queue, in offset order
    rd_kafka_message_s* head = nullptr;       // decoded, waiting for its turn
    std::size_t bytes = 0;                    // of fetched and head
    Event event;  // head's, its text in text (keep_strings)
    std::string text;
    std::size_t slot = 0;
    bool at_end = false;
    bool paused = false;
  };
  Feed* find(const std::string& topic, std::int32_t partition);
  // Takes what the partition's queue holds; pauses it when over its share.
  void pull(Feed& f);
  // Decodes the partition's next message, dealing on the way with what is not an event.
  void fill(Feed& f, Instant now);
  // A message held by f is done with.
  void release(Feed& f, rd_kafka_message_s* m);
  void set_paused(Feed& f, bool paused);
  std::size_t share() const;
  void drop(Feed& f);
  static Message view(const Feed& f, const rd_kafka_message_s& m);

  rd_kafka_s* consumer_;
  Engine& engine_;
  std::size_t buffer_bytes_;
  std::size_t held_bytes_ = 0;
  std::uint64_t pauses_ = 0;
  LogLimiter<1> error_limiter_{std::chrono::seconds(10)};
  // Partitions dropped while paused: resumed if they are assigned again.
  std::set<std::pair<std::string, std::int32_t>> left_paused_;
  // One decoder for every partition (kept hot in the caches); each head's event keeps its own text.
  std::unique_ptr<EventDecoder> decoder_;
  std::uint64_t decoder_generation_ = 0;
  Handler& handler_;
  int wake_fd_;
  PartitionMerge merge_;
  std::vector<std::unique_ptr<Feed>> feeds_;
  std::vector<Feed*> by_slot_;
  Feed* released_ = nullptr;  // given by next(), not done() yet
  Feed* moved_ = nullptr;     // its head went: the only partition to look at for the next one
};

}  // namespace portalwatch
