// Windows, bounded tables, the engine's event time (watermark, lateness, future clamping), the
// registry and brute_force, with injected clocks and event time: nothing sleeps.
#include <doctest/doctest.h>
#include <simdjson.h>

#include <functional>
#include <string>
#include <vector>

#include "detectors/brute_force.h"
#include "detectors/decision.h"
#include "detectors/engine.h"

namespace portalwatch {

namespace {

struct Collect final : FindingSink {
  std::vector<Finding> findings;
  void emit(Finding&& f) override { findings.push_back(std::move(f)); }
};

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");

std::string login(TimeMs t, const std::string& user, const std::string& outcome, const std::string& reason = "bad_password",
                  const std::string& ip = "203.0.113.9") {
  std::string j = R"({"@timestamp":")" + format_rfc3339(t) + R"(","event":{"action":"login","outcome":")" + outcome + "\"";
  if (outcome == "failure") j += R"(,"reason":")" + reason + "\"";
  return j + R"(},"user":{"name":")" + user + R"("},"source":{"ip":")" + ip + R"("}})";
}

std::vector<DetectorInstance> detectors_from(const std::string& yaml, std::string* errors = nullptr) {
  Diagnostics diags("test.yaml", yaml);
  DetectorRegistry registry;
  register_builtin_detectors(registry);
  auto out = build_detectors(ConfigNode(YAML::Load(yaml), "detectors", diags), registry);
  if (errors) *errors = diags.format();
  else REQUIRE_MESSAGE(diags.ok(), diags.format());
  return out;
}

Engine stream_engine(std::vector<DetectorInstance> d, TimeMs lateness = 60 * kSecondMs) {
  EngineOptions o;
  o.time.reference = TimeOptions::Reference::kStream;
  o.time.allowed_lateness_ms = lateness;
  return Engine(o, std::move(d), nullptr);
}

}  // namespace

TEST_CASE("window: sliding counter counts the window, late in-window events, and forgets the rest") {
  SlidingWindowCounter<10> c;
  const TimeMs span = 60 * kSecondMs;  // a 10-minute window
  c.add(kT0, span);
  c.add(kT0 + 5 * kMinuteMs, span, 3);
  CHECK(c.total(kT0 + 5 * kMinuteMs, span) == 4);
  c.add(kT0 + 2 * kMinuteMs, span);  // late but inside the window: its own bucket
  CHECK(c.total(kT0 + 5 * kMinuteMs, span) == 5);
  CHECK(c.total(kT0 + 12 * kMinuteMs, span) == 3);  // the first two slid out
  c.add(kT0 - 20 * kMinuteMs, span);                 // older than the window: ignored
  CHECK(c.total(kT0 + 12 * kMinuteMs, span) == 3);
  c.add(kT0 + 3 * kHourMs, span);  // a big jump clears everything
  CHECK(c.total(kT0 + 3 * kHourMs, span) == 1);
}

TEST_CASE("window: an event older than the newest is judged with everything counted after it") {
  // Two Kafka partitions delivered one after the other: the later half first, then the earlier.
  SlidingWindowCounter<10> c;
  const TimeMs span = 60 * kSecondMs;
  for (int i = 6; i < 12; ++i) c.add(kT0 + 55 * kSecondMs + i * kSecondMs, span);
  std::uint32_t seen = 0;
  for (int i = 0; i < 6; ++i) {
    const TimeMs t = kT0 + 50 * kSecondMs + i * kSecondMs;  // the bucket before kT0 + 60 s
    c.add(t, span);
    seen = c.total(t, span);
  }
  CHECK(seen == 12);
  // Judged at a later time the window still slides as before: the six events before kT0 + 60 s
  // leave first.
  CHECK(c.total(kT0 + 9 * kMinuteMs + 59 * kSecondMs, span) == 12);
  CHECK(c.total(kT0 + 10 * kMinuteMs, span) == 6);
  CHECK(c.total(kT0 + 11 * kMinuteMs, span) == 0);
}

TEST_CASE("window: a keyed table never exceeds its cap, evicts the least recently seen, expires idle keys") {
  KeyedTable<int> t("t", 100, kMinuteMs);
  for (int i = 0; i < 100; ++i) t.upsert("k" + std::to_string(i), kT0 + i);
  t.upsert("k0", kT0 + 1000);  // k0 is now the most recent
  for (int i = 100; i < 10000; ++i) {
    t.upsert("k" + std::to_string(i), kT0 + 1000 + i);
    REQUIRE(t.size() <= 100);
  }
  CHECK(t.stats(0).evictions > 0);
  CHECK(t.find(std::string("k1")) == nullptr);
  CHECK(t.find(std::string("k9999")) != nullptr);
  t.expire(kT0 + 1000 + 10000 + 2 * kMinuteMs);
  CHECK(t.size() == 0);
  CHECK(t.stats(0).expirations > 0);
}

TEST_CASE("engine: rejects are counted by reason and never throw") {
  Engine e = stream_engine({});
  Collect out;
  CHECK_FALSE(e.process("nope", false, out).accepted);
  CHECK_FALSE(e.process("[]", false, out).accepted);
  CHECK(e.process(login(kT0, "a", "success"), false, out).accepted);
  CHECK(e.stats().received == 3);
  CHECK(e.stats().accepted == 1);
  CHECK(e.stats().rejected[static_cast<size_t>(RejectReason::kNotJson)] == 1);
  CHECK(e.stats().rejected[static_cast<size_t>(RejectReason::kNotObject)] == 1);
}

TEST_CASE("engine: late events within the lateness keep their time; older ones go to the watermark") {
  Engine e = stream_engine({}, 60 * kSecondMs);
  Collect out;
  e.process(login(kT0 + 10 * kMinuteMs, "a", "success"), false, out);
  CHECK(e.watermark() == kT0 + 10 * kMinuteMs - 60 * kSecondMs);
  e.process(login(kT0 + 10 * kMinuteMs - 30 * kSecondMs, "a", "success"), false, out);
  CHECK(e.stats().late_clamped == 0);
  e.process(login(kT0, "a", "success"), false, out);  // 10 minutes late
  CHECK(e.stats().late_clamped == 1);
  CHECK(e.stats().accepted == 3);  // processed, not dropped
}

TEST_CASE("engine: a forged far-future timestamp is clamped and cannot move time (wall clock)") {
  ManualClock clock(kT0);
  EngineOptions o;
  o.time.max_future_ms = 5 * kMinuteMs;
  Engine e(o, {}, &clock);
  Collect out;
  e.process(login(kT0, "a", "success"), false, out);
  e.process(login(kT0 + 365 * kDayMs, "a", "success"), false, out);
  CHECK(e.stats().future_clamped == 1);
  CHECK(e.watermark() == kT0 - 60 * kSecondMs);
  e.process(login(kT0 + 4 * kMinuteMs, "a", "success"), false, out);  // within the skew: trusted
  CHECK(e.stats().future_clamped == 1);
  clock.advance(kDayMs);
  e.process(login(kT0 + kDayMs, "a", "success"), false, out);  // the clock moved: fine now
  CHECK(e.stats().future_clamped == 1);
}

TEST_CASE("engine: with the stream as reference, one forged event is clamped but a real jump is accepted") {
  Engine e = stream_engine({});
  Collect out;
  for (int i = 0; i < 5; ++i) e.process(login(kT0 + i * kSecondMs, "a", "success"), false, out);
  e.process(login(kT0 + 100 * kDayMs, "x", "success"), false, out);
  CHECK(e.stats().future_clamped == 1);
  e.process(login(kT0 + 6 * kSecondMs, "a", "success"), false, out);
  CHECK(e.stats().late_clamped == 0);  // time did not move with the forged event
  // A quiet night: the stream genuinely jumps 8 hours; once most of the last five timestamps are
  // past the jump it is believed (here after two events, as the forged one is still in the five).
  for (int i = 0; i < 6; ++i) e.process(login(kT0 + 8 * kHourMs + i * kSecondMs, "a", "success"), false, out);
  CHECK(e.stats().future_clamped == 3);
  CHECK(e.watermark() > kT0 + 8 * kHourMs - 2 * kMinuteMs);
}

// Ids are what alert consumers drop repeats by: the same finding (from a replay, another member
// of the group, a process sending it again after a crash) has the same id, and any difference in
// what identifies it gives another. The values are pinned (computed independently: the first 8
// bytes, big-endian, of SHA-256 over the fields each preceded by its length as 8 bytes little-endian)
// because a scheme that changed between versions would make one finding two.
TEST_CASE("ids: a finding's and a decision's id come from what identifies them, and are pinned") {
  Finding f = make_finding("brute_force", "brute_force", Severity::kMedium, EntityType::kUser, "jdoe",
                           1'800'000'000'000, 10 * kMinuteMs);
  f.summary = "jdoe: 10 failed passwords";
  f.seq = 7;
  CHECK(f.id_string() == "f-02728494323082110082");
  Finding same = f;
  same.seq = 99;  // another process's running number
  same.evidence.add("failures", 10);
  same.dry_run = true;
  CHECK(same.id_string() == f.id_string());
  for (auto change : std::vector<std::function<void(Finding&)>>{
           [](Finding& x) { x.name = "brute_force_slow"; },
           [](Finding& x) { x.severity = Severity::kHigh; },
           [](Finding& x) { x.entity_type = EntityType::kIp; },
           [](Finding& x) { x.entity = "jdoe2"; },
           [](Finding& x) { x.at += 1; },
           [](Finding& x) { x.window_start -= 1; },
           [](Finding& x) { x.window_end += 1; },
           [](Finding& x) { x.summary += "."; }}) {
    Finding other = f;
    change(other);
    CHECK(other.id_string() != f.id_string());
  }
  // Field boundaries count: no value moved from one field into the next gives the same id.
  CHECK(content_id('f', {"ab", "c"}) != content_id('f', {"a", "bc"}));
  CHECK(content_id('f', {"a", ""}) != content_id('f', {"a"}));

  Decision d;
  d.action = DecisionAction::kLockdown;
  d.on = true;
  d.scope = *Scope::parse("app:hsa");
  d.at = 1'800'000'000'000;
  d.by = "operator:jsmith";
  d.reason = "savings accounts read";
  CHECK(d.id_string() == "d-07035206418883495000");
  Decision off = d;
  off.on = false;
  CHECK(off.id_string() != d.id_string());
  Decision later = d;
  later.at += 1;
  CHECK(later.id_string() != d.id_string());
  Decision other_reason = d;  // the reason and the findings describe it; they do not identify it
  other_reason.reason = "x";
  other_reason.seq = 5;
  CHECK(other_reason.id_string() == d.id_string());
}

TEST_CASE("brute_force: fires at the threshold with evidence in the contract's shape, escalates, and stays quiet otherwise") {
  Engine e = stream_engine(detectors_from("[{type: brute_force}]"));
  Collect out;
  for (int i = 0; i < 9; ++i) e.process(login(kT0 + i * kSecondMs, "JDoe", "failure"), false, out);
  CHECK(out.findings.empty());
  e.process(login(kT0 + 9 * kSecondMs, "jdoe", "failure", "bad_password", "198.51.100.4"), false, out);
  REQUIRE(out.findings.size() == 1);
  const Finding& f = out.findings[0];
  CHECK(f.detector == "brute_force");
  CHECK(f.severity == Severity::kMedium);
  CHECK(f.entity == "jdoe");  // case folded
  CHECK(f.id_string().size() == 22);  // "f-" and 20 digits
  CHECK(*f.evidence.get("failures") == "10");
  CHECK(*f.evidence.get("distinct_sources") == "2");

  simdjson::dom::parser p;
  simdjson::dom::element j = p.parse(f.to_json());
  CHECK(std::string_view(j["id"]) == f.id_string());
  CHECK(std::string_view(j["entity"]["type"]) == "user");
  CHECK(std::string_view(j["entity"]["value"]) == "jdoe");
  CHECK(std::string_view(j["at"]) == "2026-12-23T14:00:09.000Z");
  CHECK(std::string_view(j["window"]["start"]) == "2026-12-23T13:50:09.000Z");
  CHECK(int64_t(j["evidence"]["window_seconds"]) == 600);
  CHECK(std::string_view(j["summary"]).find("10 failed passwords in 10m") != std::string_view::npos);

  // More at the same severity: quiet. At 30: high.
  for (int i = 10; i < 29; ++i) e.process(login(kT0 + i * kSecondMs, "jdoe", "failure"), false, out);
  CHECK(out.findings.size() == 1);
  e.process(login(kT0 + 29 * kSecondMs, "jdoe", "failure"), false, out);
  REQUIRE(out.findings.size() == 2);
  CHECK(out.findings[1].severity == Severity::kHigh);
  CHECK(e.detector_counts()[0].findings[static_cast<size_t>(Severity::kHigh)] == 1);
}

TEST_CASE("brute_force: what must not fire") {
  Engine e = stream_engine(detectors_from("[{type: brute_force}]"));
  Collect out;
  SUBCASE("failures spread wider than the window") {
    for (int i = 0; i < 30; ++i) e.process(login(kT0 + i * 2 * kMinuteMs, "slow", "failure"), false, out);
  }
  SUBCASE("unknown_user failures (credential stuffing, not brute force)") {
    for (int i = 0; i < 30; ++i) e.process(login(kT0 + i * kSecondMs, "ghost", "failure", "unknown_user"), false, out);
  }
  SUBCASE("an office of 5,000 with a typo each") {
    for (int i = 0; i < 5000; ++i) {
      const std::string u = "emp" + std::to_string(i);
      e.process(login(kT0 + i * 100, u, "failure", "bad_password", "198.51.100.10"), false, out);
      e.process(login(kT0 + i * 100 + 50, u, "success", "", "198.51.100.10"), false, out);
    }
  }
  CHECK(out.findings.empty());
}

TEST_CASE("brute_force: a success after many failures is at least high") {
  Engine e = stream_engine(detectors_from("[{type: brute_force}]"));
  Collect out;
  for (int i = 0; i < 12; ++i) e.process(login(kT0 + i * kSecondMs, "v", "failure"), false, out);
  REQUIRE(out.findings.size() == 1);
  e.process(login(kT0 + 13 * kSecondMs, "v", "success"), false, out);
  REQUIRE(out.findings.size() == 2);
  CHECK(out.findings[1].severity == Severity::kHigh);
  CHECK(out.findings[1].summary.find("then a successful login") != std::string::npos);
}

TEST_CASE("brute_force: state stays under max_accounts with evictions counted") {
  Engine e = stream_engine(detectors_from("[{type: brute_force, max_accounts: 1000}]"));
  Collect out;
  for (int i = 0; i < 100000; ++i) e.process(login(kT0 + i, "u" + std::to_string(i), "failure"), false, out);
  const auto tables = e.detectors()[0].detector->tables();
  REQUIRE(tables.size() == 1);
  CHECK(tables[0].keys <= 1000);
  CHECK(tables[0].evictions > 0);
}

TEST_CASE("detectors: dry_run marks findings; config errors name line and key") {
  Engine e = stream_engine(detectors_from("[{type: brute_force, dry_run: true}]"));
  Collect out;
  for (int i = 0; i < 10; ++i) e.process(login(kT0 + i * kSecondMs, "d", "failure"), false, out);
  REQUIRE(out.findings.size() == 1);
  CHECK(out.findings[0].dry_run);
  CHECK(out.findings[0].to_json().find(",\"dry_run\":true}") != std::string::npos);

  std::string errors;
  detectors_from("- type: brute_force\n  window_seconds: abc\n  severity: {medium: 50, high: 20}\n  treshold: 3\n", &errors);
  CHECK(errors.find("test.yaml:2:19: detectors[0].window_seconds: expected an integer, got \"abc\"") != std::string::npos);
  CHECK(errors.find("detectors[0].severity: severity steps must rise") != std::string::npos);
  CHECK(errors.find("test.yaml:4:3: detectors[0].treshold: unknown key \"treshold\"") != std::string::npos);
}

}  // namespace portalwatch
