// Which partition's event goes next: the order that makes a live stream of several partitions
// give what a replay of the same events gives.
//
// Each partition holds at most one event ready to go (its head; what follows waits in the
// partition's own queue). The head with the oldest event time goes first, as in Kafka Streams'
// PartitionGroup, so stream time advances with the slowest partition instead of the fastest and
// an event is late only if its own partition wrote it late.
//
// A partition with no head may hold the others back, because its next event may be older than
// theirs: unless it is known to be at its end (the broker said so and nothing came since), or its
// last event was already at least as new as the candidate (its next one, in its own order, is no
// older). It holds them back for at most `max_wait` in a row (Kafka Streams' max.task.idle.ms):
// then time goes on without it, and what it brings later is late (and counted as such by the
// engine). A partition far behind (a backlog) thus goes first until it has caught up.
//
// Pure logic: no Kafka, and the caller says what time it is.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "detectors/time.h"

namespace portalwatch {

class PartitionMerge {
 public:
  using Instant = std::chrono::steady_clock::time_point;

  explicit PartitionMerge(std::chrono::milliseconds max_wait) : max_wait_(max_wait) {}

  /// A partition joins (assigned), with no head and its end not known; it holds the others back
  /// from `now` (at most max_wait) until its first event or its end is known. Returns its slot.
  std::size_t add(Instant now);
  /// The partition leaves (revoked); its slot may be reused by add().
  void remove(std::size_t slot);

  /// The partition's next event, at event time t, is ready.
  void set_head(std::size_t slot, TimeMs t);
  /// Its head went (processed): it has none until set_head() again, and from `now` on it holds
  /// the others back as a partition with no head does.
  void take_head(std::size_t slot, Instant now);
  /// Without a head: the broker said it has nothing more (true), or something came (false).
  void set_at_end(std::size_t slot, bool at_end, Instant now);

  struct Next {
    enum class What { kRelease, kWait, kNothing } what = What::kNothing;
    std::size_t slot = 0;  ///< kRelease: the partition whose head goes now
    Instant until{};       ///< kWait: the latest moment to ask again without new input
  };
  /// kRelease: this slot's head goes next. kWait: a partition with nothing yet may hold an older
  /// event; ask again when input arrives or at `until`. kNothing: no partition has a head.
  Next next(Instant now);

  std::size_t active() const { return active_; }
  std::size_t with_head() const { return heap_.size(); }
  /// Times a partition's wait ran out and time went on without it.
  std::uint64_t waits_expired() const { return waits_expired_; }

 private:
  static constexpr TimeMs kNone = std::numeric_limits<TimeMs>::min();
  static constexpr TimeMs kNoHead = std::numeric_limits<TimeMs>::max();
  struct Slot {
    bool used = false;
    bool at_end = false;
    bool wait_expired = false;  // this empty spell's wait ran out (counted once)
    TimeMs last = kNone;        // event time of the last head that went
    Instant empty_since{};
  };

  // The slots with a head in a binary min-heap by (head time, slot), with each slot's place in
  // it: the oldest head in O(1), a head in or out in O(log partitions), nothing allocated once
  // the vectors have grown (a member may hold hundreds of partitions).
  bool older(std::size_t a, std::size_t b) const {
    return heads_[a] < heads_[b] || (heads_[a] == heads_[b] && a < b);
  }
  void heap_push(std::size_t slot);
  void heap_erase(std::size_t slot);
  void sift_up(std::size_t at);
  void sift_down(std::size_t at);
  void place(std::size_t at, std::size_t slot) {
    heap_[at] = slot;
    heap_at_[slot] = at;
  }
  // The used slots with no head that are not at their end (they may hold the others back), with
  // each one's place in that list.
  void empty_add(std::size_t slot);
  void empty_erase(std::size_t slot);

  std::chrono::milliseconds max_wait_;
  std::vector<Slot> slots_;
  std::vector<TimeMs> heads_;  // head time by slot, kNoHead for none
  std::vector<std::size_t> heap_, heap_at_;
  std::vector<std::size_t> empties_, empty_at_;
  std::vector<std::size_t> free_;
  std::size_t active_ = 0;
  std::uint64_t waits_expired_ = 0;
};

}  // namespace portalwatch
