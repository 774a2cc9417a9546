// A cluster (cluster.enabled, daemon/cluster.h) of 1, 2 and 4 members of the real daemon over the
// same preloaded topic of the embedded broker: how fast the cluster gets through it, what it costs
// in CPU, what it adds to Kafka, and how long a member takes to take over a killed member's
// partitions.
//
//   portalwatch_bench_cluster PORTALWATCHD [--events N] [--rounds R] [--members 1,2,4]
//
// The topic gets N simulated contract events (`portalwatchd simulate --seed 1 -n N`, starting 30
// days ago, keyed by account) once. Each round starts, for each member count M, M members in a fresh cluster (their
// own group, state, alerts and decisions topics; 8 partitions of the state topic); each member
// reads every event. Timed from the first event any member processed to the moment every member
// has processed all N (scraped every 20 ms): the cluster's events/s, and the CPU seconds all
// members spent meanwhile (/proc), per event. Added to Kafka: the bytes of the state topic (the
// operator's changes: none here) and what the cluster published (alerts and decisions, the same as
// one daemon's: compared with M = 1; a message whose id was published already, at a takeover
// racing its previous owner's last delivery, is counted), and the events topic is read once per
// member. Then, with
// M >= 2, one member is killed with SIGKILL and the time until the others own every partition of
// the state topic is measured (session.timeout.ms 6000, the brokers' smallest by default; 45 s is
// librdkafka's default).
#include <librdkafka/rdkafkacpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string_view>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_kafka.h"
#include "daemon/cluster.h"
#include "daemon/demo.h"
#include "daemon/embedded_broker.h"
#include "daemon/simulator.h"
#include "daemon/system_clock.h"
#include "tests/integration/scrape.h"

namespace {

using namespace portalwatch;
using bench::cpu_seconds;
using bench::median;
using Steady = std::chrono::steady_clock;

constexpr int kStatePartitions = 8;
constexpr const char* kSessionTimeoutMs = "6000";

double seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

struct Member {
  pid_t pid = -1;
  int port = 0;
  std::string log;
};

struct Result {
  bool complete = false;
  double events_per_second = 0;
  double cpu_us_per_event = 0;      // all members together
  double published_bytes = 0;       // alerts + decisions + state topics
  double published_messages = 0;
  double published_twice = 0;       // messages whose id was published before (at-least-once)
  double takeover_seconds = -1;     // M >= 2
};

// Bytes and messages of a topic's partitions (keys and payloads, read whole); the ids of findings
// and decisions seen go to `ids`, and `again` counts those seen before.
std::pair<double, double> topic_size(const std::string& bootstrap, const std::string& topic, int partitions,
                                     std::set<std::string>& ids, double& again) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("group.id", "bench-size", err);
  conf->set("enable.auto.commit", "false", err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  std::vector<RdKafka::TopicPartition*> parts;
  std::int64_t expected = 0;
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = 0, high = 0;
    c->query_watermark_offsets(topic, p, &low, &high, 5000);
    expected += high - low;
    parts.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  }
  c->assign(parts);
  RdKafka::TopicPartition::destroy(parts);
  double bytes = 0, messages = 0;
  const auto until = Steady::now() + std::chrono::seconds(10);
  while (messages < static_cast<double>(expected) && Steady::now() < until) {
    std::unique_ptr<RdKafka::Message> m(c->consume(100));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    bytes += static_cast<double>(m->len() + m->key_len());
    ++messages;
    const std::string_view id = published_id({static_cast<const char*>(m->payload()), m->len()});
    if (!id.empty() && !ids.insert(std::string(id)).second) ++again;
  }
  c->close();
  return {bytes, messages};
}

Result cluster_run(const std::string& portalwatchd, const std::string& shipped, EmbeddedBroker& broker,
                   const std::string& dir, const std::string& name, int members, std::uint64_t expected) {
  Result r;
  std::string error;
  for (const auto& [topic, parts] : std::vector<std::pair<std::string, int>>{
           {"alerts-" + name, 1}, {"decisions-" + name, 1}, {"state-" + name, kStatePartitions}})
    if (!broker.create_topic(topic, parts, error)) {
      std::fprintf(stderr, "cluster bench: %s\n", error.c_str());
      return r;
    }
  std::vector<Member> ms;
  for (int i = 0; i < members; ++i) {
    Member m;
    m.port = test::free_port();
    const std::string member = "m" + std::to_string(i + 1);
    const std::string config = dir + "/" + name + "-" + member + ".yaml";
    m.log = dir + "/" + name + "-" + member + ".log";
    std::ofstream(config) << bench::config_with(
        shipped,
        {{"kafka", "  bootstrap_servers: \"" + broker.bootstrap() + "\"\n  group_id: " + name +
                       "\n  group_instance_id: " + member + "\n  topics: [events]\n  alerts_topic: alerts-" + name +
                       "\n  decisions_topic: decisions-" + name +
                       "\n  properties:\n    session.timeout.ms: \"" + kSessionTimeoutMs +
                       "\"\n    heartbeat.interval.ms: \"500\"\n"},
         {"cluster", "  enabled: true\n  state_topic: state-" + name + "\n"},
         {"metrics", "  listen: \"127.0.0.1:" + std::to_string(m.port) + "\"\n"},
         {"logging", std::string("  level: ") + (std::getenv("PW_BENCH_LOG") ? std::getenv("PW_BENCH_LOG") : "warn") + "\n"},
         {"control", "  socket: \"\"\n"}});
    m.pid = test::spawn_daemon_at(portalwatchd, config, m.log);
    if (m.pid < 0) return r;
    ms.push_back(m);
  }
  auto cpu_all = [&] {
    double s = 0;
    for (const auto& m : ms) s += cpu_seconds(m.pid);
    return s;
  };
  Steady::time_point first{};
  double cpu_first = 0;
  bool started = false;
  auto progress_at = Steady::now();
  double progress = 0;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto now = Steady::now();
    double least = 1e300, total = 0;
    for (const auto& m : ms) {
      const double n = test::metric(test::scrape(m.port), "portalwatch_events_received_total");
      least = std::min(least, std::max(0.0, n));
      total += std::max(0.0, n);
    }
    if (total > progress) progress = total, progress_at = now;
    if (!started && total > 0) started = true, first = now, cpu_first = cpu_all();
    if (least >= static_cast<double>(expected)) {
      r.events_per_second = static_cast<double>(expected) / seconds(now - first);
      r.cpu_us_per_event = 1e6 * (cpu_all() - cpu_first) / static_cast<double>(expected);
      r.complete = true;
      break;
    }
    if (now - progress_at > std::chrono::seconds(started ? 20 : 60)) break;
  }
  // Everything published before the topics are measured: every partition of the state topic
  // owned, nothing held by any member (the members may have got through the events before the
  // group had shared the partitions out: what they made meanwhile waits for its owner).
  // And the members' deliveries to the topics have stopped for a second.
  const auto settle_until = Steady::now() + std::chrono::seconds(60);
  double produced_before = -1;
  auto produced_since = Steady::now();
  while (r.complete && Steady::now() < settle_until) {
    double owned = 0, held = 0, produced = 0;
    for (const auto& m : ms) {
      const std::string text = test::scrape(m.port);
      owned += std::max(0.0, test::metric(text, "portalwatch_cluster_owned_partitions"));
      held += std::max(0.0, test::metric(text, "portalwatch_cluster_held{kind=\"finding\"}")) +
              std::max(0.0, test::metric(text, "portalwatch_cluster_held{kind=\"decision\"}"));
      produced += std::max(0.0, test::metric(text, "portalwatch_kafka_produced_total{topic=\"alerts\"}")) +
                  std::max(0.0, test::metric(text, "portalwatch_kafka_produced_total{topic=\"decisions\"}"));
    }
    if (produced != produced_before) produced_before = produced, produced_since = Steady::now();
    if (owned == kStatePartitions && held == 0 && Steady::now() - produced_since > std::chrono::seconds(1)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::set<std::string> ids;
  for (const auto& topic : {"alerts-" + name, "decisions-" + name, "state-" + name}) {
    const auto [bytes, messages] = topic_size(broker.bootstrap(), topic, topic == "state-" + name ? kStatePartitions : 1,
                                              ids, r.published_twice);
    r.published_bytes += bytes;
    r.published_messages += messages;
  }
  if (r.complete && members >= 2) {
    // The last member is killed; the others must own every partition between them.
    kill(ms.back().pid, SIGKILL);
    int status = 0;
    waitpid(ms.back().pid, &status, 0);
    const auto killed_at = Steady::now();
    ms.pop_back();
    while (Steady::now() - killed_at < std::chrono::seconds(120)) {
      double owned = 0;
      for (const auto& m : ms)
        owned += std::max(0.0, test::metric(test::scrape(m.port), "portalwatch_cluster_owned_partitions"));
      if (owned == kStatePartitions) {
        r.takeover_seconds = seconds(Steady::now() - killed_at);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  for (const auto& m : ms) kill(m.pid, SIGTERM);
  for (const auto& m : ms) {
    int status = 0;
    waitpid(m.pid, &status, 0);
  }
  return r;
}

std::vector<int> parse_members(const char* text) {
  std::vector<int> out;
  for (const char* p = text; *p;) {
    out.push_back(std::max(1, std::atoi(p)));
    p = std::strchr(p, ',');
    if (!p) break;
    ++p;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: portalwatch_bench_cluster PORTALWATCHD [--events N] [--rounds R] [--members 1,2,4]\n");
    return 2;
  }
  const std::string portalwatchd = argv[1];
  std::uint64_t events = 500'000;
  int rounds = 3;
  std::vector<int> member_counts = {1, 2, 4};
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--events")) events = std::strtoull(argv[i + 1], nullptr, 10);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--members")) member_counts = parse_members(argv[i + 1]);
  }
  SimulateOptions simulate;
  simulate.events = events;
  simulate.seed = 1;
  // In the past, as a backlog: events ahead of the wall clock would be placed at it (the future
  // clamp), at a moment that differs from member to member.
  simulate.start = format_rfc3339(SystemClock().now() - 30 * kDayMs);
  const auto sim_options = simulator_options(simulate);
  const double mean_bytes = bench::mean_event_bytes(*sim_options, events);
  const int partitions = bench::partitions_for(events, mean_bytes);
  const auto broker = bench::start_broker(partitions);
  if (!broker) return 1;
  {
    auto producer = bench::producer(broker->bootstrap(), "100", nullptr);
    sim::PortalSimulator simulator(*sim_options);
    std::string line;
    for (std::uint64_t i = 0; i < events; ++i) {
      simulator.next(line);
      bench::produce(*producer, "events", std::string(simulator.last_user()), line);
      producer->poll(0);
    }
    while (producer->outq_len() > 0) producer->poll(100);
  }
  char tmpl[] = "/tmp/portalwatch-bench-cluster-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string shipped = bench::read_text(PORTALWATCH_SOURCE_DIR "/config/portalwatch.yaml");
  std::printf("cluster: %llu events (%.0f bytes on average) on %d partitions; %ld cores; state topic of %d partitions\n",
              static_cast<unsigned long long>(events), mean_bytes, partitions, sysconf(_SC_NPROCESSORS_ONLN),
              kStatePartitions);
  std::printf("%-6s %8s %18s %20s %22s %12s %14s %12s\n", "round", "members", "cluster events/s",
              "CPU us/event (all)", "published bytes/event", "published", "same id again", "takeover s");
  std::map<int, std::vector<double>> rate, cpu, takeover, published;
  bool all = true;
  for (int round = 1; round <= rounds; ++round) {
    for (const int m : member_counts) {
      const std::string name = "c" + std::to_string(m) + "r" + std::to_string(round);
      const Result r = cluster_run(portalwatchd, shipped, *broker, dir, name, m, events);
      all = all && r.complete;
      const double per_event = r.published_bytes / static_cast<double>(events);
      std::printf("%-6d %8d %18.0f %20.2f %22.3f %12.0f %14.0f %12s%s\n", round, m, r.events_per_second,
                  r.cpu_us_per_event, per_event, r.published_messages, r.published_twice,
                  r.takeover_seconds < 0 ? "-" : std::to_string(r.takeover_seconds).substr(0, 5).c_str(),
                  r.complete ? "" : "  INCOMPLETE (logs in the bench directory)");
      std::fflush(stdout);
      if (!r.complete) continue;
      rate[m].push_back(r.events_per_second);
      cpu[m].push_back(r.cpu_us_per_event);
      published[m].push_back(per_event);
      if (r.takeover_seconds >= 0) takeover[m].push_back(r.takeover_seconds);
    }
  }
  const double base_rate = median(rate[member_counts.front()]), base_cpu = median(cpu[member_counts.front()]);
  for (const int m : member_counts)
    std::printf("median, %d member(s): %.0f events/s (%.2fx of %d), %.2f CPU us per event (%.2fx), %.3f bytes "
                "published per event%s\n",
                m, median(rate[m]), base_rate > 0 ? median(rate[m]) / base_rate : 0, member_counts.front(),
                median(cpu[m]), base_cpu > 0 ? median(cpu[m]) / base_cpu : 0, median(published[m]),
                takeover[m].empty() ? ""
                                    : (", takeover " + std::to_string(median(takeover[m])).substr(0, 5) +
                                       " s (session.timeout.ms " + kSessionTimeoutMs + ")")
                                          .c_str());
  std::printf("logs: %s\n", dir.c_str());
  return all ? 0 : 1;
}
