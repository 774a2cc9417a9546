// The ledger of published findings: a restart must not fire the same finding twice, while
// escalations and new episodes still pass.
#include <doctest/doctest.h>

#include "daemon/finding_ledger.h"
#include "detectors/profile.h"

namespace portalwatch::test {

namespace {

Finding finding(std::string entity, Severity s, TimeMs at, TimeMs window = 10 * kMinuteMs) {
  Finding f = make_finding("brute_force", "brute_force", s, EntityType::kUser, std::move(entity), at, window);
  f.seq = static_cast<std::uint64_t>(at);
  return f;
}

}  // namespace

TEST_CASE("ledger: a repeat within the window is caught; an escalation, another entity or a later episode is not") {
  FindingLedger ledger;
  const TimeMs t0 = 1'800'000'000'000;
  const Finding published = finding("jdoe", Severity::kMedium, t0);
  ledger.restore(FindingLedger::key_of(published), LedgerEntry::of(published));
  // The earlier run went on to t0 + 20 min (its newest finding).
  const Finding later = finding("zed", Severity::kLow, t0 + 20 * kMinuteMs);
  ledger.restore(FindingLedger::key_of(later), LedgerEntry::of(later));
  CHECK(ledger.repeats(finding("jdoe", Severity::kMedium, t0 + kMinuteMs)));
  CHECK(ledger.repeats(finding("jdoe", Severity::kLow, t0 + kMinuteMs)));
  CHECK_FALSE(ledger.repeats(finding("jdoe", Severity::kHigh, t0 + kMinuteMs)));
  CHECK_FALSE(ledger.repeats(finding("asmith", Severity::kMedium, t0 + kMinuteMs)));
  CHECK_FALSE(ledger.repeats(finding("jdoe", Severity::kMedium, t0 + 11 * kMinuteMs)));
  // Another instance of the same detector is another finding.
  Finding other = finding("jdoe", Severity::kMedium, t0 + kMinuteMs);
  other.name = "brute_force_strict";
  CHECK_FALSE(ledger.repeats(other));
}

TEST_CASE("ledger: this run's own findings never suppress (the detectors' episodes decide, as in a replay)") {
  FindingLedger ledger;
  const TimeMs t0 = 1'800'000'000'000;
  ledger.record(finding("jdoe", Severity::kMedium, t0));
  // A detector that reports the same severity again within its window (news: successes in a
  // stuffing wave) is heard.
  CHECK_FALSE(ledger.repeats(finding("jdoe", Severity::kMedium, t0 + kMinuteMs)));
}

TEST_CASE("ledger: an earlier run's finding suppresses repeats only up to where that run stopped") {
  FindingLedger ledger;
  const TimeMs t0 = 1'800'000'000'000;
  const Finding published = finding("jdoe", Severity::kMedium, t0);  // the newest the earlier run published
  ledger.restore(FindingLedger::key_of(published), LedgerEntry::of(published));
  CHECK(ledger.repeats(finding("jdoe", Severity::kMedium, t0)));  // derived again from the same events
  // After where the earlier run stopped, within the window: a new finding of this run.
  CHECK_FALSE(ledger.repeats(finding("jdoe", Severity::kMedium, t0 + kMinuteMs)));
  // Read back from the alerts topic (another member's), likewise.
  FindingLedger taken;
  taken.remember(FindingLedger::key_of(published), LedgerEntry::of(published));
  CHECK(taken.repeats(finding("jdoe", Severity::kLow, t0)));
  CHECK_FALSE(taken.repeats(finding("jdoe", Severity::kLow, t0 + 1)));
}

TEST_CASE("ledger: entries survive encoding, are pruned after their window, and stay bounded") {
  LedgerEntry e{Severity::kCritical, 1'800'000'000'000, 1'800'000'600'000, 42};
  const auto back = LedgerEntry::decode(e.encode());
  REQUIRE(back);
  CHECK(back->severity == Severity::kCritical);
  CHECK(back->at == e.at);
  CHECK(back->until == e.until);
  CHECK(back->seq == 42);
  CHECK_FALSE(LedgerEntry::decode(""));
  CHECK_FALSE(LedgerEntry::decode(e.encode().substr(1)));
  std::string bad = e.encode();
  bad[1] = 9;  // no such severity
  CHECK_FALSE(LedgerEntry::decode(bad));

  FindingLedger ledger(100);
  const TimeMs t0 = 1'800'000'000'000;
  for (int i = 0; i < 1000; ++i) {
    ledger.record(finding("u" + std::to_string(i), Severity::kMedium, t0 + i));
    REQUIRE(ledger.size() <= 100);
  }
  CHECK(ledger.prune(t0 + 850 + 10 * kMinuteMs).empty());  // the newest are kept
  FindingLedger restored;
  restored.restore(FindingLedger::key_of(finding("jdoe", Severity::kHigh, t0)), e);
  CHECK(restored.repeats(finding("jdoe", Severity::kHigh, t0)));
  const auto gone = restored.prune(e.until + 1);
  CHECK(gone.size() == 1);
  CHECK(restored.size() == 0);
}

TEST_CASE("profile: a sign-in replayed after a restart is judged as it was at its time") {
  AccountProfile p;
  Event ev;
  ev.device_id = "d-laptop";
  ev.source_ip = *IpAddress::parse("73.12.9.4");
  const TimeMs t0 = 1'800'000'000'000;
  for (int i = 0; i < 5; ++i) {
    ev.time = t0 + i * kHourMs;
    p.observe_sign_in(ev);
  }
  Event thief = ev;
  thief.device_id = "d-thief";
  thief.source_ip = *IpAddress::parse("159.203.9.9");
  thief.time = t0 + 10 * kHourMs;
  p.observe_sign_in(thief);  // the store already includes it
  p.observe_sign_in(ev);     // and a later ordinary sign-in
  const Novelty then = p.novelty_as_of(SignInKeys::of(thief), thief.time);
  CHECK(then.device);
  CHECK(then.network);
  CHECK_FALSE(p.novelty(thief).device);  // judged on today's profile it would look known
  const Novelty usual = p.novelty_as_of(SignInKeys::of(ev), t0 + 3 * kHourMs);
  CHECK_FALSE(usual.device);
  CHECK_FALSE(usual.network);
  // The very first sign-in was new in everything.
  CHECK(p.novelty_as_of(SignInKeys::of(ev), t0).device);
}


TEST_CASE("ledger: after mark_all_earlier, this run's findings so far suppress their repeats as a restart's would") {
  FindingLedger ledger;
  const TimeMs t0 = 1'800'000'000'000;
  ledger.record(finding("jdoe", Severity::kMedium, t0));
  ledger.record(finding("zed", Severity::kLow, t0 + 5 * kMinuteMs));  // the newest so far
  CHECK_FALSE(ledger.repeats(finding("jdoe", Severity::kMedium, t0)));
  ledger.mark_all_earlier();
  CHECK(ledger.repeats(finding("jdoe", Severity::kMedium, t0)));              // derived again
  CHECK_FALSE(ledger.repeats(finding("jdoe", Severity::kHigh, t0)));          // an escalation
  CHECK_FALSE(ledger.repeats(finding("jdoe", Severity::kMedium, t0 + 6 * kMinuteMs)));  // after the mark
  CHECK_FALSE(ledger.repeats(finding("asmith", Severity::kMedium, t0)));
}

TEST_CASE("ledger: published_exactly knows each finding published, restored or read back, until forgotten") {
  FindingLedger ledger;
  const TimeMs t0 = 1'800'000'000'000;
  ledger.record(finding("jdoe", Severity::kHigh, t0));
  ledger.record(finding("jdoe", Severity::kMedium, t0 + 2 * kMinuteMs));  // the entry now; the first stays known
  CHECK(ledger.published_exactly(finding("jdoe", Severity::kHigh, t0)));
  CHECK(ledger.published_exactly(finding("jdoe", Severity::kMedium, t0 + 2 * kMinuteMs)));
  CHECK_FALSE(ledger.published_exactly(finding("jdoe", Severity::kHigh, t0 - 1)));   // sooner: news
  CHECK_FALSE(ledger.published_exactly(finding("jdoe", Severity::kCritical, t0)));  // another severity
  CHECK_FALSE(ledger.published_exactly(finding("asmith", Severity::kHigh, t0)));
  LedgerEntry e = LedgerEntry::of(finding("zed", Severity::kLow, t0));
  ledger.restore(FindingLedger::key_of(finding("zed", Severity::kLow, t0)), e);
  CHECK(ledger.published_exactly(finding("zed", Severity::kLow, t0)));
  ledger.forget_published_before(t0 + kMinuteMs);
  CHECK_FALSE(ledger.published_exactly(finding("jdoe", Severity::kHigh, t0)));
  CHECK_FALSE(ledger.published_exactly(finding("zed", Severity::kLow, t0)));
  CHECK(ledger.published_exactly(finding("jdoe", Severity::kMedium, t0 + 2 * kMinuteMs)));
}

}  // namespace portalwatch::test
