#include "daemon/app.h"

#include <CLI/CLI.hpp>

#include <cstdio>

#include "daemon/config.h"
#include "daemon/demo.h"
#include "daemon/kafka_daemon.h"
#include "daemon/replay.h"
#include "daemon/simulator.h"
#include "portalwatch_version.h"

namespace portalwatch {

namespace {

int check_config(const std::string& path) {
  ConfigResult r = load_config_file(path);
  if (!r.config) {
    std::fputs(r.errors.c_str(), stderr);
    return 1;
  }
  std::string names;
  for (const auto& d : r.config->detectors) names += (names.empty() ? "" : ", ") + d.common.name;
  std::printf("%s: ok (%zu detector%s enabled%s%s)\n", path.c_str(), r.config->detectors.size(),
              r.config->detectors.size() == 1 ? "" : "s", names.empty() ? "" : ": ", names.c_str());
  return 0;
}

}  // namespace

int portalwatchd_main(int argc, char** argv) {
  CLI::App app{"portalwatchd: detects and stops account abuse on an employee self-service portal"};
  app.set_version_flag("--version", std::string("portalwatchd ") + PORTALWATCH_VERSION);
  app.require_subcommand(1);

  std::string run_config;
  auto* run = app.add_subcommand("run", "Run the daemon: consume portal events from Kafka, detect, publish findings");
  run->add_option("--config,-c", run_config, "Configuration file")->required()->check(CLI::ExistingFile);

  ReplayOptions replay_opts;
  auto* replay = app.add_subcommand("replay", "Run the detectors over JSONL files (plain or .gz) or stdin, in event time; "
                                              "findings as JSON lines on stdout, a summary on stderr");
  replay->add_option("--config,-c", replay_opts.config_path, "Configuration file (default: the built-in default)");
  replay->add_option("inputs", replay_opts.inputs, "Input files; - or none for stdin");
  replay->add_flag("!--no-progress", replay_opts.progress, "Do not show a progress bar");
  replay->add_option("--summary", replay_opts.summary_format, "Summary format on stderr")
      ->check(CLI::IsMember({"text", "json"}));

  DemoOptions demo_opts;
  auto* demo = app.add_subcommand("demo", "Embedded Kafka broker + simulated portal traffic with attacks + the daemon; "
                                          "findings print live, metrics are served");
  demo->add_option("--config,-c", demo_opts.config_path, "Configuration file (default: the built-in default)");
  demo->add_option("--duration", demo_opts.duration_seconds, "Stop after this many seconds (default: until interrupted)")
      ->check(CLI::PositiveNumber);
  demo->add_option("--rate", demo_opts.events_per_second, "Simulated events per second")->check(CLI::Range(1.0, 200000.0));
  demo->add_option("--seed", demo_opts.seed, "Simulator seed");
  demo->add_option("--metrics-listen", demo_opts.metrics_listen, "host:port for /metrics (overrides metrics.listen)");

  std::string check_path;
  auto* check = app.add_subcommand("check-config", "Validate a configuration file; exit 0 if valid, 1 with every error if not");
  check->add_option("file", check_path, "Configuration file")->required();

  SimulateOptions sim_opts;
  auto* simulate = app.add_subcommand("simulate", "Write simulated portal traffic (with labelled attacks) as JSONL");
  simulate->add_option("--events,-n", sim_opts.events, "Number of events")->check(CLI::Range(std::uint64_t{1}, std::uint64_t{10'000'000'000}));
  simulate->add_option("--seed", sim_opts.seed, "Seed (same seed, same stream)");
  simulate->add_option("--start", sim_opts.start, "Event time of the first event (RFC 3339)");
  simulate->add_option("--rate", sim_opts.events_per_second, "Mean events per second of event time")->check(CLI::Range(0.01, 1e7));
  simulate->add_flag("!--no-attacks", sim_opts.attacks, "Benign traffic only");
  simulate->add_flag("!--flat", sim_opts.diurnal, "No day/night or weekday shape");
  simulate->add_flag("--labels", sim_opts.labels, "Mark attack events with a \"labels\" object");
  simulate->add_option("--output,-o", sim_opts.output, "Output file (.gz compresses); - for stdout");
  simulate->add_option("--truth", sim_opts.truth, "Write the attacks' ground truth here as JSON lines");
  simulate->add_option("--employees", sim_opts.employees, "Size of the simulated workforce: accounts that sign in (default 54000)")
      ->check(CLI::Range(std::size_t{1}, sim::kMaxEmployees));
  simulate->add_option("--flood-share", sim_opts.flood_share,
                       "Share of events (0 to 0.95) that are a credential-stuffing flood from many sources, "
                       "through the whole stream (default 0: none)")
      ->check(CLI::Range(0.0, 0.95));
  simulate->add_option("--flood-sources", sim_opts.flood_sources,
                       "Distinct source addresses the flood cycles through (default 100000)")
      ->check(CLI::Range(std::size_t{1}, sim::kMaxFloodSources));
  simulate->add_option("--flood-accounts", sim_opts.flood_accounts,
                       "Distinct account names (a combo list, none an employee's) the flood cycles through (default 100000)")
      ->check(CLI::Range(std::size_t{1}, sim::kMaxFloodAccounts));

  BrokerOptions broker_opts;
  auto* broker = app.add_subcommand("broker", "Run only the embedded Kafka broker on 127.0.0.1 (for tests and kcat); "
                                              "prints its bootstrap address");
  broker->add_option("--topic", broker_opts.topics, "Topic to create, NAME or NAME:PARTITIONS (repeatable)");
  broker->add_option("--bootstrap-file", broker_opts.bootstrap_file, "Write the bootstrap address to this file when ready");
  broker->add_option("--brokers", broker_opts.brokers, "Number of brokers")->check(CLI::Range(1, 9));

  CLI11_PARSE(app, argc, argv);

  if (*run) {
    ConfigResult r = load_config_file(run_config);
    if (!r.config) {
      std::fputs(r.errors.c_str(), stderr);
      return 2;
    }
    DaemonOptions options;
    options.exit_if_kafka_does_not_stop = true;
    return run_daemon(std::move(*r.config), options, install_stop_signals());
  }
  if (*replay) return run_replay(replay_opts);
  if (*demo) return run_demo(demo_opts);
  if (*check) return check_config(check_path);
  if (*simulate) return run_simulate(sim_opts);
  if (*broker) return run_broker(broker_opts);
  return 2;
}

}  // namespace portalwatch
