// JSON output escaping (attacker-typed strings reach findings) and the distinct counter's accuracy.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <string>
#include <vector>

#include "detectors/distinct_counter.h"
#include "detectors/json_writer.h"

namespace portalwatch {

namespace {
std::string js(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}
}  // namespace

TEST_CASE("json: strings are escaped and always valid UTF-8") {
  CHECK(js("plain") == "\"plain\"");
  CHECK(js("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(js("line\nbreak\ttab\r") == "\"line\\nbreak\\ttab\\r\"");
  CHECK(js(std::string("nul\0x", 5)) == "\"nul\\u0000x\"");
  CHECK(js("\x1b[31m") == "\"\\u001b[31m\"");
  CHECK(js("j\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x94\x92") == "\"j\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x94\x92\"");
  CHECK(js("bad\xff") == "\"bad\xef\xbf\xbd\"");             // invalid byte
  CHECK(js("\xc0\xaf") == "\"\xef\xbf\xbd\xef\xbf\xbd\"");   // overlong '/'
  CHECK(js("\xed\xa0\x80") == "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");  // a surrogate
  CHECK(js("\xe2\x82") == "\"\xef\xbf\xbd\xef\xbf\xbd\"");   // truncated sequence
  std::string n;
  append_json_double(n, NAN);
  CHECK(n == "null");
  n.clear();
  append_json_double(n, 0.5);
  CHECK(n == "0.5");
  n.clear();
  append_json_int(n, -42);
  CHECK(n == "-42");
}

TEST_CASE("distinct counter: near exact when small, within a few standard errors when large") {
  for (const int n : {0, 1, 5, 20, 50, 100, 300, 1000, 10000, 100000}) {
    DistinctCounter<7> c;
    for (int i = 0; i < n; ++i) {
      c.add("account-" + std::to_string(i));
      c.add("account-" + std::to_string(i / 2));  // repeats do not count
    }
    const double err = n ? std::abs(c.estimate() - n) / n : c.estimate();
    INFO("n=" << n << " estimate=" << c.estimate());
    CHECK(err <= (n <= 20 ? 0.15 : 0.3));  // 9% standard error at 128 registers
  }
  DistinctCounter<7> a, b, both;
  for (int i = 0; i < 500; ++i) {
    a.add("x" + std::to_string(i));
    b.add("x" + std::to_string(i + 250));
    both.add("x" + std::to_string(i));
    both.add("x" + std::to_string(i + 250));
  }
  a.merge(b);
  CHECK(a.count() == both.count());  // merging is the union
  a.clear();
  CHECK(a.empty());
  CHECK(a.count() == 0);
}

// The textbook estimate, register by register in floating point, from the same registers
// (recomputed here from the items' hashes as add_hash() sets them).
template <int kBits>
double reference_estimate(const std::vector<std::string>& items) {
  constexpr int m = 1 << kBits;
  std::array<int, m> reg{};
  for (const std::string& item : items) {
    const std::uint64_t h = hash_bytes(item);
    const auto idx = static_cast<size_t>(h >> (64 - kBits));
    const std::uint64_t rest = (h << kBits) | (std::uint64_t{1} << (kBits - 1));
    reg[idx] = std::max(reg[idx], std::min(std::countl_zero(rest) + 1, 15));
  }
  double sum = 0;
  int zeros = 0;
  for (const int r : reg) {
    sum += std::ldexp(1.0, -r);
    zeros += r == 0;
  }
  const double alpha = kBits == 4 ? 0.673 : kBits == 5 ? 0.697 : kBits == 6 ? 0.709 : 0.7213 / (1 + 1.079 / m);
  const double raw = alpha * m * m / sum;
  if (raw <= 2.5 * m && zeros > 0) return m * std::log(static_cast<double>(m) / zeros);
  return raw;
}

template <int kBits>
void check_estimate_is_textbook() {
  for (const int n : {0, 1, 7, 40, 300, 2000, 30000}) {
    std::vector<std::string> items;
    DistinctCounter<kBits> c;
    for (int i = 0; i < n; ++i) {
      items.push_back("user-" + std::to_string(i * 7919));
      c.add(items.back());
    }
    CAPTURE(kBits);
    CAPTURE(n);
    CHECK(c.estimate() == reference_estimate<kBits>(items));  // to the last bit
  }
}

TEST_CASE("distinct counter: the estimate is the textbook one to the last bit (table sum in integers)") {
  check_estimate_is_textbook<4>();
  check_estimate_is_textbook<6>();
  check_estimate_is_textbook<10>();
}

}  // namespace portalwatch
