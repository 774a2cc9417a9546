// failure_spike: the portal-wide failure ratio against its learned baseline; the 8 a.m. peak,
// payday volume and a password-expiry morning are not spikes.
#include "detectors/failure_spike.h"

#include <doctest/doctest.h>

#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Collect;
using test::Ev;

namespace {

const TimeMs kMidnight = *parse_rfc3339("2026-12-14T06:00:00Z");  // midnight Central time

Engine spike_engine(FailureSpikeConfig c = {}) {
  return test::engine_with(std::make_unique<FailureSpikeDetector>(c, "failure_spike"));
}

// Logins at per_minute, failing with `ratio` (bad_password), `expired` more failing with
// expired_password.
void traffic(Engine& e, Collect& out, TimeMs from, TimeMs to, double per_minute, double ratio,
             test::TestRng& r, double expired = 0) {
  const auto step = static_cast<TimeMs>(60'000.0 / per_minute);
  for (TimeMs t = from; t < to; t += step) {
    Ev ev = Ev{}.at(t)
                .as("emp" + std::to_string(r.below(50000)))
                .from(test::ipv4(73, 1, 2, 1 + static_cast<int>(r.below(250))));
    const double u = r.uniform();
    if (u < expired)
      ev.fail("expired_password");
    else if (u < expired + ratio)
      ev.fail();
    test::feed(e, ev, out);
  }
}

// A day shaped like the portal's: quiet night, 8 a.m. peak ten times the night's rate, an
// afternoon.
void ordinary_day(Engine& e, Collect& out, TimeMs day, test::TestRng& r,
                  double expired_morning = 0) {
  traffic(e, out, day, day + 7 * kHourMs, 6, 0.06, r);
  traffic(e, out, day + 7 * kHourMs, day + 8 * kHourMs, 30, 0.06, r);
  traffic(e, out, day + 8 * kHourMs, day + 9 * kHourMs, 60, 0.06, r, 0);
  traffic(e, out, day + 9 * kHourMs, day + 12 * kHourMs, 40, 0.06, r, expired_morning);
  traffic(e, out, day + 12 * kHourMs, day + 24 * kHourMs, 15, 0.06, r);
}

}  // namespace

TEST_CASE("failure_spike: the 8 a.m. peak and a password-expiry morning are not spikes") {
  Engine e = spike_engine();
  Collect out;
  test::TestRng r(5);
  ordinary_day(e, out, kMidnight, r);
  CHECK(out.findings.empty());
  // Day 2: 30% of morning logins fail with expired_password (ignored by default).
  ordinary_day(e, out, kMidnight + kDayMs, r, 0.3);
  CHECK(out.findings.empty());
}

TEST_CASE("failure_spike: a payday of twice the traffic at the usual ratio is not a spike") {
  Engine e = spike_engine();
  Collect out;
  test::TestRng r(8);
  traffic(e, out, kMidnight, kMidnight + 3 * kHourMs, 20, 0.07, r);
  traffic(e, out, kMidnight + 3 * kHourMs, kMidnight + 5 * kHourMs, 50, 0.07, r);
  CHECK(out.findings.empty());
}

TEST_CASE("failure_spike: a real spike fires within minutes, severity grows with the excess") {
  Engine e = spike_engine();
  Collect out;
  test::TestRng r(9);
  const TimeMs start = kMidnight + 2 * kHourMs;
  traffic(e, out, kMidnight, start, 20, 0.05, r);
  REQUIRE(out.findings.empty());
  // Half of all attempts fail, at three times the volume, for twenty minutes.
  traffic(e, out, start, start + 20 * kMinuteMs, 60, 0.5, r);
  REQUIRE(!out.findings.empty());
  const Finding& f = out.findings.front();
  CHECK(f.detector == "failure_spike");
  CHECK(f.entity_type == EntityType::kGlobal);
  CHECK(f.at - start < 6 * kMinuteMs);
  CHECK(std::stod(*f.evidence.get("expected_ratio")) == doctest::Approx(0.05).epsilon(0.5));
  CHECK(std::stoll(*f.evidence.get("failures_bad_password")) > 0);
  CHECK(out.at_least(Severity::kHigh) >= 1);
  // The attack did not become the new normal: the expected ratio stayed where it was.
  auto* d = dynamic_cast<const FailureSpikeDetector*>(e.detectors()[0].detector.get());
  REQUIRE(d);
  CHECK(d->expected_ratio(start + 20 * kMinuteMs) < 0.1);
}

TEST_CASE("failure_spike: nothing during warm-up, nothing on a handful of attempts") {
  Engine e = spike_engine();
  Collect out;
  test::TestRng r(4);
  traffic(e, out, kMidnight, kMidnight + 30 * kMinuteMs, 30, 0.6, r);  // before the baseline exists
  CHECK(out.findings.empty());
  traffic(e, out, kMidnight + 30 * kMinuteMs, kMidnight + 3 * kHourMs, 30, 0.05, r);
  traffic(e, out, kMidnight + 3 * kHourMs, kMidnight + 4 * kHourMs, 1, 0.9,
          r);  // 60 attempts an hour
  CHECK(out.findings.empty());
}

TEST_CASE("failure_spike: ignore_reasons also takes reason words the contract does not list") {
  FailureSpikeConfig c;
  c.ignore_reasons = {"expired_password", "captcha_failed"};
  Engine e = spike_engine(c);
  Collect out;
  test::TestRng r(12);
  traffic(e, out, kMidnight, kMidnight + 2 * kHourMs, 30, 0.05, r);
  for (TimeMs t = kMidnight + 2 * kHourMs; t < kMidnight + 3 * kHourMs; t += kSecondMs)
    test::feed(e, Ev{}.at(t).as("emp1").fail("captcha_failed"), out);
  CHECK(out.findings.empty());
}

}  // namespace portalwatch
