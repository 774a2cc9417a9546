// Soak: the real `portalwatchd run` (shipped detectors, a state store, a lockdown policy and an exec
// hook) for many minutes under simulated portal traffic at a steady rate through the embedded
// broker, with a brute-force attack every few seconds. Each minute: the daemon's RSS, events it
// received, its consumer lag, and the latency from each attack's completing event to its finding
// on the alerts topic and to its hook's start. At the end a verdict on memory: the RSS slope after
// warm-up, in MiB per minute.
//
//   portalwatch_bench_soak PORTALWATCHD [--minutes M] [--rate EVENTS_PER_S] [--partitions N] [--caps-scale F]
//
// Each minute also prints the keys the daemon's detector tables hold (all of them, summed) against
// their configured caps: bounded tables fill towards their caps, so RSS can only be judged flat
// once they have. --caps-scale multiplies every detector table cap of the shipped configuration (0.1: a
// tenth), so that a run of tens of minutes reaches the caps that take hours at the defaults.
//
// The embedded broker keeps about 5 MiB per partition (see kafka-mock-notes): the traffic is
// spread over many partitions and the producer pauses while the daemon's lag is above two seconds
// of traffic, so nothing is dropped unread; pauses are reported (the daemon did not keep up).
#include <librdkafka/rdkafkacpp.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_kafka.h"
#include "daemon/embedded_broker.h"
#include "daemon/simulator.h"
#include "daemon/system_clock.h"
#include "tests/integration/scrape.h"

namespace {

using namespace portalwatch;
using bench::config_with;
using bench::failure;
using bench::ms;
using bench::produce;
using bench::producer;
using bench::quantile;
using Steady = std::chrono::steady_clock;
using test::free_port;
using test::metric;
using test::scrape;

double rss_mib(pid_t pid) { return bench::proc_status_mib(pid, "VmRSS:"); }

// The sum of every series of a metric (all label sets), 0 if none.
double metric_sum(const std::string& text, const std::string& name) {
  double sum = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
        (line[name.size()] == '{' || line[name.size()] == ' '))
      sum += std::atof(line.c_str() + line.rfind(' ') + 1);
  return sum;
}

// The shipped configuration's table caps (max_sources: 500000, max_accounts: 200000, ...; not the
// profile cache: a cache, the state store holds every profile)
// multiplied by scale.
std::string scale_caps(const std::string& config, double scale) {
  static const std::regex cap(R"(^(\s+(?:max_[a-z_]+|asn_max_[a-z_]+)):\s+(\d{4,})\s*$)");
  std::istringstream in(config);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (scale != 1 && std::regex_match(line, m, cap) && m[1].str().find("bytes") == std::string::npos)
      line = m[1].str() + ": " + std::to_string(std::max<long long>(1, std::llround(std::stod(m[2].str()) * scale)));
    out += line + "\n";
  }
  return out;
}

// Least-squares slope of y over x.
double slope(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  if (x.size() < 2) return 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: portalwatch_bench_soak PORTALWATCHD [--minutes M] [--rate EPS] [--partitions N] [--caps-scale F]\n");
    return 2;
  }
  const std::string daemon_path = argv[1];
  double minutes = 30, rate = 50'000, caps_scale = 1;
  int partitions = 64;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--minutes")) minutes = std::atof(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rate")) rate = std::atof(argv[i + 1]);
    if (!std::strcmp(argv[i], "--partitions")) partitions = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--caps-scale")) caps_scale = std::atof(argv[i + 1]);
  }
  const auto broker = bench::start_broker(partitions);
  if (!broker) return 1;

  char tmpl[] = "/tmp/portalwatch-soak-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const int port = free_port();
  const std::string hook_file = dir + "/hook-starts", config = dir + "/portalwatch.yaml", log = dir + "/daemon.log";
  std::ofstream(config) << config_with(
      scale_caps(bench::read_text(PORTALWATCH_SOURCE_DIR "/config/portalwatch.yaml"), caps_scale),
      {{"kafka", "  bootstrap_servers: \"" + broker->bootstrap() +
                     "\"\n  group_id: soak\n  topics: [events]\n  alerts_topic: alerts\n  decisions_topic: decisions\n"},
       {"state", "  path: \"" + dir + "/state\"\n"},
       {"metrics", "  listen: \"127.0.0.1:" + std::to_string(port) + "\"\n"},
       {"logging", "  level: warn\n"},
       {"control", "  socket: \"\"\n"},
       {"policies", "  - name: soak-reauthenticate\n    when: {detectors: [brute_force], min_severity: medium}\n"
                    "    scope: user\n    action: reauthenticate\n    durations_seconds: [60]\n"},
       // The hook records the account and when it started (wall clock, ns): the measured moment.
       // (The simulated traffic has attacks of its own; their hooks run too and are not measured.)
       {"hooks", "  - name: soak-exec\n    type: exec\n    on: {states: [on]}\n    argv: [/bin/sh, -c, "
                 "'echo \"$PORTALWATCH_SCOPE_VALUE $(date +%s%N)\" >> " +
                     hook_file + "']\n"}});

  const pid_t pid = test::spawn_daemon_at(daemon_path, config, log);
  if (pid < 0) return 1;

  // Background: the simulated portal at `rate` events/s, keyed by account; paused while the
  // daemon is more than two seconds of traffic behind.
  std::atomic<bool> load_stop{false}, paused{false};
  std::atomic<std::uint64_t> load_sent{0};
  std::atomic<double> paused_seconds{0};
  std::thread load([&] {
    auto p = producer(broker->bootstrap(), "20");
    sim::SimulatorOptions so;
    so.seed = 5;
    so.start = SystemClock().now();
    so.events_per_second = rate;
    so.diurnal = false;
    sim::PortalSimulator simulator(so);
    std::string line;
    auto t0 = Steady::now();
    std::uint64_t base = 0;
    while (!load_stop.load()) {
      if (paused.load()) {
        const auto from = Steady::now();
        p->poll(100);
        paused_seconds = paused_seconds.load() + std::chrono::duration<double>(Steady::now() - from).count();
        t0 = Steady::now();  // pace again from here, no burst to catch up
        base = load_sent.load();
        continue;
      }
      const auto due = t0 + std::chrono::duration<double>(static_cast<double>(load_sent.load() - base) / rate);
      if (Steady::now() < due) {
        p->poll(0);
        std::this_thread::sleep_until(due);
        continue;
      }
      simulator.next(line);
      produce(*p, "events", std::string(simulator.last_user()), line);
      ++load_sent;
    }
    p->flush(5000);
  });

  // Findings of the soak's attacks, as they arrive.
  std::mutex mu;
  std::map<int, Steady::time_point> finding_at;
  std::atomic<bool> alerts_stop{false};
  std::thread alerts([&] {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", broker->bootstrap(), err);
    conf->set("group.id", "soak-alerts", err);
    conf->set("fetch.wait.max.ms", "5", err);
    std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
    c->subscribe({"alerts"});
    static const std::string marker = "\"value\":\"soak-victim-";
    while (!alerts_stop.load()) {
      std::unique_ptr<RdKafka::Message> m(c->consume(20));
      if (m->err() != RdKafka::ERR_NO_ERROR) continue;
      const std::string v(static_cast<const char*>(m->payload()), m->len());
      const auto at = v.find(marker);
      if (at == std::string::npos || v.find("\"detector\":\"brute_force\"") == std::string::npos) continue;
      std::lock_guard lock(mu);
      finding_at.emplace(std::atoi(v.c_str() + at + marker.size()), Steady::now());
    }
    c->close();
  });

  // Hook starts of the soak's attacks: "soak-victim-N NANOSECONDS" lines appended by the hook.
  auto hook_starts = [&] {
    std::map<int, std::int64_t> out;
    std::ifstream in(hook_file);
    static const std::string marker = "soak-victim-";
    for (std::string line; std::getline(in, line);)
      if (line.rfind(marker, 0) == 0) {
        const auto space = line.find(' ');
        if (space != std::string::npos) out.emplace(std::atoi(line.c_str() + marker.size()), std::atoll(line.c_str() + space + 1));
      }
    return out;
  };

  std::printf("soak: %.0f min, %.0f events/s asked, %d partitions, daemon pid %d, work dir %s\n", minutes, rate,
              partitions, static_cast<int>(pid), dir.c_str());
  std::printf("%6s %10s %10s %10s %9s %8s %22s %22s %20s\n", "minute", "RSS MiB", "events/s", "received", "lag", "paused",
              "to finding p50/p99 ms", "to hook p50/p99 ms", "table keys / caps");
  std::fflush(stdout);

  auto attack_producer = producer(broker->bootstrap(), "0");
  const auto start = Steady::now();
  auto next_minute = start + std::chrono::minutes(1);
  auto next_attack = start + std::chrono::seconds(15);  // after the group join
  auto next_check = start;
  int attack = 0;
  std::map<int, Steady::time_point> completed;
  std::map<int, std::int64_t> completed_wall_ns;
  std::vector<double> minute_x, minute_rss, minute_keys;
  double caps = 0;
  std::vector<double> all_finding, all_hook;
  double last_received = 0, last_paused = 0;
  std::size_t hooks_seen = 0;
  int minute = 0;
  std::map<int, bool> reported, hook_reported;
  bool alive = true;
  const int minutes_total = static_cast<int>(std::ceil(minutes));
  while (minute < minutes_total && alive) {
    const auto now = Steady::now();
    if (now >= next_check) {
      const std::string m = scrape(port);
      const double lag = metric(m, "portalwatch_consumer_lag_messages");
      paused = lag > 2 * rate;
      next_check = now + std::chrono::milliseconds(500);
      int status = 0;
      alive = waitpid(pid, &status, WNOHANG) == 0;
    }
    if (now >= next_attack) {
      // Nine failures, then the completing tenth, on a fresh account.
      const std::string user = "soak-victim-" + std::to_string(attack);
      const std::string ip = "203.0.113." + std::to_string(1 + attack % 250);
      const TimeMs t = SystemClock().now();
      for (int i = 0; i < 9; ++i) produce(*attack_producer, "events", user, failure(t + i, user, ip));
      attack_producer->flush(1000);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      completed[attack] = Steady::now();
      completed_wall_ns[attack] = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count();
      produce(*attack_producer, "events", user, failure(SystemClock().now(), user, ip));
      attack_producer->poll(0);
      ++attack;
      next_attack = now + std::chrono::seconds(3);
    }
    attack_producer->poll(0);
    if (now >= next_minute) {
      ++minute;
      next_minute += std::chrono::minutes(1);
      const std::string m = scrape(port);
      const double rss = rss_mib(pid), received = metric(m, "portalwatch_events_received_total");
      std::vector<double> to_finding, to_hook;
      {
        std::lock_guard lock(mu);
        for (const auto& [n, at] : finding_at)
          if (!reported[n] && completed.count(n)) {
            reported[n] = true;
            to_finding.push_back(ms(at - completed[n]));
          }
      }
      for (const auto& [n, ns] : hook_starts())
        if (!hook_reported[n] && completed_wall_ns.count(n)) {
          hook_reported[n] = true;
          ++hooks_seen;
          to_hook.push_back(static_cast<double>(ns - completed_wall_ns[n]) / 1e6);
        }
      all_finding.insert(all_finding.end(), to_finding.begin(), to_finding.end());
      all_hook.insert(all_hook.end(), to_hook.begin(), to_hook.end());
      char f[64], h[64];
      std::snprintf(f, sizeof f, "%.1f / %.1f (%zu)", quantile(to_finding, 0.5), quantile(to_finding, 0.99), to_finding.size());
      std::snprintf(h, sizeof h, "%.1f / %.1f (%zu)", quantile(to_hook, 0.5), quantile(to_hook, 0.99), to_hook.size());
      const double paused_now = paused_seconds.load();
      const double keys = metric_sum(m, "portalwatch_detector_state_keys");
      caps = metric_sum(m, "portalwatch_detector_state_capacity_keys");
      std::printf("%6d %10.1f %10.0f %10.0f %9.0f %7.1fs %22s %22s %8.0fk / %6.0fk\n", minute, rss,
                  (received - last_received) / 60.0, received, metric(m, "portalwatch_consumer_lag_messages"),
                  paused_now - last_paused, f, h, keys / 1e3, caps / 1e3);
      std::fflush(stdout);
      last_received = received;
      last_paused = paused_now;
      minute_x.push_back(minute);
      minute_rss.push_back(rss);
      minute_keys.push_back(keys);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  load_stop = true;
  alerts_stop = true;
  load.join();
  alerts.join();
  const double final_rss = rss_mib(pid);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);

  // Verdict: the RSS slope after warm-up. Warm-up lasts at least 5 minutes (a third of a short
  // run) and until the detector tables have settled: bounded tables fill towards their caps (or
  // towards the balance of new keys and expired ones), and memory that follows them is not a leak.
  // Settled: holding 97% of the keys they hold at the end.
  const double min_warm = std::min(5.0, std::max(1.0, minutes / 3));
  int warm = static_cast<int>(min_warm);
  const double final_keys = minute_keys.empty() ? 0 : minute_keys.back();
  for (std::size_t i = 0; i < minute_x.size(); ++i)
    if (minute_keys[i] >= 0.97 * final_keys) {
      warm = std::max(warm, static_cast<int>(minute_x[i]));
      break;
    }
  std::vector<double> x, y, k;
  for (std::size_t i = 0; i < minute_x.size(); ++i)
    if (minute_x[i] >= warm) {
      x.push_back(minute_x[i]);
      y.push_back(minute_rss[i]);
      k.push_back(minute_keys[i]);
    }
  const double s = slope(x, y);
  std::printf("\nsoak: %d attacks, %zu findings, %zu hook starts; producer paused %.1f s in all (daemon behind)\n", attack,
              all_finding.size(), hooks_seen, paused_seconds.load());
  bench::report("completing event -> finding on topic", all_finding);
  bench::report("completing event -> hook started", all_hook);
  std::printf("tables: %.0fk keys at the end, %.0f%% of their caps (%.0fk); settled from minute %d; %+.0f keys/min after\n",
              final_keys / 1e3, caps > 0 ? 100 * final_keys / caps : 0, caps / 1e3, warm, slope(x, k));
  // What the tables added since minute 5 (or a third of a short run) against what RSS added: while
  // they still fill, RSS follows them at about their bytes per key (bench/README, growth).
  for (std::size_t i = 0; i < minute_x.size(); ++i)
    if (minute_x[i] >= min_warm) {
      const double added_keys = final_keys - minute_keys[i], added_mib = minute_rss.back() - minute_rss[i];
      std::printf("since minute %.0f: tables %+.0fk keys, RSS %+.1f MiB (%.0f bytes per key added)\n", minute_x[i],
                  added_keys / 1e3, added_mib, added_keys > 0 ? added_mib * 1048576 / added_keys : 0);
      break;
    }
  std::printf("RSS: %.1f MiB at minute %d, %.1f MiB at the end; slope from minute %d: %+.2f MiB/min -> %s\n",
              y.empty() ? 0 : y.front(), warm, final_rss, warm, s,
              !alive                 ? "DAEMON DIED (see log)"
              : x.size() < 5         ? "too short to judge (under 5 minutes after warm-up: a longer run, or --caps-scale while tables fill)"
              : std::abs(s) < 0.5    ? "flat"
                                     : "GROWING");
  std::printf("daemon log: %s (exit status %d)\n", log.c_str(), WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return alive ? 0 : 1;
}
