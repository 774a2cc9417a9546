// The daemon's durable state in RocksDB, so a restart or a crash neither forgets a known device,
// nor counts an event twice, nor fires or loses a finding.
//
// - Profiles are read through a bounded in-memory cache; changes stay in the cache until commit(),
//   which writes every changed profile *and* the consumer positions they reflect
//   ("topic/partition" → next offset) in one atomic, synced write batch. The daemon commits its
//   Kafka offsets only after that batch is durable; after a crash, the positions say which events
//   the profiles already include, so replayed events are not applied twice.
// - Published findings: before a finding is produced, its ledger entry (daemon/finding_ledger.h),
//   the finding itself in an outbox and the next finding id are written in one batch (to the
//   write-ahead log, which a killed process does not lose). The outbox entry is deleted when the
//   broker confirms delivery; whatever is still in the outbox at start-up is sent again with the
//   same id. Ledger entries whose window has ended are deleted at commit().
//
// - Warm-up offsets: with the positions, the offset of the first event of the last warm-up period
//   (event time) per partition. Detector windows live in memory; after a restart the daemon
//   reads the partition again from there, so windows are whole again when new events arrive.
//   Those events are "included": they do not change profiles and their findings are not published.
//
// - Lockdowns in force (detectors/policy.h), written synced when a decision puts one on or off,
//   with the next decision id; the daemon restores them at start and knows what is on.
//
// Key spaces: "c/<name>" operator settings (allowlist, silences), "l/<action scope>" lockdowns, "m" next decision id, "p/<account>" profiles, "o/<topic/partition>" positions, "w/<topic/partition>"
// warm-up offsets, "f/<ledger key>" ledger, "x/<id, 8 bytes big-endian>" outbox, "y/<id>" decisions' outbox, "n" next finding id.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "daemon/finding_ledger.h"
#include "detectors/policy.h"
#include "detectors/profile.h"

namespace rocksdb {
class DB;
}

namespace portalwatch {

struct StateStoreOptions {
  std::string path;                      ///< RocksDB directory (created if missing)
  std::size_t cache_accounts = 100'000;  ///< profiles held in memory at once
  std::size_t block_cache_mib = 64;      ///< RocksDB's own read cache
};

struct StateStoreStats {
  std::uint64_t reads = 0;    ///< profiles read from RocksDB (cache misses)
  std::uint64_t corrupt = 0;  ///< stored values that failed to decode (replaced by empty profiles)
  std::uint64_t commits = 0;
  std::uint64_t profiles_written = 0;
  std::size_t cached = 0;
};

/// A finding (or decision) written to an outbox and not yet confirmed delivered.
struct OutboxEntry {
  std::uint64_t seq = 0;  ///< the finding's or decision's running number (Finding::seq): the order
  std::string key;   ///< Kafka message key (the entity)
  std::string json;  ///< the finding as published
};

class StateStore final : public ProfileBook {
 public:
  /// Opens (or creates) the store; nullptr with error set on failure.
  static std::unique_ptr<StateStore> open(const StateStoreOptions& options, std::string& error);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  /// The account's profile (empty for an account never seen), from the cache or the store.
  /// Valid until the next call to profile() or commit().
  AccountProfile& profile(std::string_view account, TimeMs now = 0) override;
  /// Marks the account's cached profile changed: it is written at the next commit().
  void changed(std::string_view account) override;

  /// Atomically writes every changed profile and the positions, and deletes the ledger entries
  /// named in forget; sync also waits for the disk.
  bool commit(const std::map<std::string, std::int64_t>& positions, bool sync, std::string& error,
              const std::vector<std::string>& forget = {},
              const std::map<std::string, std::int64_t>& warmups = {});

  /// Before a finding is produced: its ledger entry, the finding in the outbox and the next
  /// finding id, in one write (write-ahead logged, not synced).
  bool stage_finding(const std::string& ledger_key, const LedgerEntry& entry, const OutboxEntry& finding,
                     std::uint64_t next_finding_id, std::string& error);
  /// The broker confirmed delivery: the finding leaves the outbox.
  bool delivered(std::uint64_t finding_id, std::string& error);
  /// What open() found: ledger entries, findings never confirmed delivered, the next finding id
  /// (0 for a new store).
  void restore_ledger(FindingLedger& ledger) const;
  const std::vector<OutboxEntry>& undelivered() const { return undelivered_; }
  std::uint64_t next_finding_id() const { return next_finding_id_; }

  /// A lockdown put on (or changed), or taken off (nullptr), with the next decision id; synced.
  /// `decision`: the decision that did it, into the decisions' outbox in the same write (deleted by
  /// decision_delivered(); sent again at start-up otherwise, with the same id).
  bool write_lockdown(const std::string& key, const Lockdown* lockdown, std::uint64_t next_decision_id,
                      std::string& error, const OutboxEntry* decision = nullptr);
  /// The broker confirmed a decision's delivery: it leaves the outbox.
  bool decision_delivered(std::uint64_t decision_id, std::string& error);
  /// Decisions never confirmed delivered, as open() found them.
  const std::vector<OutboxEntry>& undelivered_decisions() const { return undelivered_decisions_; }
  /// Operator settings (allowlist, silences) under "c/<name>": value set, or erased (nullptr); synced.
  bool write_setting(const std::string& name, const std::string* value, std::string& error);
  /// Every setting whose name starts with prefix, read now.
  std::vector<std::pair<std::string, std::string>> settings(const std::string& prefix) const;
  /// What open() found: the lockdowns in force and the next decision id (0 for a new store).
  const std::vector<Lockdown>& lockdowns() const { return lockdowns_; }
  std::uint64_t next_decision_id() const { return next_decision_id_; }
  /// The positions written by the last commit (empty for a new store).
  const std::map<std::string, std::int64_t>& positions() const { return positions_; }
  /// The position of one "topic/partition", or -1.
  std::int64_t position(const std::string& topic_partition) const;
  /// Where a warm-up of one "topic/partition" starts, or -1.
  std::int64_t warmup(const std::string& topic_partition) const;

  const StateStoreStats& stats() const { return stats_; }

 private:
  struct Cached {
    AccountProfile profile;
    std::uint64_t used = 0;
    bool dirty = false;
  };
  explicit StateStore(StateStoreOptions options);
  void make_room();
  bool erase_outbox(const std::string& key, std::string& error);
  using CacheEntry = std::pair<const std::string, Cached>;

  StateStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unordered_map<std::string, Cached> cache_;
  // The entries changed since the last commit (each once); make_room() never drops them, so the
  // pointers stay valid (unordered_map nodes do not move).
  std::vector<CacheEntry*> dirty_;
  std::map<std::string, std::int64_t> positions_;
  std::map<std::string, std::int64_t> warmups_;
  std::vector<std::pair<std::string, LedgerEntry>> ledger_;  // as read at open
  std::vector<OutboxEntry> undelivered_;                      // as read at open
  std::vector<OutboxEntry> undelivered_decisions_;            // as read at open
  std::uint64_t next_finding_id_ = 0;
  std::vector<Lockdown> lockdowns_;  // as read at open
  std::uint64_t next_decision_id_ = 0;
  std::uint64_t clock_ = 0;
  StateStoreStats stats_;
};

}  // namespace portalwatch
