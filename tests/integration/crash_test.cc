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
#include "tests/integration/kafka_harness.h"

extern char** environ;

namespace portalwatch::test {

namespace {

int free_port() {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

// GET /metrics; empty when the daemon is not (yet) listening.
std::string scrape(int port) {
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{2, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(s, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      for (ssize_t n; (n = recv(s, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(s);
  return out;
}

double metric(const std::string& text, const std::string& name) {
  const auto at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::atof(text.c_str() + at + name.size() + 2);
}

pid_t spawn_daemon(const std::string& config, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<std::string> args = {PORTALWATCHD_PATH, "run", "--config", config};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, PORTALWATCHD_PATH, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  return pid;
}

struct Timed {
  TimeMs at;  // offset from the start of the stream
  std::string json;
};

std::string event(TimeMs t, const std::string& user, const std::string& action, const std::string& outcome,
                  const std::string& ip, int asn, const std::string& org, const std::string& device,
                  const std::string& session, const std::string& app = "") {
  std::string j = "{\"@timestamp\":\"" + format_rfc3339(t) + "\",\"event\":{\"action\":\"" + action +
                  "\",\"outcome\":\"" + outcome + "\"" + (outcome == "failure" ? ",\"reason\":\"bad_password\"" : "") +
                  "},\"user\":{\"name\":\"" + user + "\"},\"source\":{\"ip\":\"" + ip + "\",\"as\":{\"number\":" +
                  std::to_string(asn) + ",\"organization\":{\"name\":\"" + org + "\"}}},\"device\":{\"id\":\"" + device +
                  "\"},\"session\":{\"id\":\"" + session + "\"}";
  if (!app.empty()) j += ",\"portal\":{\"app\":\"" + app + "\",\"record\":{\"id\":\"" + user + "\"}}";
  return j + "}";
}

std::string field(const std::string& json, const std::string& key) {
  const std::string marker = "\"" + key + "\":";
  auto at = json.find(marker);
  if (at == std::string::npos) return {};
  at += marker.size();
  if (json[at] == '"') {
    const auto end = json.find('"', at + 1);
    return json.substr(at + 1, end - at - 1);
  }
  const auto end = json.find_first_of(",}", at);
  return json.substr(at, end - at);
}

}  // namespace

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
  std::stable_sort(plan.begin(), plan.end(), [](const Timed& a, const Timed& b) { return a.at < b.at; });
  const std::size_t total = plan.size();

  // The producer streams the plan in real time, each event stamped with its wall-clock time.
  std::atomic<bool> produced{false};
  std::thread producer([&] {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", broker->bootstrap(), err);
    conf->set("linger.ms", "5", err);
    std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
    const TimeMs t0 = SystemClock().now();
    for (auto& e : plan) {
      while (SystemClock().now() < t0 + e.at) {
        p->poll(0);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      // Stamp: replace the placeholder time (the epoch) with the real one.
      const std::string stamp = format_rfc3339(t0 + e.at);
      e.json.replace(e.json.find(format_rfc3339(0)), stamp.size(), stamp);
      const std::string key = user_key(e.json);
      while (p->produce("events", RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY, e.json.data(),
                        e.json.size(), key.data(), key.size(), 0, nullptr, nullptr) == RdKafka::ERR__QUEUE_FULL)
        p->poll(10);
    }
    p->flush(10000);
    produced = true;
  });

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
