// IP addresses and networks, parsed once per event so detectors can aggregate by prefix.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portalwatch {

/// An IPv4 or IPv6 address. IPv4 is stored as an IPv4-mapped IPv6 address (::ffff:a.b.c.d), so
/// one 16-byte form serves both and prefix arithmetic is uniform.
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};
  bool v4 = false;

  /// Parses dotted IPv4 or any RFC 4291 IPv6 text form (zone ids "%eth0" are rejected).
  static std::optional<IpAddress> parse(std::string_view text) noexcept;
  /// Canonical text form (RFC 5952 for IPv6).
  std::string to_string() const;
  /// The address with all bits past prefix_len cleared. For IPv4, prefix_len counts IPv4 bits.
  IpAddress masked(int prefix_len) const noexcept;
  /// Whether this address lies in net/prefix_len (same family only).
  bool in(const IpAddress& net, int prefix_len) const noexcept;
  /// A 64-bit hash, stable within a process. Inline: every keyed table asks for it per event.
  std::uint64_t hash() const noexcept {
    std::uint64_t a, b;
    __builtin_memcpy(&a, bytes.data(), 8);
    __builtin_memcpy(&b, bytes.data() + 8, 8);
    std::uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull);
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 29);
  }

  /// Two 8-byte comparisons rather than a call to memcmp.
  bool operator==(const IpAddress& o) const noexcept {
    std::uint64_t a0, a1, b0, b1;
    __builtin_memcpy(&a0, bytes.data(), 8);
    __builtin_memcpy(&a1, bytes.data() + 8, 8);
    __builtin_memcpy(&b0, o.bytes.data(), 8);
    __builtin_memcpy(&b1, o.bytes.data() + 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0 && v4 == o.v4;
  }
};

/// A CIDR network such as "10.0.0.0/8" or "2001:db8::/32".
struct IpNetwork {
  IpAddress base;
  int prefix_len = 0;  ///< in the family's own bits (0-32 for IPv4, 0-128 for IPv6)

  /// Parses "addr/len" or a bare address (a host network). nullopt on error.
  static std::optional<IpNetwork> parse(std::string_view text) noexcept;
  bool contains(const IpAddress& a) const noexcept { return a.in(base, prefix_len); }
  std::string to_string() const;
};

}  // namespace portalwatch

namespace portalwatch {

/// Hash functor so IpAddress can key a KeyedTable.
struct IpHash {
  using is_transparent = void;
  std::size_t operator()(const IpAddress& a) const noexcept { return static_cast<std::size_t>(a.hash()); }
};

}  // namespace portalwatch
