// Per-account profiles kept in RocksDB, so a restart or a crash neither forgets a known device nor
// counts an event twice.
//
// Profiles are read through a bounded in-memory cache; changes stay in the cache until commit(),
// which writes every changed profile *and* the consumer positions they reflect ("topic/partition"
// → next offset) in one atomic RocksDB write batch. The daemon commits its Kafka offsets only
// after that batch is durable; after a crash, the positions in the store say which events the
// profiles already include, so replayed events are not applied twice.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "detectors/profile.h"

namespace rocksdb {
class DB;
}

namespace portalwatch {

struct ProfileStoreOptions {
  std::string path;                      ///< RocksDB directory (created if missing)
  std::size_t cache_accounts = 100'000;  ///< profiles held in memory at once
  std::size_t block_cache_mib = 64;      ///< RocksDB's own read cache
};

struct ProfileStoreStats {
  std::uint64_t reads = 0;    ///< profiles read from RocksDB (cache misses)
  std::uint64_t corrupt = 0;  ///< stored values that failed to decode (replaced by empty profiles)
  std::uint64_t commits = 0;
  std::uint64_t profiles_written = 0;
  std::size_t cached = 0;
};

class ProfileStore final : public ProfileBook {
 public:
  /// Opens (or creates) the store; nullptr with error set on failure.
  static std::unique_ptr<ProfileStore> open(const ProfileStoreOptions& options, std::string& error);
  ~ProfileStore();
  ProfileStore(const ProfileStore&) = delete;
  ProfileStore& operator=(const ProfileStore&) = delete;

  /// The account's profile (empty for an account never seen), from the cache or the store.
  /// Valid until the next call to profile() or commit().
  AccountProfile& profile(std::string_view account, TimeMs now = 0) override;
  /// Marks the account's cached profile changed: it is written at the next commit().
  void changed(std::string_view account) override;

  /// Atomically writes every changed profile and the positions; sync also waits for the disk.
  bool commit(const std::map<std::string, std::int64_t>& positions, bool sync, std::string& error);
  /// The positions written by the last commit (empty for a new store).
  const std::map<std::string, std::int64_t>& positions() const { return positions_; }
  /// The position of one "topic/partition", or -1.
  std::int64_t position(const std::string& topic_partition) const;

  const ProfileStoreStats& stats() const { return stats_; }

 private:
  struct Cached {
    AccountProfile profile;
    std::uint64_t used = 0;
    bool dirty = false;
  };
  explicit ProfileStore(ProfileStoreOptions options);
  void make_room();

  ProfileStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unordered_map<std::string, Cached> cache_;
  std::map<std::string, std::int64_t> positions_;
  std::uint64_t clock_ = 0;
  ProfileStoreStats stats_;
};

}  // namespace portalwatch
