// Fuzz harness: the configuration loader, the whole path `portalwatchd check-config` and a reload
// take (daemon/config.h: YAML, every section — input, time, sources, kafka, state, profiles, geoip,
// metrics, logging, hooks, control, detectors with every registered type, decisions, policies).
// One input = one configuration file's text.
//
// Whatever the text, the loader returns either a configuration or errors, never both and never
// neither, and never throws. Each error is formatted "file:…: message" (a line quoting the
// source may follow, under it a caret).
//
// Paths in the text (GeoIP databases, hook programs, secret and token files) are looked up in the
// file system as check-config does; the fuzzer runs in a scratch directory (tools/setup).
#include <string>

#include "daemon/config.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portalwatch;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static const std::string kSource = "fuzz.yaml";
  ConfigResult r;
  try {
    r = load_config_text(text, kSource);
  } catch (...) {
    FUZZ_CHECK(!"load_config_text threw");
  }
  FUZZ_CHECK(r.config.has_value() == r.errors.empty());
  if (r.config) {
    FUZZ_CHECK(r.config->source == kSource);
    for (const auto& d : r.config->detectors) FUZZ_CHECK(!d.common.name.empty());
    return 0;
  }
  // Every diagnostic starts a line with the file's name; quoted source lines and carets are
  // indented under it.
  std::size_t start = 0;
  while (start < r.errors.size()) {
    std::size_t nl = r.errors.find('\n', start);
    FUZZ_CHECK(nl != std::string::npos);
    const std::string_view line(r.errors.data() + start, nl - start);
    FUZZ_CHECK(line.substr(0, kSource.size()) == kSource || line.substr(0, 4) == "    ");
    start = nl + 1;
  }
  return 0;
}
