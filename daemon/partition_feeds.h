// The assigned partitions of a Kafka consumer, read in event-time order (PartitionMerge).
//
// Each assigned partition is read from a queue of its own (librdkafka's partition queue, forwarded
// nowhere), so what one partition has fetched never waits behind another's: a partition that runs
// ahead is simply not read, and librdkafka stops fetching it once its queue holds
// queued.min.messages or queued.max.messages.kbytes (which then apply per partition). Memory for
// the merge is bounded by those two settings times the partitions assigned, plus, per partition,
// the batch of up to 256 messages taken out of its queue and one decoded event (with hundreds of
// partitions per member, the messages are cold by the time their turn comes, and the event loop's
// cost per event grows; bench/run kafka measures it).
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
#include <string>
#include <utility>
#include <vector>

#include "daemon/partition_merge.h"
#include "detectors/engine.h"

struct rd_kafka_s;
struct rd_kafka_queue_s;
struct rd_kafka_message_s;

namespace portalwatch {

class PartitionFeeds {
 public:
  using Instant = PartitionMerge::Instant;

  /// Hears of the messages that do not go through the merge, in their partition's order.
  class Handler {
   public:
    virtual ~Handler() = default;
    /// Whether this message was processed before by this process (it lost and got back the
    /// partition): it is then dropped here.
    virtual bool skip(const rd_kafka_message_s& message) = 0;
    /// The message was rejected (the engine has counted it).
    virtual void rejected(const rd_kafka_message_s& message, const Engine::Result& result) = 0;
    /// librdkafka reported an error on the partition (not the end of it).
    virtual void error(const rd_kafka_message_s& message) = 0;
  };

  /// wake_fd: written to (librdkafka's queue I/O events) whenever a partition's queue gets
  /// something while it was empty, so that the caller can wait on it.
  PartitionFeeds(rd_kafka_s* consumer, Engine& engine, Handler& handler, std::chrono::milliseconds max_wait,
                 int wake_fd);
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
  /// it goes in its partition's order. Takes ownership.
  void route(rd_kafka_message_s* message, Instant now);

  struct Ready {
    rd_kafka_message_s* message = nullptr;
    Event* event = nullptr;
  };
  /// Looks again at every partition with nothing ready (call when the wake fd was written to,
  /// and now and then: a partition read to its end is not looked at otherwise).
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
  /// Times a partition held the others back for max_wait and time went on without it.
  std::uint64_t waits_expired() const { return merge_.waits_expired(); }

 private:
  struct Feed {
    std::string topic;
    std::int32_t partition = 0;
    rd_kafka_queue_s* queue = nullptr;
    std::deque<rd_kafka_message_s*> fetched;  // taken from the queue, in offset order
    rd_kafka_message_s* head = nullptr;       // decoded, waiting for its turn
    Event event;        // head's, its text in text (keep_strings)
    std::string text;
    std::size_t slot = 0;
    bool at_end = false;
  };
  Feed* find(const std::string& topic, std::int32_t partition);
  void fill(Feed& f, Instant now);
  void drop(Feed& f);

  rd_kafka_s* consumer_;
  Engine& engine_;
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
