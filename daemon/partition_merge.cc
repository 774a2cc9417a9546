#include "daemon/partition_merge.h"

namespace portalwatch {

std::size_t PartitionMerge::add(Instant now) {
  std::size_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = slots_.size();
    slots_.emplace_back();
    heads_.push_back(kNoHead);
  }
  slots_[slot] = Slot{};
  slots_[slot].used = true;
  slots_[slot].empty_since = now;
  heads_[slot] = kNoHead;
  ++active_;
  ++empty_;
  return slot;
}

void PartitionMerge::remove(std::size_t slot) {
  Slot& s = slots_[slot];
  if (!s.used) return;
  if (heads_[slot] != kNoHead) --with_head_;
  else if (!s.at_end) --empty_;
  heads_[slot] = kNoHead;
  s.used = false;
  --active_;
  free_.push_back(slot);
}

void PartitionMerge::set_head(std::size_t slot, TimeMs t) {
  Slot& s = slots_[slot];
  if (heads_[slot] == kNoHead) {
    ++with_head_;
    if (!s.at_end) --empty_;
  }
  s.at_end = false;
  // kNoHead marks "none": an event stamped at the very end of time sorts just before it.
  heads_[slot] = t == kNoHead ? kNoHead - 1 : t;
}

void PartitionMerge::take_head(std::size_t slot, Instant now) {
  Slot& s = slots_[slot];
  if (heads_[slot] == kNoHead) return;
  s.last = heads_[slot];
  heads_[slot] = kNoHead;
  --with_head_;
  ++empty_;
  s.at_end = false;
  s.wait_expired = false;
  s.empty_since = now;
}

void PartitionMerge::set_at_end(std::size_t slot, bool at_end, Instant now) {
  Slot& s = slots_[slot];
  if (heads_[slot] != kNoHead || s.at_end == at_end) return;
  s.at_end = at_end;
  if (at_end) {
    --empty_;
  } else {
    ++empty_;
    s.wait_expired = false;
    s.empty_since = now;
  }
}

PartitionMerge::Next PartitionMerge::next(Instant now) {
  Next out;
  if (with_head_ == 0) return out;
  std::size_t best = 0;
  TimeMs oldest = kNoHead;
  for (std::size_t i = 0; i < heads_.size(); ++i)
    if (heads_[i] < oldest) {
      oldest = heads_[i];
      best = i;
    }
  if (empty_ > 0) {
    bool wait = false;
    Instant until = Instant::max();
    for (Slot& s : slots_) {
      const std::size_t i = static_cast<std::size_t>(&s - slots_.data());
      if (!s.used || s.at_end || heads_[i] != kNoHead || s.wait_expired) continue;
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
  }
  out.what = Next::What::kRelease;
  out.slot = best;
  return out;
}

}  // namespace portalwatch
