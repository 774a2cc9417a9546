#include "daemon/demo.h"

#include <librdkafka/rdkafkacpp.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "daemon/config.h"
#include "daemon/embedded_broker.h"
#include "daemon/geoip.h"
#include "daemon/hooks.h"
#include "daemon/kafka_daemon.h"
#include "daemon/log.h"
#include "daemon/simulator.h"
#include "daemon/system_clock.h"

namespace portalwatch {

namespace {

TimeMs wall_now_ms() { return SystemClock().now(); }

constexpr TimeMs kAttackSpacing = 30 * kSecondMs;

// One readable line per finding for a person watching the demo.
void print_finding(const Finding& f, bool color) {
  static constexpr const char* kColors[] = {"\033[37m", "\033[36m", "\033[33m", "\033[31m", "\033[1;41;97m"};
  std::string sev(to_string(f.severity));
  for (auto& c : sev) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string at = format_rfc3339(f.at).substr(11, 8);
  std::printf("%s  %s%-8s%s  %-20s  %-7s %-22s  %s\n", at.c_str(), color ? kColors[static_cast<int>(f.severity)] : "",
              sev.c_str(), color ? "\033[0m" : "", std::string(f.detector).c_str(),
              std::string(to_string(f.entity_type)).c_str(), f.entity.c_str(), f.summary.c_str());
  std::fflush(stdout);
}

void print_decision(const Decision& d, bool color) {
  const std::string at = format_rfc3339(d.at).substr(11, 8);
  std::string what = std::string(to_string(d.action)) + (d.on ? " ON " : " OFF ") + d.scope.key();
  for (auto& c : what) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::printf("%s  %sDECISION%s  %-40s  %s: %s%s\n", at.c_str(), color ? "\033[1;45;97m" : "", color ? "\033[0m" : "",
              what.c_str(), d.by.c_str(), d.reason.c_str(), d.dry_run ? " (dry run)" : "");
  std::fflush(stdout);
}

// Produces simulated portal traffic into the broker in wall-clock time until stop is set.
class TrafficGenerator {
 public:
  TrafficGenerator(const std::string& bootstrap, const std::string& topic, const DemoOptions& options)
      : topic_(topic) {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", bootstrap, err);
    conf->set("linger.ms", "20", err);
    conf->set("client.id", "portalwatch-demo-traffic", err);
    producer_.reset(RdKafka::Producer::create(conf.get(), err));
    if (!producer_) throw std::runtime_error("demo traffic producer: " + err);
    sim::SimulatorOptions so;
    so.seed = options.seed;
    so.start = wall_now_ms();
    so.events_per_second = options.events_per_second;
    so.diurnal = false;
    // Every attack kind, the first a few seconds in and each squeezed into a minute and a half, so
    // findings appear while someone watches; the schedule repeats for as long as the demo runs.
    so.attacks = sim::default_attack_schedule(so.start + 5 * kSecondMs, kAttackSpacing);
    for (auto& a : so.attacks)
      if (a.kind != sim::AttackKind::kLowAndSlowStuffing) a.duration = 90 * kSecondMs;
    so.repeat_attacks_every = kAttackSpacing * static_cast<TimeMs>(sim::kAttackKindCount);
    simulator_ = std::make_unique<sim::PortalSimulator>(std::move(so));
  }

  void start() { thread_ = std::thread([this] { loop(); }); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    producer_->flush(2000);
  }
  std::uint64_t produced() const { return produced_.load(); }

 private:
  void loop() {
    std::string line;
    while (!stop_.load()) {
      const TimeMs t = simulator_->next(line);
      // The simulator runs on event time; the demo shows it live, so wait for the wall clock.
      while (!stop_.load()) {
        const TimeMs ahead = t - wall_now_ms();
        if (ahead <= 0) break;
        producer_->poll(std::min<TimeMs>(ahead, 50));
      }
      // Keyed by account, as a portal's log shipper should be: Kafka keeps order only within a
      // partition, and a takeover is a sign-in followed by a change.
      const std::string_view key = simulator_->last_user();
      for (;;) {
        const auto rc = producer_->produce(topic_, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
                                           line.data(), line.size(), key.empty() ? nullptr : key.data(),
                                           key.size(), 0, nullptr, nullptr);
        if (rc != RdKafka::ERR__QUEUE_FULL) break;
        producer_->poll(20);
      }
      producer_->poll(0);
      ++produced_;
    }
  }

  std::string topic_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::unique_ptr<sim::PortalSimulator> simulator_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> produced_{0};
};

}  // namespace

int run_demo(const DemoOptions& options) {
  ConfigResult loaded = load_config(options.config_path);
  if (!loaded.config) {
    std::fputs(loaded.errors.c_str(), stderr);
    return 2;
  }
  Config config = std::move(*loaded.config);
  init_logging(config.log);
  std::string error;
  auto broker = EmbeddedBroker::start(1, error);
  if (!broker) {
    spdlog::critical("{}", error);
    return 1;
  }
  const std::string events_topic = config.kafka.topics.front();
  for (const auto& [topic, parts] : {std::pair{events_topic, options.partitions}, std::pair{config.kafka.alerts_topic, 1},
                                     std::pair{config.kafka.decisions_topic, 1}}) {
    if (!topic.empty() && !broker->create_topic(topic, parts, error)) {
      spdlog::critical("{}", error);
      return 1;
    }
  }
  config.kafka.bootstrap_servers = broker->bootstrap();
  if (!options.metrics_listen.empty()) config.metrics.listen = options.metrics_listen;
  // Without hooks of its own, the demo acts through two harmless ones in a directory of its own:
  // every decision appended to a file by `tee` (an exec hook: argv, no shell, the decision on
  // stdin), and a whole-portal maintenance flag file written or removed.
  std::string hook_dir;
  if (config.hooks.empty()) {
    char tmpl[] = "/tmp/portalwatch-demo-XXXXXX";
    if (!mkdtemp(tmpl)) {
      spdlog::critical("cannot create the demo's hook directory: {}", std::strerror(errno));
      return 1;
    }
    hook_dir = tmpl;
    HookConfig record;
    record.name = "demo-record";
    record.type = HookType::kExec;
    record.exec.argv = {"/usr/bin/tee", "-a", hook_dir + "/decisions.jsonl"};
    record.timeout = std::chrono::seconds(5);
    HookConfig flag;
    flag.name = "demo-maintenance-flag";
    flag.type = HookType::kFile;
    flag.file.path = hook_dir + "/maintenance-{app}";
    flag.on.scopes = {false, true, false, false};  // {app}: app scope only
    config.hooks = {record, flag};
  }
  // Operator control on a socket of the demo's own (the packaged path needs /run/portalwatch).
  if (config.control.socket == ControlConfig{}.socket) {
    if (hook_dir.empty()) {
      char tmpl[] = "/tmp/portalwatch-demo-XXXXXX";
      if (!mkdtemp(tmpl)) {
        spdlog::critical("cannot create the demo's directory: {}", std::strerror(errno));
        return 1;
      }
      hook_dir = tmpl;
    }
    config.control.socket = hook_dir + "/control.sock";
  }

  const bool color = isatty(STDOUT_FILENO);
  std::printf("portalwatch demo\n");
  std::printf("  embedded Kafka broker: %s   (e.g. kcat -b %s -t %s -C)\n", broker->bootstrap().c_str(),
              broker->bootstrap().c_str(), config.kafka.alerts_topic.c_str());
  std::printf("  simulated portal traffic: %.0f events/s into topic %s, every attack kind from +5 s, one each 30 s\n",
              options.events_per_second, events_topic.c_str());
  // The simulated addresses are invented: a real database would place them somewhere else than
  // the simulator's source.geo does, and travel would appear where there is none.
  if (config.geoip.city_databases.empty())
    std::printf("  GeoIP: none (the simulated addresses are invented; production sets geoip.city_databases, e.g. to the\n"
                "         DB-IP database tools/setup installs in %s)\n",
                kInstalledGeoIpDirectory);
  if (!config.hooks.empty() && config.hooks[0].name == "demo-record")
    std::printf("  hooks: every decision appended to %s/decisions.jsonl (exec: /usr/bin/tee, no shell);\n"
                "         an application lockdown writes %s/maintenance-<app> (file), its release removes it\n",
                hook_dir.c_str(), hook_dir.c_str());
  if (!config.control.socket.empty())
    std::printf("  operator control: portalwatchctl --socket %s status   (or lockdown on --scope app:hsa --reason ...)\n",
                config.control.socket.c_str());
  std::fflush(stdout);

  TrafficGenerator traffic(broker->bootstrap(), events_topic, options);
  traffic.start();

  DaemonOptions dopts;
  dopts.on_finding = [color](const Finding& f) { print_finding(f, color); };
  dopts.on_decision = [color](const Decision& d) { print_decision(d, color); };
  dopts.on_hook = [color](const std::string& hook, const std::string& decision, bool ok, const std::string& detail) {
    std::printf("          %sHOOK%s      %-40s  %s%s%s\n", color ? "\033[1;44;97m" : "", color ? "\033[0m" : "",
                hook.c_str(), ok ? "ran for " : "FAILED for ", decision.c_str(), ok ? "" : (": " + detail).c_str());
    std::fflush(stdout);
  };
  if (options.duration_seconds)
    dopts.duration = std::chrono::milliseconds(static_cast<std::int64_t>(*options.duration_seconds * 1000));
  const std::string metrics_host = config.metrics.listen.substr(0, config.metrics.listen.rfind(':'));
  dopts.on_ready = [metrics_host](int port) {
    if (port) std::printf("  metrics: http://%s:%d/metrics\n", metrics_host.c_str(), port);
    std::printf("  findings (time, severity, detector, entity, summary):\n");
    std::fflush(stdout);
  };
  const int rc = run_daemon(std::move(config), dopts, install_stop_signals());
  traffic.stop();
  std::printf("demo: %llu simulated events produced\n", static_cast<unsigned long long>(traffic.produced()));
  if (!hook_dir.empty()) {
    // The demo's files (decision record, flags, control socket) go with it.
    std::error_code ec;
    std::filesystem::remove_all(hook_dir, ec);
  }
  return rc;
}

int run_broker(const BrokerOptions& options) {
  std::string error;
  auto broker = EmbeddedBroker::start(options.brokers, error);
  if (!broker) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  for (const auto& spec : options.topics) {
    const auto colon = spec.rfind(':');
    std::string name = spec;
    int partitions = 1;
    if (colon != std::string::npos) {
      name = spec.substr(0, colon);
      try {
        partitions = std::stoi(spec.substr(colon + 1));
      } catch (...) {
        partitions = 0;
      }
      if (partitions < 1 || partitions > 10000) {
        std::fprintf(stderr, "bad topic spec \"%s\": expected NAME or NAME:PARTITIONS\n", spec.c_str());
        return 2;
      }
    }
    if (!broker->create_topic(name, partitions, error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
  }
  if (!options.bootstrap_file.empty()) {
    const std::string tmp = options.bootstrap_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << broker->bootstrap() << "\n";
    }
    std::rename(tmp.c_str(), options.bootstrap_file.c_str());
  }
  std::printf("%s\n", broker->bootstrap().c_str());
  std::fflush(stdout);
  const auto& stop = install_stop_signals();
  while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return 0;
}

std::optional<sim::SimulatorOptions> simulator_options(const SimulateOptions& options) {
  const auto start = parse_rfc3339(options.start);
  if (!start) return std::nullopt;
  sim::SimulatorOptions so;
  so.seed = options.seed;
  so.start = *start;
  so.events_per_second = options.events_per_second;
  so.diurnal = options.diurnal;
  so.label_events = options.labels;
  so.employees = options.employees;
  so.flood_share = options.flood_share;
  so.flood_sources = options.flood_sources;
  so.flood_accounts = options.flood_accounts;
  if (options.attacks) {
    // Spread one of each attack kind evenly over the stream's expected span (a flood's events
    // take no event time of their own).
    const double span_ms = static_cast<double>(options.events) * (1.0 - std::clamp(options.flood_share, 0.0, 0.95)) /
                           options.events_per_second * 1000.0;
    const TimeMs spacing = std::max<TimeMs>(kMinuteMs, static_cast<TimeMs>(span_ms / 12));
    so.attacks = sim::default_attack_schedule(*start + spacing / 2, spacing);
  }
  return so;
}

int run_simulate(const SimulateOptions& options) {
  auto so = simulator_options(options);
  if (!so) {
    std::fprintf(stderr, "--start: \"%s\" is not an RFC 3339 time\n", options.start.c_str());
    return 2;
  }
  sim::PortalSimulator simulator(std::move(*so));

  const bool gz = options.output.size() > 3 && options.output.compare(options.output.size() - 3, 3, ".gz") == 0;
  FILE* out = options.output == "-" ? stdout : nullptr;
  gzFile gzout = nullptr;
  if (gz) {
    gzout = gzopen(options.output.c_str(), "wb6");
  } else if (!out) {
    out = std::fopen(options.output.c_str(), "wb");
  }
  if (!out && !gzout) {
    std::fprintf(stderr, "%s: cannot open for writing\n", options.output.c_str());
    return 1;
  }
  std::string line, block;
  block.reserve(1 << 20);
  auto write_block = [&] {
    if (gzout) gzwrite(gzout, block.data(), static_cast<unsigned>(block.size()));
    else std::fwrite(block.data(), 1, block.size(), out);
    block.clear();
  };
  for (std::uint64_t i = 0; i < options.events; ++i) {
    simulator.next(line);
    block += line;
    block.push_back('\n');
    if (block.size() > (1 << 20) - 4096) write_block();
  }
  write_block();
  bool ok = true;
  if (gzout) ok = gzclose(gzout) == Z_OK;
  else if (out != stdout) ok = std::fclose(out) == 0;
  else ok = std::fflush(out) == 0;
  if (!ok) {
    std::fprintf(stderr, "%s: write failed\n", options.output.c_str());
    return 1;
  }
  if (!options.truth.empty()) {
    std::ofstream truth(options.truth);
    for (const auto& a : simulator.attacks()) truth << sim::label_to_json(a) << "\n";
    if (!truth) {
      std::fprintf(stderr, "%s: write failed\n", options.truth.c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace portalwatch
