// Memory is bounded and known: ten million distinct source addresses through every detector of
// the default configuration must leave the process's resident memory under the budget the
// configuration implies (each table's cap × its documented bytes per key).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "daemon/config.h"
#include "detectors/engine.h"

namespace portalwatch {

namespace {

struct Count final : FindingSink {
  std::size_t n = 0;
  void emit(Finding&&) override { ++n; }
};

double rss_mib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

std::size_t budget_bytes(const Engine& e) {
  std::size_t bytes = 0;
  auto add = [&](const std::vector<TableStats>& tables) {
    for (const auto& t : tables) bytes += t.capacity * t.bytes_per_key;
  };
  add(e.tables());
  for (const auto& d : e.detectors()) add(d.detector->tables());
  return bytes;
}

}  // namespace

TEST_CASE("memory: 10 million distinct sources through every default detector stay within the budget") {
  ConfigResult loaded = load_config(std::nullopt);
  REQUIRE_MESSAGE(loaded.config, loaded.errors);
  Config config = std::move(*loaded.config);
  config.engine.time.reference = TimeOptions::Reference::kStream;
  Engine engine(config.engine, std::move(config.detectors), nullptr);
  const double budget_mib = static_cast<double>(budget_bytes(engine)) / (1024.0 * 1024.0);
  const double before = rss_mib();

  static constexpr Action kActions[] = {Action::kLogin, Action::kLogin, Action::kView, Action::kMfa, Action::kDownload};
  std::vector<std::string> users, records;
  for (int i = 0; i < 100000; ++i) {
    users.push_back("user" + std::to_string(i));
    records.push_back("E" + std::to_string(1000000 + i));
  }
  const TimeMs t0 = *parse_rfc3339("2026-12-21T08:00:00Z");
  Count sink;
  const std::uint64_t kSources = 10'000'000;
  double peak = before;
  for (std::uint64_t i = 0; i < kSources; ++i) {
    Event ev;
    ev.timestamp = t0 + static_cast<TimeMs>(i / 2000);  // 2,000 events a second of event time
    ev.action = kActions[i % 5];
    ev.outcome = i % 3 == 0 ? Outcome::kSuccess : Outcome::kFailure;
    ev.reason = ev.outcome == Outcome::kFailure ? (i % 2 ? Reason::kUnknownUser : Reason::kBadPassword) : Reason::kNone;
    ev.user_name = users[(i * 7919) % users.size()];
    ev.record_id = records[(i * 104729) % records.size()];
    ev.as_number = static_cast<std::uint32_t>(64512 + i % 1000);
    if (i % 4 == 3) {
      // IPv6: a distinct /64 each.
      ev.source_ip.bytes = {0x20, 0x01, 0x0d, 0xb8, static_cast<std::uint8_t>(i >> 24), static_cast<std::uint8_t>(i >> 16),
                            static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i), 0, 0, 0, 0, 0, 0, 0, 1};
    } else {
      ev.source_ip = *IpAddress::parse("10.0.0.0");
      ev.source_ip.bytes[13] = static_cast<std::uint8_t>(i >> 16);
      ev.source_ip.bytes[14] = static_cast<std::uint8_t>(i >> 8);
      ev.source_ip.bytes[15] = static_cast<std::uint8_t>(i);
      ev.source_ip.bytes[12] = static_cast<std::uint8_t>(10 + (i >> 24));
    }
    engine.process_event(ev, sink);
    if (i % 1'000'000 == 0) peak = std::max(peak, rss_mib());
  }
  peak = std::max(peak, rss_mib());
  const double growth = peak - before;
  std::printf("\nmemory: %llu distinct sources, %zu detectors; RSS %.1f MiB before, %.1f MiB peak (+%.1f MiB); "
              "configured budget %.1f MiB\n",
              static_cast<unsigned long long>(kSources), engine.detectors().size(), before, peak, growth, budget_mib);
  for (const auto& d : engine.detectors())
    for (const auto& t : d.detector->tables())
      std::printf("  %-22s %-16s %9zu keys (cap %9zu, %3zu B/key) %10llu evictions\n", d.common.name.c_str(),
                  std::string(t.table).c_str(), t.keys, t.capacity, t.bytes_per_key, static_cast<unsigned long long>(t.evictions));
  for (const auto& t : engine.tables())
    std::printf("  %-22s %-16s %9zu keys (cap %9zu, %3zu B/key) %10llu evictions\n", "engine", std::string(t.table).c_str(),
                t.keys, t.capacity, t.bytes_per_key, static_cast<unsigned long long>(t.evictions));
  // Allocator slack and hash-table bucket arrays growing in steps: allow a quarter over the budget.
  CHECK(growth <= budget_mib * 1.25 + 32);
  for (const auto& d : engine.detectors())
    for (const auto& t : d.detector->tables()) {
      CHECK(t.keys <= t.capacity);
      CHECK(t.bytes_per_key <= 300);
    }
}

}  // namespace portalwatch
