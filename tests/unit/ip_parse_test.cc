// IpAddress::parse reads addresses without inet_pton; it must accept exactly what inet_pton
// accepts, with the same bytes. Compared over a generated set of texts: every address form,
// and strings built from the characters that matter.
#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "detectors/ip.h"

namespace portalwatch {
namespace {

// What IpAddress::parse returned when it handed the text to inet_pton (the reference).
std::optional<IpAddress> parse_with_inet_pton(const std::string& text) {
  if (text.find('\0') != std::string::npos) return std::nullopt;  // inet_pton would stop there
  IpAddress a;
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    a.v4 = true;
    a.bytes[10] = a.bytes[11] = 0xff;
    std::memcpy(a.bytes.data() + 12, &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) return std::nullopt;
  std::memcpy(a.bytes.data(), &v6, 16);
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  a.v4 = std::memcmp(a.bytes.data(), kMapped, 12) == 0;
  return a;
}

using Rng = std::mt19937_64;
size_t pick(Rng& rng, size_t n) { return static_cast<size_t>(rng() % n); }

// An IPv6 address written one of the ways RFC 4291 allows (and some it does not).
std::string ipv6_text(Rng& rng) {
  std::uint16_t groups[8];
  for (auto& g : groups) {
    switch (pick(rng, 4)) {
      case 0:
        g = 0;
        break;
      case 1:
        g = static_cast<std::uint16_t>(pick(rng, 16));
        break;
      default:
        g = static_cast<std::uint16_t>(rng());
        break;
    }
  }
  const bool v4_tail = pick(rng, 4) == 0;
  const int n = v4_tail ? 6 : 8;
  // "::" over a run of groups (possibly empty or everything).
  const int from = static_cast<int>(pick(rng, static_cast<size_t>(n) + 1));
  const int to = pick(rng, 3) == 0
                     ? -1
                     : from + static_cast<int>(pick(rng, static_cast<size_t>(n - from) + 1));
  std::string s;
  bool compressed = false;
  for (int i = 0; i < n; ++i) {
    if (i == from && to >= 0 && !compressed) {
      compressed = true;
      s += i == 0 ? "::" : ":";
      if (to == n) break;
      i = to;  // the next group written
    }
    char buf[8];
    static const char* const kForms[] = {"%x", "%X", "%04x", "%02x", "%05x"};
    std::snprintf(buf, sizeof buf, kForms[pick(rng, 5)], groups[i]);
    s += buf;
    if (i + 1 < n || v4_tail) s += ':';
  }
  if (v4_tail) {
    char buf[32];
    static const char* const kForms[] = {"%u.%u.%u.%u", "%u.%u.%u.%03u", "%u.%u.%u",
                                         "%u.%u.%u.%u.%u"};
    std::snprintf(buf, sizeof buf, kForms[pick(rng, 4)], unsigned(pick(rng, 300)),
                  unsigned(pick(rng, 256)), unsigned(pick(rng, 256)), unsigned(pick(rng, 256)),
                  unsigned(pick(rng, 256)));
    s += buf;
  }
  return s;
}

std::string ipv4_text(Rng& rng) {
  std::string s;
  const int octets = pick(rng, 8) == 0 ? 3 + static_cast<int>(pick(rng, 3)) : 4;
  for (int i = 0; i < octets; ++i) {
    if (i) s += '.';
    const unsigned v = pick(rng, 5) == 0 ? static_cast<unsigned>(pick(rng, 1000))
                                         : static_cast<unsigned>(pick(rng, 256));
    s += pick(rng, 10) == 0 ? "0" + std::to_string(v) : std::to_string(v);
  }
  return s;
}

std::vector<std::string> texts() {
  std::vector<std::string> out = {"",
                                  ":",
                                  "::",
                                  ":::",
                                  "::1",
                                  "1::",
                                  "1::1",
                                  "::ffff:1.2.3.4",
                                  "::ffff:0102:0304",
                                  "::1.2.3.4",
                                  "1:2:3:4:5:6:7:8",
                                  "1:2:3:4:5:6:7::",
                                  "::2:3:4:5:6:7:8",
                                  "1:2:3:4:5:6:7:8:9",
                                  "1:2:3:4:5:6:1.2.3.4",
                                  "1:2:3:4:5:6:7:1.2.3.4",
                                  "1:2:3:4:5::1.2.3.4",
                                  "fe80::1%eth0",
                                  "1.2.3.4",
                                  "01.2.3.4",
                                  "1.2.3.04",
                                  "255.255.255.255",
                                  "256.1.1.1",
                                  "1.2.3",
                                  "1.2.3.4.",
                                  ".1.2.3.4",
                                  "1..2.3",
                                  "::1.2.3",
                                  "::1.2.3.4.5",
                                  "::01.2.3.4",
                                  "::1234.5.6.7",
                                  "::ab.1.2.3",
                                  "12345::",
                                  "1:2",
                                  ":1::",
                                  "1:::2",
                                  "::1:",
                                  "1::2::3",
                                  "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
                                  "0000:0000:0000:0000:0000:0000:0000:0000",
                                  std::string("::1\0", 4),
                                  std::string("1.2.3.4\0", 8),
                                  " ::1",
                                  "::1 ",
                                  "::g",
                                  "G::"};
  Rng rng(4291);
  static const std::string alphabet = "0123456789abcdefABCDEF:.::..g% ";
  for (int i = 0; i < 200000; ++i) {
    std::string s;
    switch (i % 4) {
      case 0:
        s = ipv6_text(rng);
        break;
      case 1:
        s = ipv4_text(rng);
        break;
      case 2: {  // a form with a character changed, inserted or removed
        s = pick(rng, 2) ? ipv6_text(rng) : ipv4_text(rng);
        const size_t at = pick(rng, s.size() + 1);
        switch (pick(rng, 3)) {
          case 0:
            if (at < s.size()) s[at] = alphabet[pick(rng, alphabet.size())];
            break;
          case 1:
            s.insert(at, 1, alphabet[pick(rng, alphabet.size())]);
            break;
          default:
            if (at < s.size()) s.erase(at, 1);
            break;
        }
        break;
      }
      default:  // anything made of those characters
        for (size_t n = pick(rng, 48); n-- > 0;) s += alphabet[pick(rng, alphabet.size())];
        break;
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

TEST_CASE("IpAddress::parse accepts exactly what inet_pton accepts, with the same bytes") {
  size_t accepted = 0, v6 = 0, differences = 0;
  for (const std::string& text : texts()) {
    const auto ours = IpAddress::parse(text);
    const auto reference = parse_with_inet_pton(text);
    const bool same = ours.has_value() == reference.has_value() &&
                      (!ours || (ours->bytes == reference->bytes && ours->v4 == reference->v4));
    if (!same && ++differences <= 5) {
      INFO("text: \"" << text << "\"");
      INFO("ours: " << (ours ? ours->to_string() : "rejected"));
      INFO("inet_pton: " << (reference ? reference->to_string() : "rejected"));
      FAIL_CHECK("IpAddress::parse and inet_pton disagree");
    }
    accepted += reference.has_value();
    v6 += reference && !reference->v4;
  }
  CHECK(differences == 0);
  // Not vacuous: both families, accepted and rejected.
  CHECK(accepted > 25000);
  CHECK(v6 > 10000);
}

}  // namespace portalwatch
