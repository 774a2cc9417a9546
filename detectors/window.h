// Event-time sliding windows and bounded per-key state, the building blocks of every detector.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <absl/container/node_hash_map.h>
#include <absl/hash/hash.h>
#include <absl/strings/string_view.h>
#include <vector>

#include "detectors/ip.h"
#include "detectors/time.h"

namespace portalwatch {

/// Counts in an event-time sliding window split into kBuckets equal buckets. The window slides one
/// bucket at a time, so it covers between (kBuckets-1)/kBuckets of the window and all of it.
/// Events older than the window are not counted; events inside it but older than the newest
/// (slightly out of order) land in their own bucket. 8 bytes + 4 per bucket.
template <int kBuckets>
class SlidingWindowCounter {
 public:
  /// Adds n at event time t; span is the bucket length (window / kBuckets).
  void add(TimeMs t, TimeMs span, std::uint32_t n = 1) {
    const std::int64_t b = t / span;
    if (b > head_) advance(b);
    if (b <= head_ - kBuckets) return;  // older than the window
    counts_[static_cast<size_t>(b % kBuckets)] += n;
  }

  /// Sum over the window ending at now, or at the newest bucket when now is older (an event that
  /// arrived out of order, e.g. from another Kafka partition, is judged with everything counted
  /// after it, not only what came before).
  std::uint32_t total(TimeMs now, TimeMs span) const {
    const std::int64_t end = std::max(now / span, head_);
    std::uint32_t sum = 0;
    for (std::int64_t i = std::max<std::int64_t>(0, end - kBuckets + 1); i <= head_; ++i)
      sum += counts_[static_cast<size_t>(i % kBuckets)];
    return sum;
  }

  /// Event time of the newest bucket's end; nothing counted is newer than this.
  TimeMs newest_end(TimeMs span) const { return (head_ + 1) * span; }

 private:
  void advance(std::int64_t b) {
    const std::int64_t clear_from = std::max(head_ + 1, b - kBuckets + 1);
    for (std::int64_t i = clear_from; i <= b; ++i) counts_[static_cast<size_t>(i % kBuckets)] = 0;
    head_ = b;
  }

  std::int64_t head_ = 0;
  std::array<std::uint32_t, kBuckets> counts_{};
};

/// The first N distinct addresses of an episode (evidence), and how many distinct addresses there
/// were: exact up to N, past it an upper bound (an address not in the sample counts again), which is
/// enough to tell "one machine" from "many". 17 × N + 1 bytes.
template <int N>
struct SourceSample {
  std::array<IpAddress, N> first{};
  std::uint8_t count = 0;  // saturates at 255

  void note(const IpAddress& ip) {
    for (int i = 0; i < std::min<int>(count, N); ++i)
      if (first[static_cast<size_t>(i)] == ip) return;
    if (count < N) first[count] = ip;
    if (count < 255) ++count;
  }
  void clear() { count = 0; }
  std::vector<std::string> texts() const {
    std::vector<std::string> out;
    for (int i = 0; i < std::min<int>(count, N); ++i) out.push_back(first[static_cast<size_t>(i)].to_string());
    return out;
  }
};

/// What a keyed table reports for metrics: size, cap and evictions.
struct TableStats {
  std::string_view table;  ///< static name, e.g. "accounts"
  std::size_t keys = 0;
  std::size_t capacity = 0;
  std::uint64_t evictions = 0;    ///< live entries dropped because the table was full
  std::uint64_t expirations = 0;  ///< idle entries removed after their state aged out
  std::size_t bytes_per_key = 0;  ///< documented estimate, including hash-table overhead
};

/// Abseil's string hash, a few instructions per 16 bytes (std::hash is MurmurHash, byte by byte at
/// the end). Abseil has no hash for std::string_view when, as in Debian's build, its own
/// string_view is a separate type: hence the conversion.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return absl::Hash<absl::string_view>{}(absl::string_view(s.data(), s.size()));
  }
};

/// Per-key state with a hard cap, in an Abseil node hash map (stable addresses, SIMD-probed control
/// bytes: about 15% faster replay than std::unordered_map with all default detectors). When the table is full, idle entries (not seen for idle_ms) are
/// dropped first; if that frees too little, the least recently seen eighth of the table is evicted
/// and counted. Both are amortised O(1) per insert.
template <typename State, typename Key = std::string, typename Hash = StringHash>
class KeyedTable {
 public:
  struct Entry {
    State state{};
    TimeMs last_seen = 0;
  };
  using Map = absl::node_hash_map<Key, Entry, Hash, std::equal_to<>>;

  KeyedTable(std::string_view name, std::size_t capacity, TimeMs idle_ms)
      : name_(name), capacity_(std::max<std::size_t>(capacity, 8)), idle_ms_(idle_ms) {}

  /// The state for key, created if missing; now is the current event time.
  template <typename K>
  State& upsert(const K& key, TimeMs now) {
    auto it = map_.find(key);
    if (it == map_.end()) {
      if (map_.size() >= capacity_) make_room(now);
      it = map_.emplace(Key(key), Entry{}).first;
    }
    it->second.last_seen = std::max(it->second.last_seen, now);
    return it->second.state;
  }

  template <typename K>
  State* find(const K& key) {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second.state;
  }
  /// find, and marks the entry as seen at now.
  template <typename K>
  State* find(const K& key, TimeMs now) {
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    it->second.last_seen = std::max(it->second.last_seen, now);
    return &it->second.state;
  }

  /// Removes entries idle since before now - idle_ms.
  void expire(TimeMs now) {
    for (auto it = map_.begin(); it != map_.end();) {
      if (it->second.last_seen < now - idle_ms_) {
        map_.erase(it++);
        ++expirations_;
      } else {
        ++it;
      }
    }
  }

  /// Calls expire(now) when the idle time has passed since the last sweep, so an idle entry is gone
  /// within twice its idle time at no per-event cost. Detectors call it from on_time.
  void maybe_expire(TimeMs now) {
    if (now - last_sweep_ < std::max<TimeMs>(kSecondMs, idle_ms_)) return;
    last_sweep_ = now;
    expire(now);
  }

  std::size_t size() const { return map_.size(); }
  /// A new cap (a reload). A table above a lower cap comes down by eviction as keys are added.
  void set_capacity(std::size_t capacity) { capacity_ = std::max<std::size_t>(capacity, 8); }
  TableStats stats(std::size_t bytes_per_key) const {
    return {name_, map_.size(), capacity_, evictions_, expirations_, bytes_per_key};
  }
  /// Approximate heap bytes of one entry: the node (key and state) with its allocator overhead,
  /// and its slot (a pointer and a control byte) at the lowest load the table reaches after growing
  /// (7/16). String keys longer than 15 bytes add their own allocation.
  static constexpr std::size_t kBytesPerKey = sizeof(typename Map::value_type) + 16 + 21;
  const Map& entries() const { return map_; }

 private:
  void make_room(TimeMs now) {
    // One pass over the table: drop what has expired and, if that is not expected to free an
    // eighth, the least recently seen entries. The cut-off comes from a sample (the first entries
    // in hash order, unrelated to age), so no sort of the whole table is needed. Should the sample
    // have misjudged it, a second pass evicts by age alone, so the table never stays full (which
    // would make every insert pay for a pass).
    const size_t target = std::max<std::size_t>(1, capacity_ / 8);
    for (int pass = 0; pass < 2 && map_.size() > capacity_ - target / 2; ++pass) {
      constexpr size_t kSample = 4096;
      std::vector<TimeMs> sample;
      sample.reserve(std::min(kSample, map_.size()));
      size_t idle = 0;
      for (auto it = map_.begin(); it != map_.end() && sample.size() < kSample; ++it) {
        sample.push_back(it->second.last_seen);
        idle += it->second.last_seen < now - idle_ms_;
      }
      TimeMs cutoff = now - idle_ms_ - 1;  // expiry only
      if (pass > 0 || idle * map_.size() < target * sample.size()) {
        const size_t k = std::min(sample.size() - 1, (sample.size() * target + map_.size() - 1) / map_.size());
        std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(k), sample.end());
        cutoff = std::max(cutoff, sample[k]);
      }
      size_t evicted = 0;  // many entries seen in the same millisecond must not all go
      for (auto it = map_.begin(); it != map_.end();) {
        const TimeMs seen = it->second.last_seen;
        if (seen < now - idle_ms_) {
          ++expirations_;
        } else if (seen <= cutoff && evicted < target) {
          ++evicted;
          ++evictions_;
        } else {
          ++it;
          continue;
        }
        map_.erase(it++);
      }
    }
  }

  std::string_view name_;
  std::size_t capacity_;
  TimeMs idle_ms_;
  Map map_;
  std::uint64_t evictions_ = 0;
  std::uint64_t expirations_ = 0;
  TimeMs last_sweep_ = INT64_MIN / 2;
};

}  // namespace portalwatch
