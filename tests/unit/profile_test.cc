// Per-account profiles: novelty of a sign-in, bounds, expiry, the stored form, and the RocksDB
// store surviving a reopen with its consumer positions.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>

#include "daemon/state_store.h"
#include "detectors/decoder.h"
#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Ev;

namespace {

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");

Event decoded(const Ev& e, std::string& keep) {
  keep = e.json();
  static EventDecoder decoder;
  Event ev;
  REQUIRE(decoder.decode(keep, false, ev).ok);
  return ev;
}

Ev home(TimeMs t) {
  Ev e = Ev{}.at(t).as("jdoe42").from("73.12.9.4").ok().at_place(38.57, -92.17, "US");
  e.asn = 7922;
  e.device = "d-laptop";
  return e;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/portalwatch-profiles-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// A state store in dir holding at most cache_accounts profiles in memory.
std::unique_ptr<StateStore> open_store_caching(const TempDir& dir, std::size_t cache_accounts) {
  std::string error;
  StateStoreOptions o{dir.path};
  o.cache_accounts = cache_accounts;
  auto store = StateStore::open(o, error);
  REQUIRE_MESSAGE(store, error);
  return store;
}

// One sign-in of account from its home network at t, marked changed.
void sign_in_at_home(StateStore& store, const std::string& account, TimeMs t, std::string& keep) {
  store.profile(account).observe_sign_in(decoded(home(t), keep));
  store.changed(account);
}

}  // namespace

TEST_CASE("profile: the first sign-in is new in everything, the second in nothing") {
  AccountProfile p;
  std::string keep;
  Novelty n = p.observe_sign_in(decoded(home(kT0), keep));
  CHECK(n.device);
  CHECK(n.network);
  CHECK_FALSE(n.country);  // a country is new only to an account already placed somewhere
  CHECK(n.client);
  n = p.observe_sign_in(decoded(home(kT0 + kHourMs), keep));
  CHECK_FALSE(n.device);
  CHECK_FALSE(n.network);
  CHECK_FALSE(n.country);
  CHECK_FALSE(n.client);
  CHECK(p.sign_ins == 2);
  CHECK(p.devices.find(AccountProfile::device_key(decoded(home(kT0), keep)))->count == 2);
  // A phone on the carrier: new device and network, same country.
  Ev phone =
      Ev{}.at(kT0 + 2 * kHourMs).as("jdoe42").from("174.243.10.2").ok().at_place(38.9, -94.5, "US");
  phone.asn = 22394;
  phone.device = "d-phone";
  phone.ua =
      "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 "
      "Safari/604.1";
  n = p.novelty(decoded(phone, keep));
  CHECK(n.device);
  CHECK(n.network);
  CHECK_FALSE(n.country);
  CHECK(n.client);
  Ev abroad = home(kT0 + 3 * kHourMs).at_place(50.45, 30.52, "UA");
  CHECK(p.novelty(decoded(abroad, keep)).country);
}

TEST_CASE("profile: bounded per account, least recently seen gives way; expiry") {
  AccountProfile p;
  std::string keep;
  for (int i = 0; i < 20; ++i) {
    Ev e = home(kT0 + i * kHourMs);
    e.device = "d-" + std::to_string(i);
    p.observe_sign_in(decoded(e, keep));
  }
  CHECK(p.devices.size == AccountProfile::kDevices);
  Ev newest = home(kT0);
  newest.device = "d-19";
  CHECK_FALSE(p.novelty(decoded(newest, keep)).device);
  newest.device = "d-0";
  CHECK(p.novelty(decoded(newest, keep)).device);
  p.expire(kT0 + 40 * kHourMs, 24 * kHourMs);
  CHECK(p.devices.size == 4);  // d-16 to d-19 were seen within the day
}

TEST_CASE("profile: the stored form round-trips and rejects damage") {
  AccountProfile p;
  std::string keep;
  for (int i = 0; i < 5; ++i) p.observe_sign_in(decoded(home(kT0 + i * kHourMs), keep));
  const std::string bytes = p.encode();
  const auto back = AccountProfile::decode(bytes);
  REQUIRE(back);
  CHECK(back->encode() == bytes);
  CHECK(back->sign_ins == 5);
  CHECK(back->last_located);
  CHECK_FALSE(AccountProfile::decode(bytes.substr(0, bytes.size() - 1)));
  CHECK_FALSE(AccountProfile::decode(bytes + "x"));
  CHECK_FALSE(AccountProfile::decode(""));
  std::string wrong_format = bytes;
  wrong_format[0] = 9;
  CHECK_FALSE(AccountProfile::decode(wrong_format));
  std::printf(
      "profile: %zu bytes stored for an account with 1 device, network, country and client\n",
      bytes.size());
}

TEST_CASE("profile store: a known device survives a reopen, with the positions it reflects") {
  TempDir dir;
  std::string error, keep;
  {
    auto store = StateStore::open({dir.path}, error);
    REQUIRE_MESSAGE(store, error);
    CHECK(store->positions().empty());
    AccountProfile& p = store->profile("jdoe42");
    CHECK(p.empty());
    p.observe_sign_in(decoded(home(kT0), keep));
    store->changed("jdoe42");
    REQUIRE(store->commit({{"portal-events/0", 1234}}, true, error));
    // Changed after the commit and never committed: as if the process died here.
    store->profile("other").observe_sign_in(decoded(home(kT0), keep));
    store->changed("other");
  }
  auto store = StateStore::open({dir.path}, error);
  REQUIRE_MESSAGE(store, error);
  CHECK(store->position("portal-events/0") == 1234);
  CHECK(store->position("portal-events/1") == -1);
  CHECK_FALSE(store->profile("jdoe42").novelty(decoded(home(kT0 + kDayMs), keep)).device);
  CHECK(store->profile("jdoe42").sign_ins == 1);
  CHECK(store->profile("other").empty());  // not committed, not there
}

TEST_CASE("profile store: a bounded cache reads evicted profiles back") {
  TempDir dir;
  std::string error, keep;
  auto store = open_store_caching(dir, 16);
  for (int i = 0; i < 100; ++i) {
    const std::string account = "emp" + std::to_string(i);
    sign_in_at_home(*store, account, kT0 + i, keep);
    if (i % 10 == 9) REQUIRE(store->commit({}, false, error));
  }
  CHECK(store->stats().cached <= 32);
  for (int i = 0; i < 100; ++i) CHECK(store->profile("emp" + std::to_string(i)).sign_ins == 1);
  CHECK(store->stats().reads > 0);
  CHECK(store->stats().corrupt == 0);
}

}  // namespace portalwatch

namespace portalwatch {
namespace {

TEST_CASE("profile store: accounts changing faster than commits grow the cache until the commit, then it shrinks") {
  TempDir dir;
  std::string error, keep;
  auto store = open_store_caching(dir, 16);
  // 200 accounts changed and none written yet: none can be dropped, so the cache holds them all.
  for (int i = 0; i < 200; ++i) {
    const std::string account = "emp" + std::to_string(i);
    sign_in_at_home(*store, account, kT0 + i, keep);
    store->changed(account);  // a second time: written once
  }
  CHECK(store->stats().cached == 200);
  REQUIRE(store->commit({}, false, error));
  CHECK(store->stats().profiles_written == 200);
  // Written, so clean: the next miss brings the cache back under its cap.
  store->profile("someone-else");
  CHECK(store->stats().cached <= 16);
  for (int i = 0; i < 200; ++i) CHECK(store->profile("emp" + std::to_string(i)).sign_ins == 1);
  CHECK(store->stats().cached <= 32);
  // Nothing changed since: a commit writes no profile.
  REQUIRE(store->commit({}, false, error));
  CHECK(store->stats().profiles_written == 200);
}

TEST_CASE("state store: published findings, the outbox, the next id and warm-up offsets survive a reopen") {
  TempDir dir;
  std::string error;
  FindingLedger ledger;
  Finding a = make_finding("brute_force", "brute_force", Severity::kMedium, EntityType::kUser, "jdoe42", kT0, 10 * kMinuteMs);
  a.seq = 7;
  Finding b = make_finding("account_takeover", "account_takeover", Severity::kCritical, EntityType::kUser, "asmith", kT0,
                           2 * kHourMs);
  b.seq = 8;
  {
    auto store = StateStore::open({dir.path}, error);
    REQUIRE_MESSAGE(store, error);
    CHECK(store->next_finding_id() == 0);
    for (const Finding* f : {&a, &b}) {
      REQUIRE(store->stage_finding(FindingLedger::key_of(*f), LedgerEntry::of(*f), {f->seq, f->entity, f->to_json()}, f->seq + 1, error));
    }
    REQUIRE(store->delivered(7, error));  // the broker confirmed a; b never was (the process dies)
    REQUIRE(store->commit({{"events/0", 100}}, true, error, {}, {{"events/0", 40}}));
  }
  {
    auto store = StateStore::open({dir.path}, error);
    REQUIRE_MESSAGE(store, error);
    CHECK(store->next_finding_id() == 9);
    REQUIRE(store->undelivered().size() == 1);
    CHECK(store->undelivered()[0].seq == 8);
    CHECK(store->undelivered()[0].key == "asmith");
    CHECK(store->undelivered()[0].json == b.to_json());
    CHECK(store->position("events/0") == 100);
    CHECK(store->warmup("events/0") == 40);
    CHECK(store->warmup("events/1") == -1);
    store->restore_ledger(ledger);
    CHECK(ledger.size() == 2);
    CHECK(ledger.repeats(a));
    CHECK(ledger.repeats(b));
    // The brute-force entry's window has ended: the next commit deletes it.
    REQUIRE(store->commit({}, true, error, ledger.prune(kT0 + 20 * kMinuteMs)));
  }
  auto store = StateStore::open({dir.path}, error);
  REQUIRE_MESSAGE(store, error);
  FindingLedger after;
  store->restore_ledger(after);
  CHECK(after.size() == 1);
  CHECK(after.repeats(b));
}

}  // namespace
}  // namespace portalwatch

namespace portalwatch {
namespace {

TEST_CASE("state store: lockdowns in force and the next decision id survive a reopen; an off removes one") {
  TempDir dir;
  std::string error;
  Lockdown l;
  l.decision.seq = 3;
  l.decision.scope = *Scope::parse("app:hsa");
  l.decision.at = kT0;
  l.decision.by = "policy:savings";
  l.policy = "savings";
  {
    auto store = StateStore::open({dir.path}, error);
    REQUIRE_MESSAGE(store, error);
    CHECK(store->lockdowns().empty());
    REQUIRE(store->write_lockdown("lockdown app:hsa", &l, 4, error));
    Lockdown ip = l;
    ip.decision.scope = *Scope::parse("ip:203.0.113.9");
    REQUIRE(store->write_lockdown("lockdown ip:203.0.113.9", &ip, 5, error));
    REQUIRE(store->write_lockdown("lockdown ip:203.0.113.9", nullptr, 6, error));
  }
  auto store = StateStore::open({dir.path}, error);
  REQUIRE_MESSAGE(store, error);
  REQUIRE(store->lockdowns().size() == 1);
  CHECK(store->lockdowns()[0].decision.scope.key() == "app:hsa");
  CHECK(store->next_decision_id() == 6);
}

}  // namespace
}  // namespace portalwatch
