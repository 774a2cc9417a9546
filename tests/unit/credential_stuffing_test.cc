// credential_stuffing: hundreds of quiet sources, a low-and-slow campaign, and what is not one.
#include "detectors/credential_stuffing.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>

#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Collect;
using test::Ev;

namespace {

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");

Engine stuffing_engine(CredentialStuffingConfig c = {}, std::vector<TrustedNetwork> trusted = {}) {
  return test::engine_with(std::make_unique<CredentialStuffingDetector>(c, "credential_stuffing"),
                           std::move(trusted));
}

// Background: ordinary people signing in, some after a typo of their name or password.
void people(Engine& e, Collect& out, TimeMs from, TimeMs to, test::TestRng& r) {
  for (TimeMs t = from; t < to; t += 2 * kSecondMs) {
    const std::string user = "emp" + std::to_string(r.below(50000));
    const std::string ip =
        test::ipv4(73, static_cast<int>(r.below(250)), static_cast<int>(r.below(250)),
                   1 + static_cast<int>(r.below(250)));
    if (r.chance(0.03)) test::feed(e, Ev{}.at(t).as(user + "x").from(ip).fail("unknown_user"), out);
    if (r.chance(0.03)) test::feed(e, Ev{}.at(t).as(user).from(ip).fail(), out);
    test::feed(e, Ev{}.at(t + 500).as(user).from(ip).ok(), out);
  }
}

}  // namespace

TEST_CASE("credential_stuffing: a wave from hundreds of residential proxies, none loud") {
  Engine e = stuffing_engine();
  Collect out;
  test::TestRng r(7);
  people(e, out, kT0 - 2 * kHourMs, kT0, r);
  REQUIRE(out.findings.empty());
  // 400 proxies, 3,000 tries over 30 minutes: 7 or 8 tries per source, 65% unknown names.
  std::vector<std::string> proxies;
  for (int i = 0; i < 400; ++i)
    proxies.push_back(test::ipv4(24 + i % 50, i % 200, (i * 7) % 250, 1 + i % 250));
  std::string compromised;
  for (int i = 0; i < 3000; ++i) {
    const TimeMs t = kT0 + i * 600;
    Ev ev = Ev{}.at(t).from(proxies[r.below(proxies.size())]);
    if (r.chance(0.65)) {
      ev.as("leaked" + std::to_string(i)).fail("unknown_user");
    } else if (i == 2000) {
      compromised = "emp" + std::to_string(i);
      ev.as(compromised).ok();
    } else {
      ev.as("emp" + std::to_string(r.below(50000))).fail();
    }
    test::feed(e, ev, out);
    if (i % 10 == 0) people(e, out, t, t + 1, r);
  }
  const auto global = out.of(EntityType::kGlobal);
  REQUIRE(!global.empty());
  CHECK(global.front().detector == "credential_stuffing");
  CHECK(global.front().severity == Severity::kMedium);
  CHECK(global.front().at - kT0 < 5 * kMinuteMs);
  // The success raised it and names the account.
  const Finding& last = global.back();
  CHECK(last.severity == Severity::kCritical);
  CHECK(last.evidence.get("accounts_signed_in")->find(compromised) != std::string::npos);
  CHECK(std::stoi(*last.evidence.get("stuffing_sources")) >= 200);
  CHECK(std::stod(*last.evidence.get("unknown_user_share")) > 0.5);
  // No single proxy is loud enough to name.
  CHECK(out.of(EntityType::kIp).empty());
}

TEST_CASE("credential_stuffing: a wave that starts getting in is reported at once, not at the next reminder") {
  Engine e = stuffing_engine();
  Collect out;
  test::TestRng r(9);
  people(e, out, kT0 - 2 * kHourMs, kT0, r);
  std::vector<std::string> proxies;
  for (int i = 0; i < 400; ++i) proxies.push_back(test::ipv4(24 + i % 50, i % 200, (i * 7) % 250, 1 + i % 250));
  TimeMs got_in = 0;
  std::vector<int> tries(proxies.size());
  for (int i = 0; i < 3000; ++i) {
    const TimeMs t = kT0 + i * 600;
    std::size_t p = r.below(proxies.size());
    if (i == 2900) {
      // Long after the wave was reported critical, one of its busiest proxies gets in.
      p = static_cast<std::size_t>(std::max_element(tries.begin(), tries.end()) - tries.begin());
    }
    ++tries[p];
    Ev ev = Ev{}.at(t).from(proxies[p]);
    if (i == 2900) {
      ev.as("emp2900").ok();
      got_in = t;
    } else if (r.chance(0.65)) {
      ev.as("leaked" + std::to_string(i)).fail("unknown_user");
    } else {
      ev.as("emp" + std::to_string(r.below(50000))).fail();
    }
    test::feed(e, ev, out);
    if (i % 10 == 0) people(e, out, t, t + 1, r);
  }
  // Detectors judge the window at the watermark (a minute of allowed lateness behind).
  people(e, out, kT0 + 3000 * 600, kT0 + 3000 * 600 + 3 * kMinuteMs, r);
  const auto global = out.of(EntityType::kGlobal);
  REQUIRE(global.size() >= 2);
  // The wave was critical before anyone got in; the success is reported within a minute (global
  // findings are stamped with the watermark, which runs a minute behind), not an hour later.
  const Finding* critical = nullptr;
  const Finding* in = nullptr;
  for (const auto& f : global) {
    if (!critical && f.severity == Severity::kCritical) critical = &f;
    if (!in && *f.evidence.get("successes") != "0") in = &f;
  }
  REQUIRE(critical);
  CHECK(*critical->evidence.get("successes") == "0");
  REQUIRE(in);
  CHECK(in != critical);
  CHECK(in->severity == Severity::kCritical);
  CHECK(std::llabs(in->at - got_in) <= kMinuteMs);
  CHECK(in->evidence.get("accounts_signed_in")->find("emp2900") != std::string::npos);
}

TEST_CASE("credential_stuffing: low and slow, one try per source every ten minutes for hours") {
  Engine e = stuffing_engine();
  Collect out;
  test::TestRng r(11);
  people(e, out, kT0 - 2 * kHourMs, kT0, r);
  REQUIRE(out.findings.empty());
  std::vector<std::pair<TimeMs, std::string>> next;
  for (int i = 0; i < 120; ++i)
    next.emplace_back(kT0 + static_cast<TimeMs>(r.below(10 * kMinuteMs)),
                      test::ipv4(98, i, 3, 1 + i));
  TimeMs found = -1;
  for (TimeMs t = kT0; t < kT0 + 3 * kHourMs; t += 2 * kSecondMs) {
    people(e, out, t, t + 1, r);
    for (auto& [when, ip] : next) {
      if (when > t) continue;
      Ev ev = Ev{}.at(t).from(ip);
      if (r.chance(0.55))
        ev.as("leaked" + std::to_string(r.below(1000000))).fail("unknown_user");
      else
        ev.as("emp" + std::to_string(r.below(50000))).fail();
      test::feed(e, ev, out);
      when = t + 8 * kMinuteMs + static_cast<TimeMs>(r.below(4 * kMinuteMs));
    }
    if (found < 0 && !out.of(EntityType::kGlobal).empty()) found = t;
  }
  REQUIRE(found > 0);
  CHECK(found - kT0 < 45 * kMinuteMs);
  CHECK(out.of(EntityType::kIp).empty());
}

TEST_CASE("credential_stuffing: what must not fire") {
  Collect out;
  test::TestRng r(3);
  SUBCASE(
      "a 5,000-employee office NAT with 6% typos (names and passwords), not configured as "
      "trusted") {
    Engine e = stuffing_engine();
    for (int day = 0; day < 2; ++day)
      for (int i = 0; i < 5000; ++i) {
        const TimeMs t = kT0 + day * kDayMs + i * 700;
        const std::string u = "emp" + std::to_string(i);
        const std::string nat = i % 2 ? "203.0.113.10" : "203.0.113.11";
        if (r.chance(0.03))
          test::feed(e, Ev{}.at(t).as(u + "1").from(nat).fail("unknown_user"), out);
        if (r.chance(0.03)) test::feed(e, Ev{}.at(t).as(u).from(nat).fail(), out);
        test::feed(e, Ev{}.at(t + 300).as(u).from(nat).ok(), out);
      }
    CHECK(out.findings.empty());
  }
  SUBCASE("a busy morning of households with typos") {
    Engine e = stuffing_engine();
    people(e, out, kT0, kT0 + 4 * kHourMs, r);
    CHECK(out.findings.empty());
  }
  SUBCASE("many failing sources with valid names only is not a combo list") {
    Engine e = stuffing_engine();
    for (int i = 0; i < 2000; ++i)
      test::feed(e,
                 Ev{}.at(kT0 + i * 500)
                     .as("emp" + std::to_string(i % 700))
                     .from(test::ipv4(71, i % 100, 1, 1))
                     .fail(),
                 out);
    CHECK(out.of(EntityType::kGlobal).empty());
  }
}

TEST_CASE("credential_stuffing: one source loud on its own is named") {
  Engine e = stuffing_engine();
  Collect out;
  for (int i = 0; i < 60; ++i)
    test::feed(e,
               Ev{}.at(kT0 + i * kSecondMs)
                   .as("leaked" + std::to_string(i))
                   .from("45.61.1.2")
                   .fail(i % 3 ? "unknown_user" : "bad_password"),
               out);
  const auto ip = out.of(EntityType::kIp);
  REQUIRE(!ip.empty());
  CHECK(ip.front().entity == "45.61.1.2");
  CHECK(ip.front().severity == Severity::kMedium);
}

TEST_CASE("credential_stuffing: configuration") {
  Diagnostics d("test.yaml");
  ConfigNode node(YAML::Load("{window_seconds: 10, severity: {medium: 50, high: 40}, bogus: 1}"),
                  "detectors[0]", d);
  {
    MapReader m(node);
    read_credential_stuffing_config(m);
  }
  const std::string text = d.format();
  CHECK(text.find("window_seconds") != std::string::npos);
  CHECK(text.find("must rise") != std::string::npos);
  CHECK(text.find("bogus") != std::string::npos);
}

TEST_CASE("credential_stuffing: portal-wide totals asked for often equal those made from scratch") {
  // totals() keeps the window's older buckets merged and adds the newest. Detector A is asked
  // after every event, with late events landing in buckets it has already merged and buckets
  // moving on; B, fed the same events, makes its totals from scratch each time (asked first for
  // a time far ahead, its merged buckets are for another newest bucket and are made again).
  auto a_detector = std::make_unique<CredentialStuffingDetector>(CredentialStuffingConfig{}, "credential_stuffing");
  auto b_detector = std::make_unique<CredentialStuffingDetector>(CredentialStuffingConfig{}, "credential_stuffing");
  CredentialStuffingDetector& a = *a_detector;
  CredentialStuffingDetector& b = *b_detector;
  Engine ea = test::engine_with(std::move(a_detector));
  Engine eb = test::engine_with(std::move(b_detector));
  Collect out_a, out_b;
  test::TestRng r(11);
  const auto from_scratch = [&b](TimeMs now) {
    (void)b.totals(now + 24 * kHourMs);
    return b.totals(now);
  };
  const auto check_same = [&](TimeMs now) {
    const auto ta = a.totals(now);
    const auto tb = from_scratch(now);
    CHECK(ta.sources == tb.sources);
    CHECK(ta.accounts == tb.accounts);
    CHECK(ta.recent_sources == tb.recent_sources);
    CHECK(ta.failures == tb.failures);
    CHECK(ta.unknown_user == tb.unknown_user);
    CHECK(ta.successes == tb.successes);
    return ta.sources > 0;
  };
  TimeMs t = kT0;
  size_t busy = 0;
  for (int i = 0; i < 6000; ++i) {
    t += 1 + static_cast<TimeMs>(r.below(1700));  // about 85 minutes in all: every bucket moves on
    const TimeMs at = i % 7 == 3 ? t - 50 * kSecondMs : t;  // late, sometimes into the bucket before
    const auto proxy = static_cast<int>(r.below(300));  // 20 tries each: stuffing-shaped
    const std::string ip = test::ipv4(24 + proxy % 60, proxy % 97, (proxy * 7) % 250, 1 + proxy % 200);
    Ev ev = Ev{}.at(at).from(ip);
    if (r.chance(0.6)) {
      ev.as("leaked" + std::to_string(r.below(4000))).fail("unknown_user");
    } else if (r.chance(0.05)) {
      ev.as("emp" + std::to_string(r.below(50000))).ok();
    } else {
      ev.as("emp" + std::to_string(r.below(50000))).fail();
    }
    test::feed(ea, ev, out_a);
    test::feed(eb, ev, out_b);
    CAPTURE(i);
    busy += check_same(t);
  }
  CHECK(busy > 3000);  // the totals were not empty while compared
  for (const TimeMs now : {t - 7 * kMinuteMs, t - 31 * kMinuteMs, t + 20 * kMinuteMs, t}) {
    CAPTURE(now - kT0);
    check_same(now);
  }
}

}  // namespace portalwatch
