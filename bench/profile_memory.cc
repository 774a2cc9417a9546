// Profile memory: bytes per account in memory (replay, demo: MemoryProfileBook) and in the RocksDB
// state store (portalwatchd run), for a given number of accounts with realistic histories.
//
//   portalwatch_bench_profiles ACCOUNTS [STATE_DIR]
//
// Each account gets 1-3 devices, 1-3 home/mobile networks, 1-2 countries, 1-2 clients and 4-40
// sign-ins spread over 90 days (deterministic). Prints the process RSS growth for the in-memory
// book, then, when STATE_DIR is given, the store's write time, the encoded bytes per account, the
// files' size on disk after a flush and compaction, and the RSS while the store holds them
// (profiles.cache_accounts = 100,000 in memory).
#include <malloc.h>
#include <rocksdb/db.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "daemon/state_store.h"
#include "detectors/profile.h"

namespace {

using portalwatch::AccountProfile;
using portalwatch::Event;
using portalwatch::IpAddress;
using portalwatch::kDayMs;
using portalwatch::TimeMs;

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

// The sign-ins of one account, fed to `sink(event)` in time order.
template <typename Sink>
void history(std::uint32_t account, Sink&& sink) {
  std::mt19937 rng(account);
  const int devices = 1 + static_cast<int>(rng() % 3), networks = 1 + static_cast<int>(rng() % 3);
  const int countries = 1 + (rng() % 10 == 0), clients = 1 + static_cast<int>(rng() % 2);
  const int sign_ins = 4 + static_cast<int>(rng() % 37);
  const TimeMs start = 1'790'000'000'000;
  std::string device, ip, country, ua;
  for (int i = 0; i < sign_ins; ++i) {
    Event ev;
    ev.time = start + static_cast<TimeMs>(i) * (90 * kDayMs / sign_ins) + static_cast<TimeMs>(rng() % 3'600'000);
    device = "d-" + std::to_string(account) + "-" + std::to_string(rng() % devices);
    ev.device_id = device;
    const std::uint32_t net = rng() % networks;
    ip = std::to_string(24 + net * 40) + "." + std::to_string((account >> 8) & 255) + "." +
         std::to_string(account & 255) + "." + std::to_string(1 + rng() % 250);
    ev.source_ip = *IpAddress::parse(ip);
    ev.as_number = 7922 + net;
    country = (rng() % countries) ? "CA" : "US";
    ev.geo_country = country;
    ev.geo_lat = 38.5;
    ev.geo_lon = -92.2;
    ev.has_geo_location = true;
    ua = (rng() % clients) ? "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile Safari/604.1"
                           : "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0 Safari/537.36";
    ev.user_agent = ua;
    sink(ev);
  }
}

std::uintmax_t dir_bytes(const std::string& dir) {
  std::uintmax_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s ACCOUNTS [STATE_DIR]\n", argv[0]);
    return 2;
  }
  const auto accounts = static_cast<std::uint32_t>(std::strtoul(argv[1], nullptr, 10));
  std::printf("profiles: %u accounts, sizeof(AccountProfile) = %zu B\n", accounts, sizeof(AccountProfile));

  {
    const long before = rss_kib();
    portalwatch::MemoryProfileBook book(accounts, 180 * kDayMs);
    std::string name;
    for (std::uint32_t a = 0; a < accounts; ++a) {
      name = "e" + std::to_string(1'000'000 + a);
      history(a, [&](const Event& ev) { book.profile(name, ev.time).observe_sign_in(ev); });
    }
    const long grown = rss_kib() - before;
    std::printf("  in memory (replay, demo): RSS +%.1f MiB, %.0f B per account\n", grown / 1024.0,
                grown * 1024.0 / accounts);
  }

  if (argc < 3) return 0;
  malloc_trim(0);  // give the book's memory back, so the store's RSS is measured from a true base
  const std::string dir = argv[2];
  std::filesystem::remove_all(dir);
  std::string error;
  const long before = rss_kib();
  auto store = portalwatch::StateStore::open({dir}, error);
  if (!store) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::string name;
  std::uint64_t encoded = 0;
  for (std::uint32_t a = 0; a < accounts; ++a) {
    name = "e" + std::to_string(1'000'000 + a);
    history(a, [&](const Event& ev) {
      store->profile(name, ev.time).observe_sign_in(ev);
      store->changed(name);
    });
    encoded += store->profile(name).encode().size();
    if (a % 10'000 == 9'999 && !store->commit({}, false, error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
  }
  if (!store->commit({}, true, error)) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const long rss = rss_kib() - before;
  store.reset();
  // Reopen to measure what stays on disk once RocksDB has flushed and compacted.
  {
    rocksdb::DB* db = nullptr;
    rocksdb::Options o;
    if (rocksdb::DB::Open(o, dir, &db).ok()) {
      db->Flush(rocksdb::FlushOptions());
      db->CompactRange(rocksdb::CompactRangeOptions(), nullptr, nullptr);
      delete db;
    }
  }
  const auto disk = dir_bytes(dir);
  std::printf("  RocksDB state store (portalwatchd run): written in %.1f s (%.0f accounts/s), %.0f B encoded per account,\n"
              "    %.1f MiB on disk after compaction (%.0f B per account), RSS +%.1f MiB with 100,000 cached\n",
              seconds, accounts / seconds, static_cast<double>(encoded) / accounts, disk / 1048576.0,
              static_cast<double>(disk) / accounts, rss / 1024.0);
  std::filesystem::remove_all(dir);
  return 0;
}
