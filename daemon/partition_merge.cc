#include "daemon/partition_merge.h"

namespace portalwatch {

namespace {

constexpr std::size_t kNowhere = std::numeric_limits<std::size_t>::max();

// Takes `slot` out of `items` (whose places `at` records, kNowhere for none) by moving the last
// item into its place. Returns that place, or kNowhere when nothing moved.
std::size_t swap_out(std::vector<std::size_t>& items, std::vector<std::size_t>& at,
                     std::size_t slot) {
  const std::size_t place = at[slot];
  if (place == kNowhere) return kNowhere;
  at[slot] = kNowhere;
  const std::size_t last = items.back();
  items.pop_back();
  if (place == items.size()) return kNowhere;  // it was the last
  items[place] = last;
  at[last] = place;
  return place;
}

}  // namespace

std::size_t PartitionMerge::add(Instant now) {
  std::size_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = slots_.size();
    slots_.emplace_back();
    heads_.push_back(kNoHead);
    heap_at_.push_back(kNowhere);
    empty_at_.push_back(kNowhere);
  }
  slots_[slot] = Slot{};
  slots_[slot].used = true;
  slots_[slot].empty_since = now;
  heads_[slot] = kNoHead;
  ++active_;
  empty_add(slot);
  return slot;
}

void PartitionMerge::remove(std::size_t slot) {
  Slot& s = slots_[slot];
  if (!s.used) return;
  if (heads_[slot] != kNoHead) heap_erase(slot);
  heads_[slot] = kNoHead;
  empty_erase(slot);
  s.used = false;
  --active_;
  free_.push_back(slot);
}

void PartitionMerge::set_head(std::size_t slot, TimeMs t) {
  Slot& s = slots_[slot];
  s.at_end = false;
  empty_erase(slot);
  if (heads_[slot] != kNoHead) heap_erase(slot);
  // kNoHead marks "none": an event stamped at the very end of time sorts just before it.
  heads_[slot] = t == kNoHead ? kNoHead - 1 : t;
  heap_push(slot);
}

void PartitionMerge::take_head(std::size_t slot, Instant now) {
  Slot& s = slots_[slot];
  if (heads_[slot] == kNoHead) return;
  heap_erase(slot);
  s.last = heads_[slot];
  heads_[slot] = kNoHead;
  s.at_end = false;
  s.wait_expired = false;
  s.empty_since = now;
  empty_add(slot);
}

void PartitionMerge::set_at_end(std::size_t slot, bool at_end, Instant now) {
  Slot& s = slots_[slot];
  if (heads_[slot] != kNoHead || s.at_end == at_end) return;
  s.at_end = at_end;
  if (at_end) {
    empty_erase(slot);
  } else {
    s.wait_expired = false;
    s.empty_since = now;
    empty_add(slot);
  }
}

PartitionMerge::Next PartitionMerge::next(Instant now) {
  Next out;
  if (heap_.empty()) return out;
  const std::size_t best = heap_.front();
  const TimeMs oldest = heads_[best];
  bool wait = false;
  Instant until = Instant::max();
  for (const std::size_t i : empties_) {
    Slot& s = slots_[i];
    if (s.wait_expired) continue;
    // In its own order, its next event is no older than its last: it cannot hold an older one.
    if (s.last != kNone && s.last >= oldest) continue;
    const Instant deadline = s.empty_since + max_wait_;
    if (now >= deadline) {
      s.wait_expired = true;
      ++waits_expired_;
      continue;
    }
    wait = true;
    if (deadline < until) until = deadline;
  }
  if (wait) {
    out.what = Next::What::kWait;
    out.until = until;
    return out;
  }
  out.what = Next::What::kRelease;
  out.slot = best;
  return out;
}

void PartitionMerge::heap_push(std::size_t slot) {
  heap_.push_back(slot);
  heap_at_[slot] = heap_.size() - 1;
  sift_up(heap_.size() - 1);
}

void PartitionMerge::heap_erase(std::size_t slot) {
  const std::size_t at = swap_out(heap_, heap_at_, slot);
  if (at == kNowhere) return;
  const std::size_t moved = heap_[at];
  sift_up(at);
  sift_down(heap_at_[moved]);
}

void PartitionMerge::sift_up(std::size_t at) {
  const std::size_t slot = heap_[at];
  while (at > 0) {
    const std::size_t parent = (at - 1) / 2;
    if (!older(slot, heap_[parent])) break;
    place(at, heap_[parent]);
    at = parent;
  }
  place(at, slot);
}

void PartitionMerge::sift_down(std::size_t at) {
  const std::size_t slot = heap_[at], n = heap_.size();
  for (;;) {
    std::size_t child = 2 * at + 1;
    if (child >= n) break;
    if (child + 1 < n && older(heap_[child + 1], heap_[child])) ++child;
    if (!older(heap_[child], slot)) break;
    place(at, heap_[child]);
    at = child;
  }
  place(at, slot);
}

void PartitionMerge::empty_add(std::size_t slot) {
  if (empty_at_[slot] != kNowhere) return;
  empty_at_[slot] = empties_.size();
  empties_.push_back(slot);
}

void PartitionMerge::empty_erase(std::size_t slot) { swap_out(empties_, empty_at_, slot); }

}  // namespace portalwatch
