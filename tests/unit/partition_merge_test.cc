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

namespace portalwatch::test {

TEST_CASE("merge: with hundreds of partitions joining, leaving and ending at random, the choice is a full scan's") {
  // The heap of heads and the list of empty partitions against the plain definition, recomputed
  // over every partition at each step.
  std::mt19937 rng(20261206);
  PartitionMerge m(milliseconds(1000));
  struct Model {
    bool used = false, has_head = false, at_end = false;
    TimeMs head = 0;
  };
  std::vector<Model> model;
  std::vector<std::size_t> used;
  Instant now = t0;
  for (int step = 0; step < 200000; ++step) {
    now += milliseconds(1);
    const int op = std::uniform_int_distribution<int>(0, 99)(rng);
    if (used.size() < 3 || (op < 3 && used.size() < 600)) {
      const std::size_t slot = m.add(now);
      if (slot >= model.size()) model.resize(slot + 1);
      model[slot] = Model{.used = true};
      used.push_back(slot);
      continue;
    }
    const std::size_t pick = std::uniform_int_distribution<std::size_t>(0, used.size() - 1)(rng);
    const std::size_t slot = used[pick];
    Model& s = model[slot];
    if (op < 5) {
      m.remove(slot);
      s = Model{};
      used.erase(used.begin() + static_cast<std::ptrdiff_t>(pick));
    } else if (op < 55 && !s.has_head) {
      s.has_head = true, s.at_end = false;
      s.head = std::uniform_int_distribution<TimeMs>(0, 50)(rng);  // many ties
      m.set_head(slot, s.head);
    } else if (op < 60 && !s.has_head) {
      s.at_end = !s.at_end;
      m.set_at_end(slot, s.at_end, now);
    }
    // The oldest head, ties to the lower slot; every partition with nothing and not at its end
    // has an expired wait or is past it (set far behind: they were added with no last event).
    std::size_t best = model.size();
    for (std::size_t i = 0; i < model.size(); ++i)
      if (model[i].used && model[i].has_head && (best == model.size() || model[i].head < model[best].head))
        best = i;
    std::size_t with_head = 0;
    for (const auto& x : model) with_head += x.used && x.has_head;
    REQUIRE(m.with_head() == with_head);
    // Asked past every wait, the merge releases the oldest head whenever there is one.
    const auto n = m.next(now + std::chrono::hours(1));
    if (best == model.size()) {
      REQUIRE(n.what == What::kNothing);
      continue;
    }
    REQUIRE(n.what == What::kRelease);
    REQUIRE(n.slot == best);
    if (std::uniform_int_distribution<int>(0, 1)(rng)) {
      m.take_head(best, now);
      model[best].has_head = false;
    }
  }
}

}  // namespace portalwatch::test
