#include "detectors/ip.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace portalwatch {

namespace {

// The common case, a dotted quad such as "198.51.100.23", without inet_pton's copy and NUL
// terminator: four decimal octets of one to three digits, no leading zeros, each at most 255.
// Exactly what inet_pton(AF_INET) accepts of such text; anything else (IPv6, a malformed quad)
// returns false and goes through inet_pton, which decides.
bool parse_dotted_quad(std::string_view s, std::uint8_t out[4]) noexcept {
  const char* p = s.data();
  const char* const end = p + s.size();
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (p == end || *p != '.') return false;
      ++p;
    }
    unsigned v = 0;
    int n = 0;
    while (p != end && *p >= '0' && *p <= '9' && n < 4) {
      v = v * 10 + static_cast<unsigned>(*p - '0');
      ++p;
      ++n;
    }
    if (n == 0 || n > 3 || v > 255 || (n > 1 && p[-n] == '0')) return false;
    out[octet] = static_cast<std::uint8_t>(v);
  }
  return p == end;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) noexcept {
  if (text.size() >= 7 && text.size() <= 15) {
    IpAddress a;
    if (parse_dotted_quad(text, a.bytes.data() + 12)) {
      a.v4 = true;
      a.bytes[10] = 0xff;
      a.bytes[11] = 0xff;
      return a;
    }
  }
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
  // inet_pton stops at a NUL: "1.2.3.4\0junk" is not an address.
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  in_addr v4{};
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    a.v4 = true;
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    std::memcpy(a.bytes.data() + 12, &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, buf, &v6) == 1) {
    std::memcpy(a.bytes.data(), &v6, 16);
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    // ::ffff:a.b.c.d is the same host as a.b.c.d: aggregate them together.
    a.v4 = std::memcmp(a.bytes.data(), kMapped, 12) == 0;
    return a;
  }
  return std::nullopt;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  if (v4) {
    inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  }
  return buf;
}

IpAddress IpAddress::masked(int prefix_len) const noexcept {
  IpAddress out = *this;
  int bits = v4 ? prefix_len + 96 : prefix_len;
  if (bits < 0) bits = 0;
  if (bits >= 128) return out;  // every event's IPv4 source at the default /32
  // The address as two big-endian halves, each masked with one operation.
  auto keep = [](int n) -> std::uint64_t { return n <= 0 ? 0 : n >= 64 ? ~std::uint64_t{0} : ~std::uint64_t{0} << (64 - n); };
  std::uint64_t hi, lo;
  std::memcpy(&hi, out.bytes.data(), 8);
  std::memcpy(&lo, out.bytes.data() + 8, 8);
  hi = __builtin_bswap64(__builtin_bswap64(hi) & keep(bits));
  lo = __builtin_bswap64(__builtin_bswap64(lo) & keep(bits - 64));
  std::memcpy(out.bytes.data(), &hi, 8);
  std::memcpy(out.bytes.data() + 8, &lo, 8);
  return out;
}

bool IpAddress::in(const IpAddress& net, int prefix_len) const noexcept {
  if (v4 != net.v4) return false;
  return masked(prefix_len).bytes == net.masked(prefix_len).bytes;
}

std::optional<IpNetwork> IpNetwork::parse(std::string_view text) noexcept {
  const auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  const int max_len = addr->v4 ? 32 : 128;
  int len = max_len;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (digits.empty() || ec != std::errc() || ptr != digits.data() + digits.size() || len < 0 ||
        len > max_len)
      return std::nullopt;
  }
  return IpNetwork{addr->masked(len), len};
}

std::string IpNetwork::to_string() const { return base.to_string() + "/" + std::to_string(prefix_len); }

}  // namespace portalwatch
