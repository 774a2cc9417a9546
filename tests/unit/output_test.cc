// JSON output escaping (attacker-typed strings reach findings) and the distinct counter's accuracy.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

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

}  // namespace portalwatch
