// What a group member reads when it takes over another member's partitions: the warm-up offset in
// the commit metadata and the findings published on the alerts topic, back into the ledger.
#include <doctest/doctest.h>

#include "daemon/finding_ledger.h"
#include "daemon/takeover.h"

namespace portalwatch::test {

TEST_CASE("takeover: the warm-up offset travels in commit metadata; anything else there is ignored") {
  CHECK(warmup_metadata(1234) == "portalwatch warmup=1234");
  CHECK(parse_warmup_metadata(warmup_metadata(1234)) == 1234);
  CHECK(parse_warmup_metadata(warmup_metadata(0)) == 0);
  CHECK_FALSE(parse_warmup_metadata(""));
  CHECK_FALSE(parse_warmup_metadata("portalwatch warmup="));
  CHECK_FALSE(parse_warmup_metadata("portalwatch warmup=-5"));
  CHECK_FALSE(parse_warmup_metadata("portalwatch warmup=12x"));
  CHECK_FALSE(parse_warmup_metadata("some other tool's metadata"));
}

TEST_CASE("takeover: a published finding read back suppresses its repeat, not an escalation") {
  Finding f = make_finding("brute_force", "brute_force", Severity::kMedium, EntityType::kUser, "jdoe42",
                           1'700'000'000'000, 10 * kMinuteMs);
  f.seq = 42;
  const auto read = parse_published_finding(f.to_json());
  REQUIRE(read);
  CHECK(read->ledger_key == FindingLedger::key_of(f));
  CHECK(read->entry.seq == 0);  // a running number of the process that published it: not in the JSON
  CHECK(read->entry.at == f.at);
  CHECK(read->entry.severity == Severity::kMedium);
  CHECK(read->entry.until == f.at + 10 * kMinuteMs);

  FindingLedger ledger;
  ledger.remember(read->ledger_key, read->entry);
  Finding again = f;  // derived again from the same events by the member taking over
  CHECK(ledger.repeats(again));
  again.severity = Severity::kHigh;
  CHECK_FALSE(ledger.repeats(again));
  // Past the newest finding the other member published: new, though inside the window.
  Finding after = f;
  after.at += kSecondMs;
  CHECK_FALSE(ledger.repeats(after));

  // A known higher entry is not lowered by an older, lower one read back.
  Finding high = f;
  high.severity = Severity::kHigh;
  ledger.record(high);
  ledger.remember(read->ledger_key, read->entry);
  again.severity = Severity::kHigh;
  CHECK(ledger.repeats(again));

  // A named instance keeps its name; what is not a finding is not read.
  Finding named = make_finding("brute_force", "vpn-brute-force", Severity::kLow, EntityType::kIp, "203.0.113.9",
                               1'700'000'000'000, kMinuteMs);
  CHECK(parse_published_finding(named.to_json())->ledger_key == FindingLedger::key_of(named));
  CHECK_FALSE(parse_published_finding("{\"id\":\"d-000000000001\",\"kind\":\"decision\"}"));
  CHECK_FALSE(parse_published_finding("not json"));
}

}  // namespace portalwatch::test
