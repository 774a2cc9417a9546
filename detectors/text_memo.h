// A small memory of what a pure function said of short texts that come back again and again (a
// portal's few dozen user agents, its AS organisation names): two-way set-associative, the set
// picked by a few bytes of the text, the slot compared whole.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

namespace portalwatch {

template <typename Value, std::size_t kSets>
class TextMemo {
 public:
  /// What was remembered for text, or nullptr. A hit becomes the first of its set.
  const Value* find(std::string_view text) {
    Slot* set = set_of(text);
    if (set[0].used && set[0].text == text) return &set[0].value;
    if (set[1].used && set[1].text == text) {
      std::swap(set[0], set[1]);
      return &set[0].value;
    }
    return nullptr;
  }
  /// Remembers value for text, in place of the less recently used of its set.
  void remember(std::string_view text, Value value) {
    Slot* set = set_of(text);
    std::swap(set[0], set[1]);
    set[0].text.assign(text);
    set[0].value = std::move(value);
    set[0].used = true;
  }
  void clear() { slots_ = {}; }

 private:
  struct Slot {
    std::string text;
    Value value{};
    bool used = false;
  };
  // The set from the text's length and eight bytes from its middle and its end: a fraction of
  // the cost of hashing 100-200 bytes. Texts made to share those bytes only share a set (misses).
  Slot* set_of(std::string_view text) {
    std::uint64_t mid = 0, tail = 0;
    if (!text.empty()) {
      std::memcpy(&mid, text.data() + text.size() / 2, std::min<std::size_t>(8, text.size() - text.size() / 2));
      std::memcpy(&tail, text.data() + (text.size() >= 8 ? text.size() - 8 : 0), std::min<std::size_t>(8, text.size()));
    }
    const std::uint64_t pick = (mid * 0x9E3779B97F4A7C15ull) ^ (tail * 0xC2B2AE3D27D4EB4Full) ^ text.size();
    return &slots_[((pick >> 40) % kSets) * 2];
  }
  std::array<Slot, 2 * kSets> slots_{};
};

}  // namespace portalwatch
