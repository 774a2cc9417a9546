// Crash safety of the real executable: `portalwatchd run` with a state store is killed with
// SIGKILL at random points while events stream in, and restarted each time. Afterwards every
// attack is found exactly once, nothing fires for ordinary users, and the stored profiles count
// every sign-in exactly once and still know each device.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "daemon/embedded_broker.h"
#include "daemon/state_store.h"
#include "daemon/system_clock.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/kafka_harness.h"
#include "tests/integration/traffic.h"

namespace portalwatch::test {

TEST_CASE("integration: portalwatchd killed with SIGKILL at random points and restarted loses nothing and fires nothing twice") {
  std::string error;
  auto broker = EmbeddedBroker::start(1, error);
  REQUIRE_MESSAGE(broker, error);
  REQUIRE(broker->create_topic("events", 3, error));
  REQUIRE(broker->create_topic("alerts", 1, error));
  char tmpl[] = "/tmp/portalwatch-crash-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const int port = free_port();
  const std::string config = dir + "/portalwatch.yaml";
  std::ofstream(config) << "kafka:\n  bootstrap_servers: \"" << broker->bootstrap()
                        << "\"\n  group_id: crash\n  topics: [events]\n  alerts_topic: alerts\n  decisions_topic: \"\"\n"
                           "  commit_interval_ms: 200\n  properties:\n    session.timeout.ms: \"3000\"\n"
                           "    heartbeat.interval.ms: \"300\"\n"
                        << "state:\n  path: \"" << dir << "/state\"\n"
                        << "metrics:\n  listen: \"127.0.0.1:" << port << "\"\n"
                        << "control:\n  socket: \"\"\n"
                        << "detectors:\n  - type: brute_force\n    severity: {medium: 10, high: 30, critical: 100}\n"
                           "  - type: account_takeover\n";

  // kStreamMs of traffic, long enough for four kills and restarts while events still arrive:
  // ordinary users signing in from their own laptops and reading paystubs; brute-force attacks on
  // 30 accounts at random moments; ten accounts with a history of 12 sign-ins, then taken over
  // from a hosting provider and their direct deposit changed.
  constexpr TimeMs kStreamMs = 40'000;
  std::mt19937 rng(std::random_device{}());
  auto uniform = [&](TimeMs lo, TimeMs hi) { return std::uniform_int_distribution<TimeMs>(lo, hi)(rng); };
  std::vector<Timed> plan;
  std::map<std::string, std::uint32_t> sign_ins;  // successful sign-ins per account
  int session = 0;
  for (int u = 0; u < 40; ++u) {
    const std::string user = "r" + std::to_string(u);
    for (int i = 0; i < 8; ++i) {
      const TimeMs at = uniform(0, kStreamMs - 500);
      const std::string s = "s" + std::to_string(++session);
      plan.push_back({at, event(0, user, "login", "success", "73.20." + std::to_string(u) + ".5", 7922, "Comcast",
                                "d-" + user, s)});
      ++sign_ins[user];
      for (int v = 0; v < 30; ++v)
        plan.push_back({at + 10 + v * 10, event(0, user, "view", "success", "73.20." + std::to_string(u) + ".5", 7922,
                                                "Comcast", "d-" + user, s, "paystub")});
    }
  }
  for (int b = 0; b < 30; ++b) {
    const TimeMs start = uniform(500, kStreamMs - 3'000);
    for (int i = 0; i < 12; ++i)
      plan.push_back({start + i * 150, event(0, "b" + std::to_string(b), "login", "failure",
                                             "203.0.113." + std::to_string(b + 1), 64500, "Example Net", "d-x", "")});
  }
  for (int v = 0; v < 10; ++v) {
    const std::string user = "v" + std::to_string(v);
    for (int i = 0; i < 12; ++i) {
      plan.push_back({uniform(0, kStreamMs * 2 / 3), event(0, user, "login", "success", "73.30." + std::to_string(v) + ".5", 7922,
                                                "Comcast", "d-" + user, "s" + std::to_string(++session))});
      ++sign_ins[user];
    }
    const TimeMs at = uniform(kStreamMs * 3 / 4, kStreamMs - 2'000);
    const std::string ip = "159.203." + std::to_string(v) + ".9", thief = "s-thief-" + std::to_string(v);
    plan.push_back({at, event(0, user, "login", "success", ip, 14061, "DigitalOcean, LLC", "d-thief", thief)});
    plan.push_back({at + 1500, event(0, user, "change", "success", ip, 14061, "DigitalOcean, LLC", "d-thief", thief,
                                     "direct_deposit")});
    ++sign_ins[user];
  }
  sort_plan(plan);
  const std::size_t total = plan.size();

  // The producer streams the plan in real time, each event stamped with its wall-clock time.
  std::atomic<bool> produced{false};
  std::atomic<std::size_t> sent{0};
  std::thread producer([&] { produced = stream_plan(broker->bootstrap(), "events", plan, sent); });

  // Kill the daemon four times, each at a random moment after it has processed some events.
  const std::string log = dir + "/daemon.log";
  pid_t pid = spawn_daemon(config, log);
  int kills = 0;
  std::vector<std::string> kill_notes;
  for (int k = 0; k < 4; ++k) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
    double seen = -1;
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string m = scrape(port);
      seen = metric(m, "portalwatch_events_received_total") - std::max(0.0, metric(m, "portalwatch_events_warmup_total"));
      if (seen >= 50) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE_MESSAGE(seen >= 50, "the daemon did not process events after (re)start; log: " << log);
    std::this_thread::sleep_for(std::chrono::milliseconds(uniform(0, 1'500)));
    const std::string m = scrape(port);
    const double at_kill = metric(m, "portalwatch_events_received_total") - metric(m, "portalwatch_events_warmup_total");
    REQUIRE(kill(pid, SIGKILL) == 0);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    ++kills;
    kill_notes.push_back(std::to_string(static_cast<long>(at_kill)) + " new events processed by that run");
    pid = spawn_daemon(config, log);
  }
  producer.join();
  REQUIRE(produced.load());

  // The last run is assigned every partition, catches up and commits everything, then stops
  // cleanly.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  std::int64_t committed = 0;
  std::string last_metrics;
  while (std::chrono::steady_clock::now() < deadline) {
    last_metrics = scrape(port);
    committed = committed_total(broker->bootstrap(), "crash", "events", 3);
    if (metric(last_metrics, "portalwatch_kafka_assigned_partitions") == 3 &&
        metric(last_metrics, "portalwatch_consumer_lag_messages") == 0 && committed >= static_cast<std::int64_t>(total))
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK_MESSAGE(WIFEXITED(status), "the last run died of signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(committed == static_cast<std::int64_t>(total));
  MESSAGE(kills << " kills (" << kill_notes[0] << ", " << kill_notes[1] << ", " << kill_notes[2] << ", "
                << kill_notes[3] << "); " << total << " events; last run: "
                << metric(last_metrics, "portalwatch_events_warmup_total") << " events re-read to warm up, "
                << metric(last_metrics, "portalwatch_findings_suppressed_total{reason=\"repeat\"}") << " repeats suppressed");

  // Every finding on the alerts topic.
  const auto alerts = consume_some(broker->bootstrap(), "alerts", 100'000, std::chrono::seconds(8));
  std::map<std::string, std::set<std::string>> ids_by_finding;  // detector/entity/severity -> ids
  std::map<std::string, std::string> finding_by_id;
  std::size_t same_id_twice = 0;
  for (const auto& a : alerts) {
    const std::string id = field(a, "id");
    const std::string what = field(a, "detector") + "/" + field(a, "value") + "/" + field(a, "severity");
    ids_by_finding[what].insert(id);
    auto [it, fresh] = finding_by_id.emplace(id, what);
    if (!fresh) {
      CHECK_MESSAGE(it->second == what, "id " << id << " names two findings");
      ++same_id_twice;
    }
    if (field(a, "detector") == "account_takeover") CHECK_MESSAGE(field(a, "prior_sign_ins") == "12", a);
    CHECK_MESSAGE(field(a, "value")[0] != 'r', "an ordinary user raised a finding: " << a);
  }
  if (same_id_twice) MESSAGE(same_id_twice << " finding(s) delivered again with the same id after a kill");
  for (int b = 0; b < 30; ++b)
    CHECK_MESSAGE(ids_by_finding["brute_force/b" + std::to_string(b) + "/medium"].size() == 1,
                  "brute_force on b" << b);
  for (int v = 0; v < 10; ++v)
    CHECK_MESSAGE(ids_by_finding["account_takeover/v" + std::to_string(v) + "/critical"].size() == 1,
                  "account_takeover on v" << v);
  for (const auto& [what, ids] : ids_by_finding) CHECK_MESSAGE(ids.size() == 1, what << " fired " << ids.size() << " times");

  // The stored profiles: every sign-in counted once, every device still known.
  auto store = StateStore::open({dir + "/state"}, error);
  REQUIRE_MESSAGE(store, error);
  for (const auto& [user, n] : sign_ins) {
    const AccountProfile& p = store->profile(user);
    CHECK_MESSAGE(p.sign_ins == n, user << ": " << p.sign_ins << " sign-ins stored, " << n << " made");
    Event ev;
    const std::string device = "d-" + user;
    ev.device_id = device;
    CHECK_MESSAGE(p.devices.find(AccountProfile::device_key(ev)) != nullptr, user << "'s laptop forgotten");
  }
  store.reset();
  if (!getenv("PW_KEEP_TMP")) std::filesystem::remove_all(dir);
}

}  // namespace portalwatch::test
