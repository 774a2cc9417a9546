// The event-time merge of several partitions: the oldest head goes first; a partition with nothing
// fetched holds the others back only while its next event may be older, and for at most the
// configured wait; a partition at its end holds nothing back. Time is passed in (no sleeping).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "daemon/partition_merge.h"

namespace portalwatch::test {

namespace {

using Instant = PartitionMerge::Instant;
using What = PartitionMerge::Next::What;
using std::chrono::milliseconds;

const Instant t0 = Instant{} + std::chrono::hours(1);

}  // namespace

TEST_CASE("merge: the oldest head goes first; ties go to the lower slot") {
  PartitionMerge m(milliseconds(1000));
  const auto a = m.add(t0), b = m.add(t0), c = m.add(t0);
  m.set_head(a, 300);
  m.set_head(b, 100);
  m.set_head(c, 100);
  auto n = m.next(t0);
  REQUIRE(n.what == What::kRelease);
  CHECK(n.slot == b);
  m.take_head(b, t0);
  m.set_head(b, 400);
  n = m.next(t0);
  REQUIRE(n.what == What::kRelease);
  CHECK(n.slot == c);
}

TEST_CASE("merge: a partition with nothing fetched holds the others back until it brings something or its wait ends") {
  PartitionMerge m(milliseconds(1000));
  const auto a = m.add(t0), b = m.add(t0);
  m.set_head(a, 5000);
  // b has never brought anything: its next event may be older.
  auto n = m.next(t0 + milliseconds(10));
  REQUIRE(n.what == What::kWait);
  CHECK(n.until == t0 + milliseconds(1000));
  // It brings an older event: that goes first.
  m.set_head(b, 1000);
  n = m.next(t0 + milliseconds(20));
  REQUIRE(n.what == What::kRelease);
  CHECK(n.slot == b);
  m.take_head(b, t0 + milliseconds(20));
  // Its last event (1000) is older than a's head: it holds a back again, for at most the wait.
  n = m.next(t0 + milliseconds(30));
  REQUIRE(n.what == What::kWait);
  CHECK(n.until == t0 + milliseconds(1020));
  n = m.next(t0 + milliseconds(1020));
  REQUIRE(n.what == What::kRelease);
  CHECK(n.slot == a);
  CHECK(m.waits_expired() == 1);
  // The expired wait is not counted again while that spell lasts.
  m.take_head(a, t0 + milliseconds(1020));
  m.set_head(a, 6000);
  CHECK(m.next(t0 + milliseconds(1030)).what == What::kRelease);
  CHECK(m.waits_expired() == 1);
}

TEST_CASE("merge: a partition at its end, or one already past the candidate, holds nothing back") {
  PartitionMerge m(milliseconds(1000));
  const auto a = m.add(t0), b = m.add(t0), c = m.add(t0);
  m.set_head(a, 5000);
  m.set_at_end(b, true, t0);
  m.set_head(c, 7000);
  m.take_head(c, t0);  // c's last event was at 7000: in its own order, nothing older follows
  auto n = m.next(t0);
  REQUIRE(n.what == What::kRelease);
  CHECK(n.slot == a);
  m.take_head(a, t0);
  // Nothing left with a head.
  CHECK(m.next(t0).what == What::kNothing);
  // Something came for b (its end no longer holds): it holds a's next back again.
  m.set_head(a, 8000);
  m.set_at_end(b, false, t0);
  CHECK(m.next(t0).what == What::kWait);
}

TEST_CASE("merge: removing a partition lets the others go; its slot is reused") {
  PartitionMerge m(milliseconds(1000));
  const auto a = m.add(t0), b = m.add(t0);
  m.set_head(a, 5000);
  CHECK(m.next(t0).what == What::kWait);
  m.remove(b);
  CHECK(m.active() == 1);
  auto n = m.next(t0);
  REQUIRE(n.what == What::kRelease);
  CHECK(n.slot == a);
  CHECK(m.add(t0) == b);
}

// Partitions each in event-time order, fetched in bursts of random sizes at random moments: the
// merge gives every event in global time order (no event is ever behind one already released),
// with no wait running out, whatever the interleaving of fetches.
TEST_CASE("merge: sorted partitions fetched in random bursts come out in global event-time order") {
  std::mt19937 rng(20261205);
  for (int round = 0; round < 50; ++round) {
    const int partitions = 1 + static_cast<int>(rng() % 16);
    PartitionMerge m(milliseconds(1000));
    std::vector<std::vector<TimeMs>> streams(static_cast<size_t>(partitions));
    std::vector<std::size_t> slot(static_cast<size_t>(partitions)), fetched(static_cast<size_t>(partitions), 0),
        taken(static_cast<size_t>(partitions), 0);
    Instant now = t0;
    std::size_t total = 0;
    for (int p = 0; p < partitions; ++p) {
      TimeMs t = static_cast<TimeMs>(rng() % 1000);
      const std::size_t n = rng() % 200;
      for (std::size_t i = 0; i < n; ++i) streams[static_cast<size_t>(p)].push_back(t += static_cast<TimeMs>(rng() % 50));
      total += n;
      slot[static_cast<size_t>(p)] = m.add(now);
    }
    std::vector<TimeMs> out;
    // A partition's head is its next event once fetched; "fetched" advances in random bursts.
    auto offer = [&](int p) {
      const auto up = static_cast<size_t>(p);
      if (taken[up] < fetched[up]) m.set_head(slot[up], streams[up][taken[up]]);
      else if (fetched[up] == streams[up].size()) m.set_at_end(slot[up], true, now);
    };
    for (int p = 0; p < partitions; ++p) offer(p);
    int guard = 0;
    while (out.size() < total && ++guard < 1'000'000) {
      const auto n = m.next(now);
      if (n.what == What::kRelease) {
        int p = 0;
        while (slot[static_cast<size_t>(p)] != n.slot) ++p;
        const auto up = static_cast<size_t>(p);
        out.push_back(streams[up][taken[up]++]);
        m.take_head(n.slot, now);
        offer(p);
        continue;
      }
      // Waiting: a fetch completes for some partition a little later.
      now += milliseconds(1 + rng() % 5);
      const int p = static_cast<int>(rng() % static_cast<unsigned>(partitions));
      const auto up = static_cast<size_t>(p);
      fetched[up] = std::min(streams[up].size(), fetched[up] + 1 + rng() % 40);
      if (taken[up] < fetched[up] || fetched[up] == streams[up].size()) offer(p);
    }
    REQUIRE(out.size() == total);
    CHECK(std::is_sorted(out.begin(), out.end()));
    CHECK(m.waits_expired() == 0);
  }
}

}  // namespace portalwatch::test
