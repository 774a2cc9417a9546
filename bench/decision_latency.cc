// Detection and decision latency under load: the time from producing the event that completes an
// attack to (a) its finding arriving on the alerts topic and (b) the lockdown hook's process
// starting, while simulated portal traffic streams in at a background rate.
//
//   portalwatch_bench_latency [--rate EVENTS_PER_S] [--attacks N]
//
// Everything runs here: the embedded broker, `portalwatchd run` in a thread with the shipped
// detectors plus a policy that reauthenticates an account on a medium brute_force finding, and an
// exec hook (/bin/true: its start is the measured moment). Attacks run one after another: nine
// failed passwords on a fresh account, a pause, then the tenth (the completing event) stamped and
// produced with no linger; the next attack starts once the hook has started.
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_kafka.h"
#include "daemon/config.h"
#include "daemon/embedded_broker.h"
#include "daemon/kafka_daemon.h"
#include "daemon/simulator.h"
#include "daemon/system_clock.h"

namespace {

using namespace portalwatch;
using Steady = std::chrono::steady_clock;
using bench::failure;
using bench::ms;
using bench::produce;
using bench::producer;
using bench::report;

}  // namespace

int main(int argc, char** argv) {
  double rate = 50'000;
  int attacks = 100;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rate")) rate = std::atof(argv[i + 1]);
    if (!std::strcmp(argv[i], "--attacks")) attacks = std::atoi(argv[i + 1]);
  }
  const auto broker = bench::start_broker(16);
  if (!broker) return 1;

  ConfigResult loaded = load_config(std::nullopt);
  Config config = std::move(*loaded.config);
  config.kafka.bootstrap_servers = broker->bootstrap();
  config.kafka.topics = {"events"};
  config.kafka.alerts_topic = "alerts";
  config.kafka.decisions_topic = "decisions";
  config.kafka.group_id = "bench-latency";
  config.metrics.enabled = false;
  config.control.socket = "";
  config.log.level = "error";
  PolicyConfig p;
  p.name = "bench-reauthenticate";
  p.detectors = {"brute_force"};
  p.min_severity = Severity::kMedium;
  p.scope = ScopeType::kUser;
  p.action = DecisionAction::kReauthenticate;
  p.durations = {kHourMs};
  config.policies.push_back(p);
  HookConfig hook;
  hook.name = "bench-exec";
  hook.type = HookType::kExec;
  hook.exec.argv = {"/bin/true"};
  hook.on.state_off = false;
  config.hooks = {hook};

  std::mutex mu;
  std::condition_variable cv;
  Steady::time_point hook_started{};
  std::uint64_t hooks_started = 0;
  DaemonOptions dopts;
  dopts.hooks.on_start = [&](const HookConfig&, std::chrono::duration<double>) {
    std::lock_guard lock(mu);
    hook_started = Steady::now();
    ++hooks_started;
    cv.notify_all();
  };
  std::atomic<bool> stop{false};
  std::thread daemon([&] { run_daemon(std::move(config), dopts, stop); });

  // Background: the simulated portal at `rate` events/s of wall time, keyed by account.
  std::atomic<bool> load_stop{false};
  std::atomic<std::uint64_t> load_sent{0};
  std::thread load([&] {
    auto p = producer(broker->bootstrap(), "20");
    sim::SimulatorOptions so;
    so.seed = 3;
    so.start = SystemClock().now();
    so.events_per_second = rate;
    so.diurnal = false;
    sim::PortalSimulator simulator(so);
    std::string line;
    const auto t0 = Steady::now();
    while (!load_stop.load()) {
      const auto due = t0 + std::chrono::duration<double>(static_cast<double>(load_sent.load()) / rate);
      if (Steady::now() < due) {
        p->poll(0);
        std::this_thread::sleep_until(due);
        continue;
      }
      simulator.next(line);
      const std::string key(simulator.last_user());
      produce(*p, "events", key, line);
      ++load_sent;
    }
    p->flush(5000);
  });

  // The alerts: when each attacked account's finding arrives.
  std::vector<Steady::time_point> finding_at(static_cast<std::size_t>(attacks));
  std::atomic<bool> alerts_stop{false};
  std::thread alerts([&] {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", broker->bootstrap(), err);
    conf->set("group.id", "bench-alerts", err);
    conf->set("fetch.wait.max.ms", "5", err);
    std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
    c->subscribe({"alerts"});
    while (!alerts_stop.load()) {
      std::unique_ptr<RdKafka::Message> m(c->consume(20));
      if (m->err() != RdKafka::ERR_NO_ERROR) continue;
      const std::string v(static_cast<const char*>(m->payload()), m->len());
      static const std::string marker = "\"value\":\"bench-victim-";
      const auto at = v.find(marker);
      if (at == std::string::npos || v.find("\"detector\":\"brute_force\"") == std::string::npos) continue;
      const int n = std::atoi(v.c_str() + at + marker.size());
      std::lock_guard lock(mu);
      if (n >= 0 && n < attacks && finding_at[static_cast<std::size_t>(n)] == Steady::time_point{})
        finding_at[static_cast<std::size_t>(n)] = Steady::now();
    }
    c->close();
  });

  std::this_thread::sleep_for(std::chrono::seconds(8));  // group join, the load flowing
  const std::uint64_t sent_before = load_sent.load();
  const auto measure_start = Steady::now();
  auto attack_producer = producer(broker->bootstrap(), "0");
  std::vector<Steady::time_point> completed(static_cast<std::size_t>(attacks));
  std::vector<double> to_hook;
  for (int n = 0; n < attacks; ++n) {
    const std::string user = "bench-victim-" + std::to_string(n);
    const std::string ip = "203.0.113." + std::to_string(1 + n % 250);
    const TimeMs now = SystemClock().now();
    for (int i = 0; i < 9; ++i) produce(*attack_producer, "events", user, failure(now + i, user, ip));
    attack_producer->flush(1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::uint64_t before = 0;
    {
      std::lock_guard lock(mu);
      before = hooks_started;
    }
    completed[static_cast<std::size_t>(n)] = Steady::now();
    produce(*attack_producer, "events", user, failure(SystemClock().now(), user, ip));
    attack_producer->poll(0);
    std::unique_lock lock(mu);
    if (cv.wait_for(lock, std::chrono::seconds(10), [&] { return hooks_started > before; }))
      to_hook.push_back(ms(hook_started - completed[static_cast<std::size_t>(n)]));
  }
  const double seconds = std::chrono::duration<double>(Steady::now() - measure_start).count();
  const double achieved = static_cast<double>(load_sent.load() - sent_before) / seconds;
  std::this_thread::sleep_for(std::chrono::seconds(1));
  load_stop = true;
  alerts_stop = true;
  load.join();
  alerts.join();
  stop = true;
  daemon.join();

  std::vector<double> to_finding;
  for (int n = 0; n < attacks; ++n)
    if (finding_at[static_cast<std::size_t>(n)] != Steady::time_point{})
      to_finding.push_back(ms(finding_at[static_cast<std::size_t>(n)] - completed[static_cast<std::size_t>(n)]));
  std::printf("decision latency: %d attacks, background load %.0f events/s (asked %.0f), embedded broker, 16 partitions\n",
              attacks, achieved, rate);
  report("completing event -> finding on topic", to_finding);
  report("completing event -> hook started", to_hook);
  return 0;
}
