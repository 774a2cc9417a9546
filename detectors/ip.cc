#include "detectors/ip.h"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <cstring>

namespace portalwatch {

namespace {

// The common case, a dotted quad such as "198.51.100.23", without inet_pton's copy and NUL
// terminator: four decimal octets of one to three digits, no leading zeros, each at most 255.
// Exactly what inet_pton(AF_INET) accepts (tests/unit/ip_parse_test.cc compares them).
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

// A hex digit's value, or -1: one load per character.
constexpr std::array<std::int8_t, 256> kHexDigit = [] {
  std::array<std::int8_t, 256> t{};
  t.fill(-1);
  for (int c = '0'; c <= '9'; ++c) t[static_cast<size_t>(c)] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[static_cast<size_t>(c)] = static_cast<std::int8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[static_cast<size_t>(c)] = static_cast<std::int8_t>(c - 'A' + 10);
  return t;
}();

// glibc's inet_pton4 on [p, end), step for step: the dotted quad an IPv6 address may end with.
bool parse_ipv4_tail(const char* p, const char* end, std::uint8_t out[4]) noexcept {
  std::uint8_t tmp[4] = {};
  int tp = 0;  // the octet being read
  int octets = 0;
  bool saw_digit = false;
  while (p < end) {
    const char c = *p++;
    if (c >= '0' && c <= '9') {
      const unsigned next = tmp[tp] * 10u + static_cast<unsigned>(c - '0');
      if (saw_digit && tmp[tp] == 0) return false;
      if (next > 255) return false;
      tmp[tp] = static_cast<std::uint8_t>(next);
      if (!saw_digit) {
        if (++octets > 4) return false;
        saw_digit = true;
      }
    } else if (c == '.' && saw_digit) {
      if (octets == 4) return false;
      tmp[++tp] = 0;
      saw_digit = false;
    } else {
      return false;
    }
  }
  if (octets < 4) return false;
  std::memcpy(out, tmp, 4);
  return true;
}

// glibc's inet_pton6, step for step, on a string_view instead of a NUL-terminated copy: hex
// groups of one to four digits, at most one "::" standing for at least one zero group, and
// possibly a dotted quad in the last 32 bits. (A NUL or a zone id "%eth0" is rejected like any
// other character.) tests/unit/ip_parse_test.cc compares it with inet_pton.
bool parse_ipv6(std::string_view s, std::uint8_t out[16]) noexcept {
  std::uint8_t tmp[16] = {};
  int tp = 0;
  int colonp = -1;
  const char* src = s.data();
  const char* const end = src + s.size();
  if (src == end) return false;
  if (*src == ':') {
    ++src;
    if (src == end || *src != ':') return false;
  }
  const char* curtok = src;
  int xdigits_seen = 0;
  unsigned val = 0;
  while (src < end) {
    const char c = *src++;
    const int digit = kHexDigit[static_cast<unsigned char>(c)];
    if (digit >= 0) {
      if (xdigits_seen == 4) return false;
      val = (val << 4) | static_cast<unsigned>(digit);
      ++xdigits_seen;
      continue;
    }
    if (c == ':') {
      curtok = src;
      if (xdigits_seen == 0) {
        if (colonp >= 0) return false;
        colonp = tp;
        continue;
      }
      if (src == end) return false;
      if (tp + 2 > 16) return false;
      tmp[tp++] = static_cast<std::uint8_t>(val >> 8);
      tmp[tp++] = static_cast<std::uint8_t>(val);
      xdigits_seen = 0;
      val = 0;
      continue;
    }
    if (c == '.' && tp + 4 <= 16 && parse_ipv4_tail(curtok, end, tmp + tp)) {
      tp += 4;
      xdigits_seen = 0;
      break;
    }
    return false;
  }
  if (xdigits_seen > 0) {
    if (tp + 2 > 16) return false;
    tmp[tp++] = static_cast<std::uint8_t>(val >> 8);
    tmp[tp++] = static_cast<std::uint8_t>(val);
  }
  if (colonp >= 0) {
    if (tp == 16) return false;  // "::" would stand for no group at all
    const int n = tp - colonp;
    std::memmove(tmp + 16 - n, tmp + colonp, static_cast<size_t>(n));
    std::memset(tmp + colonp, 0, static_cast<size_t>(16 - n - colonp));
    tp = 16;
  }
  if (tp != 16) return false;
  std::memcpy(out, tmp, 16);
  return true;
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
  // Nothing else is a dotted quad (what inet_pton(AF_INET) accepts is exactly that).
  IpAddress a;
  if (!parse_ipv6(text, a.bytes.data())) return std::nullopt;
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  // ::ffff:a.b.c.d is the same host as a.b.c.d: aggregate them together.
  a.v4 = std::memcmp(a.bytes.data(), kMapped, 12) == 0;
  return a;
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
