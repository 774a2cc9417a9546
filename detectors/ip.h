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
  /// A 64-bit hash, stable within a process.
  std::uint64_t hash() const noexcept;

  bool operator==(const IpAddress&) const = default;
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
