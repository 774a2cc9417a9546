// `portalwatchd demo` (embedded broker + simulated portal traffic with attacks + the daemon),
// `portalwatchd broker` (only the embedded broker) and `portalwatchd simulate` (JSONL traffic).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "daemon/simulator.h"

namespace portalwatch {

struct DemoOptions {
  std::optional<std::string> config_path;
  std::optional<double> duration_seconds;  ///< none: until interrupted
  double events_per_second = 300;
  std::uint64_t seed = 42;
  std::string metrics_listen;  ///< overrides metrics.listen when set
  int partitions = 4;
};
int run_demo(const DemoOptions& options);

struct BrokerOptions {
  std::vector<std::string> topics;  ///< "name" or "name:partitions"
  std::string bootstrap_file;       ///< written with the bootstrap address once ready
  int brokers = 1;
};
int run_broker(const BrokerOptions& options);

struct SimulateOptions {
  std::uint64_t events = 100000;
  std::uint64_t seed = 42;
  std::string start = "2026-12-21T00:00:00Z";
  double events_per_second = 200;
  bool attacks = true;
  bool labels = false;
  bool diurnal = true;
  std::string output = "-";  ///< "-" stdout; a name ending in .gz is compressed
  std::string truth;         ///< when set, attack labels are written here as JSON lines
  std::size_t employees = 54000;
  double flood_share = 0;  ///< see sim::SimulatorOptions::flood_share
  std::size_t flood_sources = 100000;
  std::size_t flood_accounts = 100000;
};
int run_simulate(const SimulateOptions& options);
/// The simulator's options for `simulate` with these options (one attack of each kind spread over
/// the stream's expected span); nullopt when options.start is not RFC 3339.
std::optional<sim::SimulatorOptions> simulator_options(const SimulateOptions& options);

}  // namespace portalwatch
