// Two `portalwatchd run` processes in one consumer group (cooperative rebalancing, a state store
// each) share a four-partition events topic while brute-force attacks stream in; one is killed
// with SIGKILL while several attacks on its partitions are under way. The survivor takes its
// partitions over, warms up from the offset the dead member committed with its offsets, and reads
// back what it published: every attack is reported exactly once and its hook runs once.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "daemon/embedded_broker.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/kafka_harness.h"
#include "tests/integration/traffic.h"

namespace portalwatch::test {

namespace {

using SteadyClock = std::chrono::steady_clock;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The partitions a member holds at the end of its log ("kafka: assigned events/0,events/2 ..."
// and "kafka: revoked ..." lines, cooperative: increments).
std::set<int> held_partitions(const std::string& log) {
  std::set<int> held;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    const bool assigned = line.find("kafka: assigned ") != std::string::npos;
    const bool revoked = line.find("kafka: revoked ") != std::string::npos;
    if (!assigned && !revoked) continue;
    for (std::size_t at = line.find("events/"); at != std::string::npos; at = line.find("events/", at + 7)) {
      const int p = std::atoi(line.c_str() + at + 7);
      if (assigned) held.insert(p);
      else held.erase(p);
    }
  }
  return held;
}

}  // namespace

TEST_CASE("faults: two daemons in one group, one killed with SIGKILL mid-attack; the survivor takes over and "
          "reports every attack exactly once") {
  constexpr int kPartitions = 4;
  constexpr int kAttacks = 16;
  constexpr TimeMs kStreamMs = 16'000;
  constexpr TimeMs kKillAtMs = 7'000;
  const std::string group = "pair";
  std::string error;
  auto broker = EmbeddedBroker::start(1, error);
  REQUIRE_MESSAGE(broker, error);
  REQUIRE(broker->create_topic("events", kPartitions, error));
  REQUIRE(broker->create_topic("alerts", 1, error));
  REQUIRE(broker->create_topic("decisions", 1, error));

  char tmpl[] = "/tmp/portalwatch-group-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  struct Member {
    std::string name, config, log, hooks;
    int port = 0;
    pid_t pid = 0;
  };
  Member members[2];
  for (int i = 0; i < 2; ++i) {
    Member& m = members[i];
    m.name = i == 0 ? "a" : "b";
    m.config = dir + "/" + m.name + ".yaml";
    m.log = dir + "/" + m.name + ".log";
    m.hooks = dir + "/" + m.name + "-hook-runs.jsonl";
    m.port = free_port();
    std::ofstream(m.config) << test_daemon_yaml(broker->bootstrap(), group, dir + "/" + m.name + "-state", m.port, m.hooks,
                                                "    session.timeout.ms: \"3000\"\n    heartbeat.interval.ms: \"300\"\n"
                                                "    partition.assignment.strategy: cooperative-sticky\n",
                                                "member-" + m.name);
  }
  auto assigned = [&](const Member& m) { return metric(scrape(m.port), "portalwatch_kafka_assigned_partitions"); };

  // A starts alone and takes every partition; B joins and the group splits them.
  members[0].pid = spawn_daemon(members[0].config, members[0].log);
  auto deadline = SteadyClock::now() + std::chrono::seconds(30);
  while (SteadyClock::now() < deadline && assigned(members[0]) != kPartitions)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE(assigned(members[0]) == kPartitions);
  members[1].pid = spawn_daemon(members[1].config, members[1].log);
  deadline = SteadyClock::now() + std::chrono::seconds(30);
  while (SteadyClock::now() < deadline && !(assigned(members[0]) >= 1 && assigned(members[1]) >= 1 &&
                                            assigned(members[0]) + assigned(members[1]) == kPartitions))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE_MESSAGE(assigned(members[1]) >= 1, "the second member got no partition; logs in " << dir);
  REQUIRE(assigned(members[0]) + assigned(members[1]) == kPartitions);

  // Ordinary users, and brute-force attacks (12 failures, 300 ms apart) starting every 700 ms: at
  // the kill about five are under way.
  std::mt19937 rng(std::random_device{}());
  auto uniform = [&](TimeMs lo, TimeMs hi) { return std::uniform_int_distribution<TimeMs>(lo, hi)(rng); };
  std::vector<Timed> plan;
  add_ordinary_users(plan, 40, 6, kStreamMs, rng);
  for (int b = 0; b < kAttacks; ++b) add_brute_force(plan, b, 1'000 + b * 700 + uniform(0, 100), 300);
  sort_plan(plan);
  const std::size_t total = plan.size();
  std::atomic<std::size_t> sent{0};
  std::atomic<bool> delivered{false}, producer_done{false};
  const auto t0 = SteadyClock::now();
  std::thread producer([&] {
    delivered = stream_plan(broker->bootstrap(), "events", plan, sent);
    producer_done = true;
  });

  // Kill B once it has processed events of the stream, mid-attack.
  std::this_thread::sleep_until(t0 + std::chrono::milliseconds(kKillAtMs));
  const std::set<int> b_partitions = held_partitions(slurp(members[1].log));
  const double b_processed = metric(scrape(members[1].port), "portalwatch_events_received_total");
  REQUIRE(kill(members[1].pid, SIGKILL) == 0);
  int status = 0;
  waitpid(members[1].pid, &status, 0);
  const auto killed_at = SteadyClock::now();

  // The survivor takes every partition and catches up.
  double takeover_s = -1;
  std::int64_t committed = 0;
  std::string last;
  deadline = killed_at + std::chrono::seconds(60);
  while (SteadyClock::now() < deadline) {
    last = scrape(members[0].port);
    if (takeover_s < 0 && metric(last, "portalwatch_kafka_assigned_partitions") == kPartitions)
      takeover_s = std::chrono::duration<double>(SteadyClock::now() - killed_at).count();
    if (producer_done && takeover_s >= 0 && metric(last, "portalwatch_consumer_lag_messages") == 0) {
      committed = committed_total(broker->bootstrap(), group, "events", kPartitions);
      if (committed >= static_cast<std::int64_t>(total)) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  producer.join();
  kill(members[0].pid, SIGTERM);
  waitpid(members[0].pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(delivered.load());
  CHECK_MESSAGE(takeover_s >= 0, "the survivor never held every partition; logs in " << dir);
  CHECK_MESSAGE(committed == static_cast<std::int64_t>(total), "logs in " << dir);

  // Which attacks were under way on the killed member's partitions.
  std::map<std::string, int> partition_of;
  for (const auto& m : read_topic_messages(broker->bootstrap(), "events", kPartitions)) partition_of[m.key] = m.partition;
  std::vector<std::string> in_flight;
  for (int b = 0; b < kAttacks; ++b) {
    const TimeMs start = 1'000 + b * 700;
    const std::string user = "b" + std::to_string(b);
    if (start <= kKillAtMs && start + 11 * 300 + 100 >= kKillAtMs && b_partitions.count(partition_of[user]))
      in_flight.push_back(user);
  }

  const auto alerts = read_topic(broker->bootstrap(), "alerts", 1);
  std::map<std::string, int> per_entity;
  for (const auto& a : alerts) {
    ++per_entity[field(a, "detector") + "/" + field(a, "value")];
    CHECK_MESSAGE(field(a, "value")[0] == 'b', "an ordinary user raised a finding: " << a);
  }
  for (int b = 0; b < kAttacks; ++b)
    CHECK_MESSAGE(per_entity["brute_force/b" + std::to_string(b)] == 1, "brute_force on b" << b << "; logs in " << dir);
  std::map<std::string, int> hook_runs;
  for (const auto& m : members) {
    std::istringstream runs(slurp(m.hooks));
    for (std::string line; std::getline(runs, line);) ++hook_runs[field(line, "value")];
  }
  for (int b = 0; b < kAttacks; ++b) CHECK_MESSAGE(hook_runs["b" + std::to_string(b)] == 1, "hook runs for b" << b);
  const std::string a_log = slurp(members[0].log);
  CHECK_MESSAGE(a_log.find("taking over at offset") != std::string::npos, "logs in " << dir);

  std::string flight;
  for (const auto& u : in_flight) flight += (flight.empty() ? "" : ",") + u;
  MESSAGE("group: " << total << " events; B held " << b_partitions.size() << " partition(s), processed "
                    << b_processed << " events, killed with attacks under way on its partitions: "
                    << (flight.empty() ? "none" : flight) << "; the survivor held all " << kPartitions << " partitions "
                    << takeover_s << " s after the kill, re-read "
                    << metric(last, "portalwatch_events_warmup_total") << " events to warm up, suppressed "
                    << metric(last, "portalwatch_findings_suppressed_total{reason=\"replayed\"}") << " replayed and "
                    << metric(last, "portalwatch_findings_suppressed_total{reason=\"repeat\"}") << " repeated findings; "
                    << alerts.size() << " findings for " << kAttacks << " attacks");
  if (!getenv("PW_KEEP_TMP")) std::filesystem::remove_all(dir);
}

}  // namespace portalwatch::test
