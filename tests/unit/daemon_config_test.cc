// The daemon's configuration loader: the shipped default, field remapping, kafka pass-through,
// and every error reported at once with file, line, column and key path.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>

#include "daemon/config.h"

namespace portalwatch {

TEST_CASE("config: the shipped default is valid and enables brute_force") {
  const ConfigResult r = load_config(std::nullopt);
  REQUIRE_MESSAGE(r.config, r.errors);
  CHECK(r.config->source == "<built-in default>");
  REQUIRE(r.config->detectors.size() >= 1);
  CHECK(r.config->detectors[0].common.type == "brute_force");
  CHECK(r.config->metrics.listen == "127.0.0.1:9741");
  CHECK(r.config->kafka.topics == std::vector<std::string>{"portal-events"});
}

TEST_CASE("config: the detectors are built again from the text, the same instances in the same order") {
  const ConfigResult r = load_config(std::nullopt);
  REQUIRE_MESSAGE(r.config, r.errors);
  const std::vector<DetectorInstance> again = build_detectors_again(*r.config);
  REQUIRE(again.size() == r.config->detectors.size());
  for (std::size_t i = 0; i < again.size(); ++i) {
    CHECK(again[i].common.name == r.config->detectors[i].common.name);
    CHECK(again[i].common.type == r.config->detectors[i].common.type);
    CHECK(again[i].detector != r.config->detectors[i].detector);
  }
  Config in_code;
  CHECK(build_detectors_again(in_code).empty());
}

TEST_CASE("config: the file in config/ is the compiled-in default") {
  std::ifstream in(std::string(PORTALWATCH_SOURCE_DIR) + "/config/portalwatch.yaml");
  REQUIRE(in);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  CHECK(text == default_config_text());
}

TEST_CASE("config: values are read, kafka properties pass through, fields remap") {
  const ConfigResult r = load_config_text(R"(
input:
  max_message_bytes: 4096
  fields:
    user.name: usr.login
    source.ip: client.address
time: {allowed_lateness_seconds: 5, max_future_seconds: 30}
kafka:
  bootstrap_servers: "k1:9093,k2:9093"
  topics: [a, b]
  properties:
    security.protocol: SASL_SSL
    partition.assignment.strategy: cooperative-sticky
metrics: {enabled: false, listen: "0.0.0.0:9000"}
logging: {level: debug, format: json}
detectors:
  - type: brute_force
    name: bf-strict
    window_seconds: 300
    dry_run: true
  - type: brute_force
    name: bf-off
    enabled: false
)",
                                          "test.yaml");
  REQUIRE_MESSAGE(r.config, r.errors);
  const Config& c = *r.config;
  CHECK(c.engine.max_message_bytes == 4096);
  CHECK(c.engine.fields.path(Field::kUserName) == "usr.login");
  CHECK(c.engine.fields.path(Field::kSourceIp) == "client.address");
  CHECK(c.engine.time.allowed_lateness_ms == 5000);
  CHECK(c.engine.time.max_future_ms == 30000);
  CHECK(c.kafka.topics == std::vector<std::string>{"a", "b"});
  CHECK(c.kafka.properties.at("security.protocol") == "SASL_SSL");
  CHECK(c.kafka.properties.at("partition.assignment.strategy") == "cooperative-sticky");
  CHECK_FALSE(c.metrics.enabled);
  CHECK(c.log.format == "json");
  REQUIRE(c.detectors.size() == 1);  // the disabled one is validated but not built
  CHECK(c.detectors[0].common.name == "bf-strict");
  CHECK(c.detectors[0].common.dry_run);
}

TEST_CASE("config: every error at once, each with file, line, column and key path") {
  const ConfigResult r = load_config_text(R"(input:
  max_message_bytes: huge
  fields:
    user.nam: x
kafka:
  topics: []
  properties:
    enable.auto.commit: "true"
metrics:
  listen: nowhere
logging:
  level: loud
tyme: {}
detectors:
  - type: brute_force
    window_seconds: 5
  - name: no-type
  - type: brute_force
)",
                                          "bad.yaml");
  REQUIRE_FALSE(r.config);
  const std::string& e = r.errors;
  INFO(e);
  CHECK(e.find("bad.yaml:2:22: input.max_message_bytes: expected an integer, got \"huge\"") != std::string::npos);
  CHECK(e.find("bad.yaml:4:5: input.fields.user.nam: \"user.nam\" is not a field of the event contract (did you mean \"user.name\"?)") != std::string::npos);
  CHECK(e.find("kafka.topics: at least one topic is required") != std::string::npos);
  CHECK(e.find("kafka.properties.enable.auto.commit: \"enable.auto.commit\" is managed by portalwatch") != std::string::npos);
  CHECK(e.find("metrics.listen: expected host:port") != std::string::npos);
  CHECK(e.find("logging.level: \"loud\" is not one of: trace, debug, info, warn, error") != std::string::npos);
  CHECK(e.find("bad.yaml:13:1: tyme: unknown key \"tyme\" (did you mean \"time\"?)") != std::string::npos);
  CHECK(e.find("detectors[0].window_seconds: value 5 is out of range [10, 86400]") != std::string::npos);
  CHECK(e.find("detectors[1]: missing key \"type\"") != std::string::npos);
  CHECK(e.find("detectors[2]: detector name \"brute_force\" is used twice") != std::string::npos);
  // The offending line is quoted under each message, with a caret.
  CHECK(e.find("      level: loud\n") != std::string::npos);
}

TEST_CASE("config: YAML syntax errors and unreadable files are errors, not exceptions") {
  const ConfigResult syntax = load_config_text("kafka: [unclosed\n", "s.yaml");
  REQUIRE_FALSE(syntax.config);
  CHECK(syntax.errors.find("s.yaml:") == 0);
  CHECK(syntax.errors.find("YAML syntax error") != std::string::npos);
  const ConfigResult missing = load_config_file("/nonexistent/portalwatch.yaml");
  REQUIRE_FALSE(missing.config);
  CHECK(missing.errors.find("/nonexistent/portalwatch.yaml: cannot read") == 0);
  const ConfigResult not_a_map = load_config_text("- 1\n- 2\n", "list.yaml");
  REQUIRE_FALSE(not_a_map.config);
  CHECK(not_a_map.errors.find("expected a mapping") != std::string::npos);
}

TEST_CASE("config: an empty file means all defaults") {
  const ConfigResult r = load_config_text("", "empty.yaml");
  REQUIRE_MESSAGE(r.config, r.errors);
  CHECK(r.config->detectors.empty());
  CHECK(r.config->kafka.group_id == "portalwatch");
}

}  // namespace portalwatch

namespace portalwatch {

TEST_CASE("config: a key given twice is an error naming both places") {
  const ConfigResult r = load_config_text("kafka:\n  group_id: a\n  topics: [x]\n  group_id: b\n", "dup.yaml");
  CHECK_FALSE(r.config);
  CHECK(r.errors.find("dup.yaml:4:3: kafka.group_id: given twice (first on line 2)") != std::string::npos);
}

}  // namespace portalwatch
