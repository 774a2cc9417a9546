#include "daemon/state_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

namespace portalwatch {

namespace {

constexpr std::string_view kProfilePrefix = "p/";
constexpr std::string_view kPositionPrefix = "o/";
constexpr std::string_view kWarmupPrefix = "w/";
constexpr std::string_view kLedgerPrefix = "f/";
constexpr std::string_view kOutboxPrefix = "x/";
constexpr std::string_view kDecisionOutboxPrefix = "y/";
constexpr std::string_view kNextIdKey = "n";
constexpr std::string_view kLockdownPrefix = "l/";
constexpr std::string_view kNextDecisionKey = "m";

std::string profile_key(std::string_view account) {
  return std::string(kProfilePrefix) + std::string(account);
}

std::string outbox_key(std::uint64_t id, std::string_view prefix = kOutboxPrefix) {
  std::string k(prefix);
  for (int shift = 56; shift >= 0; shift -= 8) k.push_back(static_cast<char>((id >> shift) & 0xff));
  return k;
}

std::string u64_bytes(std::uint64_t v) {
  std::string s(sizeof v, '\0');
  std::memcpy(s.data(), &v, sizeof v);
  return s;
}

// Outbox value: 4-byte key length, key, finding JSON.
std::string encode_outbox(const OutboxEntry& e) {
  std::string v(4, '\0');
  const auto n = static_cast<std::uint32_t>(e.key.size());
  std::memcpy(v.data(), &n, 4);
  return v + e.key + e.json;
}

std::optional<OutboxEntry> decode_outbox(std::string_view key, std::string_view value,
                                        std::string_view prefix = kOutboxPrefix) {
  if (key.size() != prefix.size() + 8 || value.size() < 4) return std::nullopt;
  OutboxEntry e;
  for (std::size_t i = prefix.size(); i < key.size(); ++i)
    e.seq = (e.seq << 8) | static_cast<std::uint8_t>(key[i]);
  std::uint32_t n = 0;
  std::memcpy(&n, value.data(), 4);
  if (value.size() < 4 + static_cast<std::size_t>(n)) return std::nullopt;
  e.key = std::string(value.substr(4, n));
  e.json = std::string(value.substr(4 + n));
  return e;
}

}  // namespace

StateStore::StateStore(StateStoreOptions options) : options_(std::move(options)) {}
StateStore::~StateStore() = default;

std::unique_ptr<StateStore> StateStore::open(const StateStoreOptions& options,
                                                 std::string& error) {
  std::unique_ptr<StateStore> store(new StateStore(options));
  rocksdb::Options o;
  o.create_if_missing = true;
  o.max_open_files = 256;
  o.keep_log_file_num = 4;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_mib << 20);
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* db = nullptr;
  const rocksdb::Status st = rocksdb::DB::Open(o, options.path, &db);
  if (!st.ok()) {
    error = "cannot open state store " + options.path + ": " + st.ToString();
    return nullptr;
  }
  store->db_.reset(db);
  // The consumer positions the stored profiles include, and where warm-ups start.
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (auto [prefix, into] : {std::pair{kPositionPrefix, &store->positions_}, std::pair{kWarmupPrefix, &store->warmups_}}) {
    for (it->Seek(std::string(prefix)); it->Valid() && it->key().starts_with(std::string(prefix)); it->Next()) {
      const std::string value = it->value().ToString();
      std::int64_t offset = 0;
      if (value.size() == sizeof offset) {
        std::memcpy(&offset, value.data(), sizeof offset);
        (*into)[it->key().ToString().substr(prefix.size())] = offset;
      } else {
        ++store->stats_.corrupt;
      }
    }
  }
  // Published findings: the ledger and the outbox.
  for (it->Seek(std::string(kLedgerPrefix)); it->Valid() && it->key().starts_with(std::string(kLedgerPrefix));
       it->Next()) {
    if (auto e = LedgerEntry::decode(it->value().ToStringView()))
      store->ledger_.emplace_back(it->key().ToString().substr(kLedgerPrefix.size()), *e);
    else
      ++store->stats_.corrupt;
  }
  for (it->Seek(std::string(kOutboxPrefix)); it->Valid() && it->key().starts_with(std::string(kOutboxPrefix));
       it->Next()) {
    if (auto e = decode_outbox(it->key().ToStringView(), it->value().ToStringView()))
      store->undelivered_.push_back(std::move(*e));
    else
      ++store->stats_.corrupt;
  }
  for (it->Seek(std::string(kDecisionOutboxPrefix));
       it->Valid() && it->key().starts_with(std::string(kDecisionOutboxPrefix)); it->Next()) {
    if (auto e = decode_outbox(it->key().ToStringView(), it->value().ToStringView(), kDecisionOutboxPrefix))
      store->undelivered_decisions_.push_back(std::move(*e));
    else
      ++store->stats_.corrupt;
  }
  for (it->Seek(std::string(kLockdownPrefix)); it->Valid() && it->key().starts_with(std::string(kLockdownPrefix));
       it->Next()) {
    if (auto l = Lockdown::decode(it->value().ToStringView()))
      store->lockdowns_.push_back(std::move(*l));
    else
      ++store->stats_.corrupt;
  }
  if (!it->status().ok()) {
    error = "cannot read state store " + options.path + ": " + it->status().ToString();
    return nullptr;
  }
  std::string next_decision;
  if (db->Get(rocksdb::ReadOptions(), std::string(kNextDecisionKey), &next_decision).ok() && next_decision.size() == 8)
    std::memcpy(&store->next_decision_id_, next_decision.data(), 8);
  std::string next;
  if (db->Get(rocksdb::ReadOptions(), std::string(kNextIdKey), &next).ok() && next.size() == 8)
    std::memcpy(&store->next_finding_id_, next.data(), 8);
  return store;
}

AccountProfile& StateStore::profile(std::string_view account, TimeMs) {
  auto it = cache_.find(std::string(account));
  if (it == cache_.end()) {
    if (cache_.size() >= options_.cache_accounts) make_room();
    Cached c;
    std::string value;
    const rocksdb::Status st = db_->Get(rocksdb::ReadOptions(), profile_key(account), &value);
    if (st.ok()) {
      ++stats_.reads;
      if (auto p = AccountProfile::decode(value))
        c.profile = *p;
      else
        ++stats_.corrupt;
    }
    it = cache_.emplace(std::string(account), std::move(c)).first;
    stats_.cached = cache_.size();
  }
  it->second.used = ++clock_;
  return it->second.profile;
}

void StateStore::changed(std::string_view account) {
  auto it = cache_.find(std::string(account));
  if (it != cache_.end() && !it->second.dirty) {
    it->second.dirty = true;
    dirty_.push_back(&*it);
  }
}

void StateStore::make_room() {
  // Drop the least recently used clean entries, down to seven eighths of the cap: one scan of the
  // cache pays for an eighth of it in misses. Changed entries wait for commit(); while fewer than
  // an eighth are clean the cache grows past its cap until then, rather than scanning on every
  // miss for a handful of entries (accounts changing faster than commits come: a busy portal
  // with a small cache).
  const std::size_t cap = options_.cache_accounts, keep = cap - cap / 8;
  const std::size_t clean = cache_.size() - dirty_.size();
  if (clean < std::max<std::size_t>(1, cap / 8)) return;
  std::vector<std::uint64_t> used;
  used.reserve(clean);
  for (const auto& [k, c] : cache_)
    if (!c.dirty) used.push_back(c.used);
  const size_t n = std::min(used.size(), std::max<std::size_t>(1, cache_.size() - std::min(keep, cache_.size())));
  std::nth_element(used.begin(), used.begin() + static_cast<std::ptrdiff_t>(n - 1), used.end());
  const std::uint64_t cutoff = used[n - 1];
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (!it->second.dirty && it->second.used <= cutoff)
      it = cache_.erase(it);
    else
      ++it;
  }
  stats_.cached = cache_.size();
}

bool StateStore::commit(const std::map<std::string, std::int64_t>& positions, bool sync,
                        std::string& error, const std::vector<std::string>& forget,
                        const std::map<std::string, std::int64_t>& warmups) {
  rocksdb::WriteBatch batch;
  for (const auto& [tp, offset] : warmups) batch.Put(std::string(kWarmupPrefix) + tp, u64_bytes(static_cast<std::uint64_t>(offset)));
  for (const auto& key : forget) batch.Delete(std::string(kLedgerPrefix) + key);
  for (const CacheEntry* e : dirty_) batch.Put(profile_key(e->first), e->second.profile.encode());
  for (const auto& [tp, offset] : positions) {
    std::string value(sizeof offset, '\0');
    std::memcpy(value.data(), &offset, sizeof offset);
    batch.Put(std::string(kPositionPrefix) + tp, value);
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  const rocksdb::Status st = db_->Write(wo, &batch);
  if (!st.ok()) {
    error = "state store write failed: " + st.ToString();
    return false;
  }
  for (CacheEntry* e : dirty_) e->second.dirty = false;
  const std::size_t written = dirty_.size();
  dirty_.clear();
  for (const auto& [tp, offset] : positions) positions_[tp] = offset;
  for (const auto& [tp, offset] : warmups) warmups_[tp] = offset;
  ++stats_.commits;
  stats_.profiles_written += written;
  return true;
}

bool StateStore::stage_finding(const std::string& ledger_key, const LedgerEntry& entry,
                               const OutboxEntry& finding, std::uint64_t next_finding_id, std::string& error) {
  rocksdb::WriteBatch batch;
  batch.Put(std::string(kLedgerPrefix) + ledger_key, entry.encode());
  batch.Put(outbox_key(finding.seq), encode_outbox(finding));
  batch.Put(std::string(kNextIdKey), u64_bytes(next_finding_id));
  const rocksdb::Status st = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!st.ok()) {
    error = "state store write failed: " + st.ToString();
    return false;
  }
  return true;
}

bool StateStore::write_lockdown(const std::string& key, const Lockdown* lockdown, std::uint64_t next_decision_id,
                                std::string& error, const OutboxEntry* decision) {
  rocksdb::WriteBatch batch;
  if (decision) batch.Put(outbox_key(decision->seq, kDecisionOutboxPrefix), encode_outbox(*decision));
  if (lockdown)
    batch.Put(std::string(kLockdownPrefix) + key, lockdown->encode());
  else
    batch.Delete(std::string(kLockdownPrefix) + key);
  batch.Put(std::string(kNextDecisionKey), u64_bytes(next_decision_id));
  rocksdb::WriteOptions wo;
  wo.sync = true;  // a lockdown must not be forgotten by a crash
  const rocksdb::Status st = db_->Write(wo, &batch);
  if (!st.ok()) {
    error = "state store write failed: " + st.ToString();
    return false;
  }
  return true;
}

bool StateStore::write_setting(const std::string& name, const std::string* value, std::string& error) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const std::string key = "c/" + name;
  const rocksdb::Status st = value ? db_->Put(wo, key, *value) : db_->Delete(wo, key);
  if (!st.ok()) {
    error = "state store write failed: " + st.ToString();
    return false;
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> StateStore::settings(const std::string& prefix) const {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string from = "c/" + prefix;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(from); it->Valid() && it->key().starts_with(from); it->Next())
    out.emplace_back(it->key().ToString().substr(2), it->value().ToString());
  return out;
}

bool StateStore::delivered(std::uint64_t finding_id, std::string& error) {
  return erase_outbox(outbox_key(finding_id), error);
}

bool StateStore::decision_delivered(std::uint64_t decision_id, std::string& error) {
  return erase_outbox(outbox_key(decision_id, kDecisionOutboxPrefix), error);
}

bool StateStore::erase_outbox(const std::string& key, std::string& error) {
  const rocksdb::Status st = db_->Delete(rocksdb::WriteOptions(), key);
  if (!st.ok()) {
    error = "state store write failed: " + st.ToString();
    return false;
  }
  return true;
}

void StateStore::restore_ledger(FindingLedger& ledger) const {
  for (const auto& [key, entry] : ledger_) ledger.restore(key, entry);
}

std::int64_t StateStore::warmup(const std::string& topic_partition) const {
  const auto it = warmups_.find(topic_partition);
  return it == warmups_.end() ? -1 : it->second;
}

std::int64_t StateStore::position(const std::string& topic_partition) const {
  const auto it = positions_.find(topic_partition);
  return it == positions_.end() ? -1 : it->second;
}

}  // namespace portalwatch
