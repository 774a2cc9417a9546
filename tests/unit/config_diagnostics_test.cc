// Configuration diagnostics stay one line each, whatever the file quotes into them (found by
// tests/fuzz/fuzz_config.cc; the input is kept in tests/fuzz/regressions/config/).
#include <doctest/doctest.h>

#include <sstream>
#include <string>

#include "daemon/config.h"

namespace portalwatch {

namespace {

// Each line of errors is a diagnostic starting with the file's name, or an indented quote of the
// source under one.
void check_one_line_each(const std::string& errors, const std::string& file) {
  std::istringstream in(errors);
  std::string line;
  while (std::getline(in, line)) {
    INFO(line);
    CHECK((line.rfind(file + ":", 0) == 0 || line.rfind("    ", 0) == 0));
  }
}

}  // namespace

TEST_CASE("config: a multi-line value quoted in a diagnostic is escaped onto its line") {
  // A plain scalar folded over a blank line holds a line break.
  const ConfigResult r = load_config_text("-2 1\n- 2\n\n- 2\n", "c.yaml");
  REQUIRE_FALSE(r.config);
  CHECK(r.errors == "c.yaml:1:1: expected a mapping, got \"-2 1 - 2\\n- 2\"\n    -2 1\n    ^\n");
  check_one_line_each(r.errors, "c.yaml");
}

TEST_CASE("config: control characters in keys and values are escaped in diagnostics") {
  const ConfigResult r =
      load_config_text("kafka:\n  \"\\e[2J\\tx\": 1\n  commit_interval_ms: \"a\\rb\"\n", "c.yaml");
  REQUIRE_FALSE(r.config);
  INFO(r.errors);
  CHECK(r.errors.find("\x1b") == std::string::npos);
  CHECK(r.errors.find("\r") == std::string::npos);
  CHECK(r.errors.find("c.yaml:2:3: kafka.\\x1b[2J\\tx: unknown key \"\\x1b[2J\\tx\"\n") != std::string::npos);
  CHECK(r.errors.find("kafka.commit_interval_ms: expected an integer, got \"a\\x0db\"\n") != std::string::npos);
  check_one_line_each(r.errors, "c.yaml");
}

}  // namespace portalwatch

namespace portalwatch {

TEST_CASE("config: kafka.group_lag_interval_ms is 0 (not measured) or at least a second, named with its line") {
  ConfigResult r = load_config_text("kafka:\n  group_lag_interval_ms: 300\n", "c.yaml");
  REQUIRE_FALSE(r.config);
  CHECK(r.errors.find("c.yaml:2:") == 0);
  CHECK(r.errors.find("kafka.group_lag_interval_ms: must be 0 (not measured) or at least 1000") != std::string::npos);
  r = load_config_text("kafka:\n  group_lag_interval_ms: 0\n", "c.yaml");
  REQUIRE(r.config);
  CHECK(r.config->kafka.group_lag_interval_ms == 0);
  r = load_config_text("kafka:\n  group_lag_interval_ms: 5000\n", "c.yaml");
  REQUIRE(r.config);
  CHECK(r.config->kafka.group_lag_interval_ms == 5000);
  CHECK(load_config_text("kafka: {}\n", "c.yaml").config->kafka.group_lag_interval_ms == 15000);
}

TEST_CASE("config: kafka.buffer_mb is 1 to 65536 MiB, named with its line") {
  ConfigResult r = load_config_text("kafka:\n  topics: [t]\n  buffer_mb: 0\n", "c.yaml");
  REQUIRE_FALSE(r.config);
  CHECK(r.errors.find("c.yaml:3:") == 0);
  CHECK(r.errors.find("kafka.buffer_mb") != std::string::npos);
  CHECK_FALSE(load_config_text("kafka:\n  buffer_mb: 65537\n", "c.yaml").config);
  r = load_config_text("kafka:\n  buffer_mb: 16\n", "c.yaml");
  REQUIRE(r.config);
  CHECK(r.config->kafka.buffer_mb == 16);
  CHECK(load_config_text("kafka: {}\n", "c.yaml").config->kafka.buffer_mb == 256);
}

}  // namespace portalwatch
