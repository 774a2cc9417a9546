// End-to-end from Kafka: the real daemon's consume + decode + detect rate against a bare
// librdkafka consumer that only counts messages, both reading the same preloaded topic of the
// embedded broker from the beginning.
//
//   portalwatch_bench_kafka PORTALWATCHD [--events N] [--rounds R] [--partitions P]
//
// The topic gets N simulated contract events (those of `portalwatchd simulate --seed 1 -n N`,
// keyed by account) once; then each round runs the bare consumer (in this process, assigned every
// partition) and then `portalwatchd run` (a process, the shipped configuration's detectors and
// policies, a fresh consumer group) over all of it, one after the other. Each is timed from its
// first message to its last: the bare consumer by its own clock, the daemon by scraping
// portalwatch_events_received_total every 20 ms (counted once an event is fully processed) from
// the first scrape that shows events until the one that shows all N. Both use the same consumer
// properties: the daemon's fetch.wait.max.ms (10) and the large fetch and queue sizes that let a
// consumer reach the broker's ceiling (kafka-mock-notes). The embedded broker keeps only about
// 5 MiB per partition, so the partition count is chosen for about 3 MiB each; the broker's watermarks,
// the bare count and the daemon's count are checked against what was produced.
#include <librdkafka/rdkafkacpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_kafka.h"
#include "daemon/demo.h"
#include "daemon/embedded_broker.h"
#include "daemon/simulator.h"
#include "tests/integration/scrape.h"

namespace {

using namespace portalwatch;
using bench::cpu_seconds;
using bench::median;
using Steady = std::chrono::steady_clock;

// The consumer properties both sides use (the daemon through kafka.properties).
const std::vector<std::pair<std::string, std::string>> kConsumerProperties = {
    {"fetch.wait.max.ms", "10"},
    {"queued.max.messages.kbytes", "1048576"},
    {"queued.min.messages", "10000000"},
    {"fetch.max.bytes", "134217728"},
    {"max.partition.fetch.bytes", "8388608"},
};

struct Delivered : RdKafka::DeliveryReportCb {
  std::atomic<std::uint64_t> ok{0}, failed{0};
  void dr_cb(RdKafka::Message& m) override { (m.err() == RdKafka::ERR_NO_ERROR ? ok : failed)++; }
};

double seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

struct Result {
  std::uint64_t messages = 0;
  double per_second = 0;
  double peak_rss_mib = 0;  // the daemon's
  // The daemon's CPU time per event while it processed (user + system, from /proc): the whole
  // process (librdkafka's threads fetching included) and its event loop's thread alone.
  double cpu_us_per_event = 0, loop_cpu_us_per_event = 0;
  // The daemon's buffers for the event-time merge: the most they held at a scrape
  // (portalwatch_kafka_buffered_bytes), and the pauses of partitions over their share.
  double buffered_peak_mib = 0, pauses = 0;
  bool complete = false;
};

// Counts every message of the topic from the beginning of each partition.
Result bare_consumer(const std::string& bootstrap, const std::string& group, int partitions, std::uint64_t expected) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", group, err);
  conf->set("enable.auto.commit", "false", err);
  for (const auto& [k, v] : kConsumerProperties) conf->set(k, v, err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  std::vector<RdKafka::TopicPartition*> all;
  for (int p = 0; p < partitions; ++p) all.push_back(RdKafka::TopicPartition::create("events", p, RdKafka::Topic::OFFSET_BEGINNING));
  c->assign(all);
  RdKafka::TopicPartition::destroy(all);
  Result r;
  Steady::time_point first{}, last{};
  auto progress_at = Steady::now();
  while (r.messages < expected && Steady::now() - progress_at < std::chrono::seconds(20)) {
    std::unique_ptr<RdKafka::Message> m(c->consume(100));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    last = progress_at = Steady::now();
    if (r.messages++ == 0) first = last;
  }
  c->close();
  // The first message's own time is not between first and last: count the intervals.
  r.per_second = r.messages > 1 ? static_cast<double>(r.messages - 1) / seconds(last - first) : 0;
  r.complete = r.messages == expected;
  return r;
}

// The daemon over the whole topic in a fresh group; stopped once it has processed all of it.
Result daemon_run(const std::string& portalwatchd, const std::string& shipped, const std::string& bootstrap,
                  const std::string& dir, int round, std::uint64_t expected) {
  const int port = test::free_port();
  const std::string config = dir + "/portalwatch-" + std::to_string(round) + ".yaml", log = dir + "/daemon.log";
  std::string properties;
  for (const auto& [k, v] : kConsumerProperties) properties += "    " + k + ": \"" + v + "\"\n";
  std::ofstream(config) << bench::config_with(
      shipped,
      {{"kafka", "  bootstrap_servers: \"" + bootstrap + "\"\n  group_id: bench-" +
                     std::to_string(round) + "\n  topics: [events]\n  alerts_topic: alerts\n  decisions_topic: decisions\n"
                     "  properties:\n" + properties},
       {"metrics", "  listen: \"127.0.0.1:" + std::to_string(port) + "\"\n"},
       {"logging", "  level: warn\n"},
       {"control", "  socket: \"\"\n"}});
  Result r;
  const pid_t pid = test::spawn_daemon_at(portalwatchd, config, log);
  if (pid < 0) return r;
  double seen_first = -1, cpu_first = 0, loop_cpu_first = 0;
  Steady::time_point first{};
  auto progress_at = Steady::now();
  double received = 0;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto now = Steady::now();
    const std::string text = test::scrape(port);
    const double n = test::metric(text, "portalwatch_events_received_total");
    if (n > received) progress_at = now, received = n;
    if (const double b = test::metric(text, "portalwatch_kafka_buffered_bytes"); b > 0)
      r.buffered_peak_mib = std::max(r.buffered_peak_mib, b / (1 << 20));
    if (const double p = test::metric(text, "portalwatch_kafka_partition_pauses_total"); p > 0) r.pauses = p;
    if (seen_first < 0 && n > 0) {
      seen_first = n, first = now;
      cpu_first = cpu_seconds(pid), loop_cpu_first = cpu_seconds(pid, pid);
    }
    if (n >= static_cast<double>(expected)) {
      r.per_second = (n - seen_first) / seconds(now - first);
      r.cpu_us_per_event = 1e6 * (cpu_seconds(pid) - cpu_first) / (n - seen_first);
      r.loop_cpu_us_per_event = 1e6 * (cpu_seconds(pid, pid) - loop_cpu_first) / (n - seen_first);
      break;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) != 0) {
      std::fprintf(stderr, "kafka bench: the daemon exited (see %s)\n", log.c_str());
      return r;
    }
    if (now - progress_at > std::chrono::seconds(received > 0 ? 20 : 60)) break;  // stuck (join: up to a minute)
  }
  r.messages = static_cast<std::uint64_t>(received);
  r.complete = r.messages == expected;
  r.peak_rss_mib = bench::proc_status_mib(pid, "VmHWM:");
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: portalwatch_bench_kafka PORTALWATCHD [--events N] [--rounds R] [--partitions P]\n");
    return 2;
  }
  const std::string portalwatchd = argv[1];
  std::uint64_t events = 2'000'000;
  int rounds = 3, partitions = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--events")) events = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--partitions")) partitions = std::atoi(argv[i + 1]);
  }
  SimulateOptions simulate;
  simulate.events = events;
  simulate.seed = 1;
  const auto sim_options = simulator_options(simulate);

  const double mean_bytes = bench::mean_event_bytes(*sim_options, events);
  if (partitions <= 0) partitions = bench::partitions_for(events, mean_bytes);

  const auto broker = bench::start_broker(partitions);
  if (!broker) return 1;

  // Preload, keyed by account as a portal's pipeline would.
  Delivered delivered;
  auto producer = bench::producer(broker->bootstrap(), "100", &delivered);
  const auto preload_start = Steady::now();
  {
    sim::PortalSimulator simulator(*sim_options);
    std::string line;
    for (std::uint64_t i = 0; i < events; ++i) {
      simulator.next(line);
      bench::produce(*producer, "events", std::string(simulator.last_user()), line);
      producer->poll(0);
    }
    while (producer->outq_len() > 0) producer->poll(100);
  }
  const double preload_seconds = seconds(Steady::now() - preload_start);
  std::uint64_t kept = 0;
  int truncated = 0;
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = 0, high = 0;
    producer->query_watermark_offsets("events", p, &low, &high, 5000);
    kept += static_cast<std::uint64_t>(high - low);
    truncated += low > 0;
  }
  std::printf("kafka end-to-end: %llu events (%.0f bytes on average) on %d partitions, preloaded in %.1f s "
              "(%.0f msgs/s); %llu delivered, %llu failed; the broker holds %llu%s\n",
              static_cast<unsigned long long>(events), mean_bytes, partitions, preload_seconds,
              static_cast<double>(events) / preload_seconds, static_cast<unsigned long long>(delivered.ok.load()),
              static_cast<unsigned long long>(delivered.failed.load()), static_cast<unsigned long long>(kept),
              truncated ? " (RETENTION DROPPED SOME: use more partitions)" : "");
  if (delivered.ok.load() != events || kept != events) {
    std::printf("kafka end-to-end: the topic does not hold every event produced; no measurement\n");
    return 1;
  }

  char tmpl[] = "/tmp/portalwatch-bench-kafka-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string shipped = bench::read_text(PORTALWATCH_SOURCE_DIR "/config/portalwatch.yaml");
  std::printf("%-6s %16s %18s %8s %16s %16s %16s %14s %8s\n", "round", "bare msgs/s", "daemon events/s", "ratio",
              "daemon peak MiB", "daemon CPU us/ev", "its loop us/ev", "buffered MiB", "pauses");
  std::vector<double> bare_rates, daemon_rates, daemon_cpu, loop_cpu;
  bool all_counted = true;
  for (int round = 1; round <= rounds; ++round) {
    const Result bare = bare_consumer(broker->bootstrap(), "bare-" + std::to_string(round), partitions, events);
    const Result daemon = daemon_run(portalwatchd, shipped, broker->bootstrap(), dir, round, events);
    std::printf("%-6d %16.0f %18.0f %7.1f%% %16.1f %16.2f %16.2f %14.1f %8.0f%s%s\n", round, bare.per_second,
                daemon.per_second, bare.per_second > 0 ? 100 * daemon.per_second / bare.per_second : 0,
                daemon.peak_rss_mib, daemon.cpu_us_per_event, daemon.loop_cpu_us_per_event,
                daemon.buffered_peak_mib, daemon.pauses,
                bare.complete ? "" : "  BARE COUNT SHORT", daemon.complete ? "" : "  DAEMON COUNT SHORT");
    std::fflush(stdout);
    all_counted = all_counted && bare.complete && daemon.complete;
    if (bare.complete) bare_rates.push_back(bare.per_second);
    if (daemon.complete) {
      daemon_rates.push_back(daemon.per_second);
      daemon_cpu.push_back(daemon.cpu_us_per_event);
      loop_cpu.push_back(daemon.loop_cpu_us_per_event);
    }
    if (!bare.complete)
      std::printf("  bare consumer counted %llu of %llu\n", static_cast<unsigned long long>(bare.messages),
                  static_cast<unsigned long long>(events));
    if (!daemon.complete)
      std::printf("  daemon received %llu of %llu (log: %s/daemon.log)\n", static_cast<unsigned long long>(daemon.messages),
                  static_cast<unsigned long long>(events), dir.c_str());
  }
  const double bare_median = median(bare_rates), daemon_median = median(daemon_rates);
  std::printf("median: bare consumer %.0f msgs/s, daemon %.0f events/s, daemon/bare %.1f%% (target >= 50%%); "
              "counts %s\n",
              bare_median, daemon_median, bare_median > 0 ? 100 * daemon_median / bare_median : 0,
              all_counted ? "all equal to the events produced" : "SHORT (see above)");
  std::printf("median CPU per event: daemon %.2f us (its event loop %.2f us)\n", median(daemon_cpu),
              median(loop_cpu));
  return all_counted ? 0 : 1;
}
