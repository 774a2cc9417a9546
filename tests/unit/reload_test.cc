// A reload swaps detector settings in between two events: what was counted stays where the state's
// layout allows, the new thresholds apply from the next event, and the rest is replaced and said so.
#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <string>

#include "daemon/config.h"
#include "detectors/config_node.h"
#include "detectors/engine.h"
#include "tests/unit/event_builder.h"

using namespace portalwatch;
using namespace portalwatch::test;

namespace {

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");

std::vector<DetectorInstance> detectors_from(const std::string& yaml) {
  Diagnostics diags("test.yaml", yaml);
  DetectorRegistry registry;
  register_builtin_detectors(registry);
  auto out = build_detectors(ConfigNode(YAML::Load(yaml), "detectors", diags), registry);
  REQUIRE_MESSAGE(diags.ok(), diags.format());
  return out;
}

EngineOptions stream_options() {
  EngineOptions o;
  o.time.reference = TimeOptions::Reference::kStream;
  return o;
}

void fail_password(Engine& e, TimeMs t, const std::string& user, Collect& out) {
  feed(e, Ev{}.at(t).as(user).fail(), out);
}

}  // namespace

TEST_CASE("reload: a lower threshold applies from the next event and counts what came before") {
  Engine e(stream_options(), detectors_from("[{type: brute_force, severity: {medium: 20}}]"), nullptr);
  Collect out;
  for (int i = 0; i < 12; ++i) fail_password(e, kT0 + i * kSecondMs, "jdoe", out);
  CHECK(out.findings.empty());  // 12 < 20

  const auto report = e.reconfigure(stream_options(), detectors_from("[{type: brute_force, severity: {medium: 10}}]"));
  CHECK(report.kept == std::vector<std::string>{"brute_force"});
  CHECK(report.restarted.empty());
  CHECK(report.added.empty());
  CHECK(report.removed.empty());
  CHECK(report.sources_applied);

  fail_password(e, kT0 + 12 * kSecondMs, "jdoe", out);
  REQUIRE(out.findings.size() == 1);
  CHECK(out.findings[0].severity == Severity::kMedium);
  CHECK(*out.findings[0].evidence.get("failures") == "13");  // the twelve before the reload count
}

TEST_CASE("reload: a raised threshold silences what the old one would have reported") {
  Engine e(stream_options(), detectors_from("[{type: brute_force}]"), nullptr);
  Collect out;
  for (int i = 0; i < 8; ++i) fail_password(e, kT0 + i * kSecondMs, "jdoe", out);
  e.reconfigure(stream_options(), detectors_from("[{type: brute_force, severity: {medium: 50, high: 60, critical: 100}}]"));
  for (int i = 8; i < 20; ++i) fail_password(e, kT0 + i * kSecondMs, "jdoe", out);
  CHECK(out.findings.empty());
}

TEST_CASE("reload: a changed window restarts the instance; a new type under the same name too") {
  Engine e(stream_options(), detectors_from("[{type: brute_force, severity: {medium: 20}}]"), nullptr);
  Collect out;
  for (int i = 0; i < 12; ++i) fail_password(e, kT0 + i * kSecondMs, "jdoe", out);
  auto report =
      e.reconfigure(stream_options(), detectors_from("[{type: brute_force, window_seconds: 1200, severity: {medium: 10}}]"));
  CHECK(report.restarted == std::vector<std::string>{"brute_force"});
  CHECK(report.kept.empty());
  // Counting starts again: nine more failures are nine, not twenty-one.
  for (int i = 12; i < 21; ++i) fail_password(e, kT0 + i * kSecondMs, "jdoe", out);
  CHECK(out.findings.empty());
  fail_password(e, kT0 + 21 * kSecondMs, "jdoe", out);
  REQUIRE(out.findings.size() == 1);
  CHECK(*out.findings[0].evidence.get("failures") == "10");

  report = e.reconfigure(stream_options(), detectors_from("[{type: mfa_fatigue, name: brute_force}]"));
  CHECK(report.restarted == std::vector<std::string>{"brute_force"});
  CHECK(e.detectors()[0].detector->detector() == "mfa_fatigue");
}

TEST_CASE("reload: instances are matched by name; added and removed ones are reported; counts go on") {
  Engine e(stream_options(), detectors_from("[{type: brute_force}, {type: mfa_fatigue}]"), nullptr);
  Collect out;
  for (int i = 0; i < 10; ++i) fail_password(e, kT0 + i * kSecondMs, "jdoe", out);
  REQUIRE(out.findings.size() == 1);
  const auto report = e.reconfigure(
      stream_options(),
      detectors_from("[{type: session_hijack}, {type: brute_force, severity: {medium: 10, high: 12}}]"));
  CHECK(report.kept == std::vector<std::string>{"brute_force"});
  CHECK(report.added == std::vector<std::string>{"session_hijack"});
  CHECK(report.removed == std::vector<std::string>{"mfa_fatigue"});
  REQUIRE(e.detectors().size() == 2);
  CHECK(e.detectors()[1].common.name == "brute_force");
  CHECK(e.detector_counts()[1].findings[static_cast<size_t>(Severity::kMedium)] == 1);  // carried by name
  CHECK(e.detector_counts()[0].findings[static_cast<size_t>(Severity::kMedium)] == 0);

  // The decoder now reads what the added detector needs (session ids, user agents).
  out.findings.clear();
  Ev a = Ev{}.at(kT0 + 20 * kSecondMs).as("asmith").ok();
  a.session = "s-1";
  a.action = "view";
  a.app = "paystubs";
  feed(e, a, out);
  Ev b = a;
  b.t += kSecondMs;
  b.ip = "203.0.113.200";
  b.ua = "curl/8.4.0";
  b.asn = 64500;
  feed(e, b, out);
  REQUIRE(!out.of(EntityType::kSession).empty());

  // brute_force took its new ladder with its counts: two more failures make twelve, high.
  fail_password(e, kT0 + 30 * kSecondMs, "jdoe", out);
  fail_password(e, kT0 + 31 * kSecondMs, "jdoe", out);
  REQUIRE(!out.of(EntityType::kUser).empty());
  CHECK(out.of(EntityType::kUser).back().severity == Severity::kHigh);
}

TEST_CASE("reload: every shipped detector keeps its state when its settings do not change its layout") {
  ConfigResult a = load_config_text(default_config_text(), "a.yaml");
  ConfigResult b = load_config_text(default_config_text(), "b.yaml");
  REQUIRE(a.config);
  REQUIRE(b.config);
  Config& first = *a.config;
  first.engine.time.reference = TimeOptions::Reference::kStream;
  b.config->engine.time.reference = TimeOptions::Reference::kStream;
  const size_t n = first.detectors.size();
  Engine e(first.engine, std::move(first.detectors), nullptr);
  const auto report = e.reconfigure(b.config->engine, std::move(b.config->detectors));
  CHECK(report.kept.size() == n);
  CHECK(report.restarted.empty());
  CHECK(report.sources_applied);
}

TEST_CASE("reload: sources keep what they learned; new prefixes wait for a restart") {
  EngineOptions o = stream_options();
  Engine e(o, detectors_from("[{type: password_spray}]"), nullptr);
  EngineOptions trusted = o;
  trusted.sources.trusted_networks.push_back({"office", {*IpNetwork::parse("10.0.0.0/8")}, 50});
  CHECK(e.reconfigure(trusted, detectors_from("[{type: password_spray}]")).sources_applied);
  EngineOptions prefix = trusted;
  prefix.sources.ipv6_prefix = 56;
  const auto report = e.reconfigure(prefix, detectors_from("[{type: password_spray}]"));
  CHECK_FALSE(report.sources_applied);
  CHECK(report.kept == std::vector<std::string>{"password_spray"});
}

TEST_CASE("reload: a keyed table given a lower cap comes down as keys are added") {
  KeyedTable<int> t("t", 1000, kHourMs);
  for (int i = 0; i < 1000; ++i) t.upsert(std::to_string(i), i);
  t.set_capacity(100);
  for (int i = 1000; i < 1400; ++i) t.upsert(std::to_string(i), i);
  CHECK(t.size() <= 100);
  CHECK(t.stats(0).capacity == 100);
}

TEST_CASE("restart: detection starts again from nothing (windows, stream time); counts and ids go on") {
  const std::string yaml = "[{type: brute_force, severity: {medium: 10}}]";
  Engine e(stream_options(), detectors_from(yaml), nullptr);
  Collect out;
  for (int i = 0; i < 9; ++i) fail_password(e, kT0 + 60 * kSecondMs + i * kSecondMs, "jdoe", out);
  CHECK(out.findings.empty());
  const std::uint64_t id = e.next_finding_id();
  const std::uint64_t received = e.stats().received;

  e.restart(detectors_from(yaml));
  CHECK(e.watermark() == 0);  // the stream's time starts again
  CHECK(e.stats().received == received);
  // Read again from an earlier point (a minute before): not late, and the nine before the restart
  // are not counted twice.
  for (int i = 0; i < 9; ++i) fail_password(e, kT0 + i * kSecondMs, "jdoe", out);
  CHECK(out.findings.empty());
  fail_password(e, kT0 + 9 * kSecondMs, "jdoe", out);
  REQUIRE(out.findings.size() == 1);
  CHECK(out.findings[0].at == kT0 + 9 * kSecondMs);  // its own time: nothing clamped as late
  CHECK(out.findings[0].seq == id);
  CHECK(e.stats().late_clamped == 0);

  CHECK_THROWS_AS(e.restart(detectors_from("[{type: password_spray}]")), std::invalid_argument);
}
