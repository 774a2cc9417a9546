// Memory-bounded distinct counting (HyperLogLog) for "how many different accounts did this source
// try" without a set per source.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string_view>

namespace portalwatch {

/// A 64-bit hash of bytes (wyhash-style mixing of 8-byte words); stable within and across runs.
inline std::uint64_t hash_bytes(std::string_view s, std::uint64_t seed = 0x9E3779B97F4A7C15ull) noexcept {
  std::uint64_t h = seed ^ (s.size() * 0xC2B2AE3D27D4EB4Full);
  size_t i = 0;
  auto mix = [](std::uint64_t x) {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    return x ^ (x >> 33);
  };
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    __builtin_memcpy(&w, s.data() + i, 8);
    h = mix(h ^ w) * 0x9E3779B97F4A7C15ull;
  }
  std::uint64_t tail = 0;
  for (size_t k = 0; i + k < s.size(); ++k) tail |= static_cast<std::uint64_t>(static_cast<unsigned char>(s[i + k])) << (8 * k);
  return mix(h ^ tail ^ 0xA0761D6478BD642Full);
}

/// HyperLogLog with 2^kBits four-bit registers packed two to a byte (ranks up to 15, ample for
/// tens of millions of items at kBits >= 6). Standard error about 1.04/sqrt(2^kBits): 9% at
/// kBits = 7 (64 bytes). Up to 2.5 * 2^kBits items linear counting applies and is near exact.
template <int kBits>
class DistinctCounter {
 public:
  static constexpr int kRegisters = 1 << kBits;

  void add_hash(std::uint64_t h) noexcept {
    const auto idx = static_cast<size_t>(h >> (64 - kBits));
    const std::uint64_t rest = (h << kBits) | (std::uint64_t{1} << (kBits - 1));  // never all zero
    const int rank = std::min(std::countl_zero(rest) + 1, 15);
    if (rank > get(idx)) set(idx, rank);
  }
  void add(std::string_view item) noexcept { add_hash(hash_bytes(item)); }
  void merge(const DistinctCounter& other) noexcept {
    // Register-wise maximum, two four-bit registers per byte.
    // Written on bytes (masks, no shifts) so that the compiler vectorises it.
    for (size_t i = 0; i < kRegisters / 2; ++i) {
      const std::uint8_t a = packed_[i], b = other.packed_[i];
      const std::uint8_t lo = std::max<std::uint8_t>(a & 0x0F, b & 0x0F);
      const std::uint8_t hi = std::max<std::uint8_t>(a & 0xF0, b & 0xF0);
      packed_[i] = static_cast<std::uint8_t>(lo | hi);
    }
  }
  void clear() noexcept { packed_.fill(0); }
  bool empty() const noexcept {
    for (auto b : packed_)
      if (b) return false;
    return true;
  }

  /// Estimated number of distinct items added.
  double estimate() const noexcept {
    // Per packed byte, one table entry: 2^(15-lo) + 2^(15-hi) (the two registers' 2^-rank scaled
    // by 2^15) in the low 32 bits, and how many of the two are zero in the high 32. The sum of
    // 2^-rank over the registers is a multiple of 2^-15 below 2^(kBits+1): exact in integers, and
    // exactly the value a floating-point sum register by register gives.
    static_assert(kBits >= 2 && kBits <= 16);
    static constexpr std::array<std::uint64_t, 256> kByte = [] {
      std::array<std::uint64_t, 256> a{};
      for (std::uint64_t b = 0; b < 256; ++b)
        a[b] = (std::uint64_t{1} << (15 - (b & 0xF))) + (std::uint64_t{1} << (15 - (b >> 4))) +
               ((std::uint64_t{(b & 0xF) == 0} + std::uint64_t{(b >> 4) == 0}) << 32);
      return a;
    }();
    std::uint64_t even = 0, odd = 0;  // two chains of additions, for the pipeline
    for (size_t i = 0; i < kRegisters / 2; i += 2) {
      even += kByte[packed_[i]];
      odd += kByte[packed_[i + 1]];
    }
    const std::uint64_t both = even + odd;
    const double sum = static_cast<double>(both & 0xFFFFFFFFu) / 32768.0;
    const auto zeros = static_cast<int>(both >> 32);
    constexpr double m = kRegisters;
    const double alpha = kBits == 4 ? 0.673 : kBits == 5 ? 0.697 : kBits == 6 ? 0.709 : 0.7213 / (1 + 1.079 / m);
    const double raw = alpha * m * m / sum;
    if (raw <= 2.5 * m && zeros > 0) return m * std::log(m / zeros);  // linear counting
    return raw;
  }
  std::int64_t count() const noexcept { return std::llround(estimate()); }

 private:
  int get(size_t i) const noexcept { return (packed_[i >> 1] >> ((i & 1) * 4)) & 0xF; }
  void set(size_t i, int v) noexcept {
    const int shift = static_cast<int>((i & 1) * 4);
    packed_[i >> 1] = static_cast<std::uint8_t>((packed_[i >> 1] & ~(0xF << shift)) | (v << shift));
  }
  std::array<std::uint8_t, kRegisters / 2> packed_{};
};

}  // namespace portalwatch
