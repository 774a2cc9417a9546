#include "daemon/profile_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace portalwatch {

namespace {

constexpr std::string_view kProfilePrefix = "p/";
constexpr std::string_view kPositionPrefix = "o/";

std::string profile_key(std::string_view account) {
  return std::string(kProfilePrefix) + std::string(account);
}

}  // namespace

ProfileStore::ProfileStore(ProfileStoreOptions options) : options_(std::move(options)) {}
ProfileStore::~ProfileStore() = default;

std::unique_ptr<ProfileStore> ProfileStore::open(const ProfileStoreOptions& options,
                                                 std::string& error) {
  std::unique_ptr<ProfileStore> store(new ProfileStore(options));
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
    error = "cannot open profile store " + options.path + ": " + st.ToString();
    return nullptr;
  }
  store->db_.reset(db);
  // The consumer positions the stored profiles include.
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(std::string(kPositionPrefix));
       it->Valid() && it->key().starts_with(std::string(kPositionPrefix)); it->Next()) {
    const std::string value = it->value().ToString();
    std::int64_t offset = 0;
    if (value.size() == sizeof offset) {
      std::memcpy(&offset, value.data(), sizeof offset);
      store->positions_[it->key().ToString().substr(kPositionPrefix.size())] = offset;
    }
  }
  if (!it->status().ok()) {
    error = "cannot read profile store " + options.path + ": " + it->status().ToString();
    return nullptr;
  }
  return store;
}

AccountProfile& ProfileStore::profile(std::string_view account, TimeMs) {
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

void ProfileStore::changed(std::string_view account) {
  auto it = cache_.find(std::string(account));
  if (it != cache_.end()) it->second.dirty = true;
}

void ProfileStore::make_room() {
  // Drop the least recently used eighth of the clean entries; changed ones wait for commit().
  std::vector<std::uint64_t> used;
  used.reserve(cache_.size());
  for (const auto& [k, c] : cache_)
    if (!c.dirty) used.push_back(c.used);
  if (used.empty()) return;  // everything is waiting to be written: grow until the next commit
  const size_t n = std::max<size_t>(1, std::min(used.size(), options_.cache_accounts / 8));
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

bool ProfileStore::commit(const std::map<std::string, std::int64_t>& positions, bool sync,
                          std::string& error) {
  rocksdb::WriteBatch batch;
  std::size_t written = 0;
  for (auto& [account, c] : cache_) {
    if (!c.dirty) continue;
    batch.Put(profile_key(account), c.profile.encode());
    ++written;
  }
  for (const auto& [tp, offset] : positions) {
    std::string value(sizeof offset, '\0');
    std::memcpy(value.data(), &offset, sizeof offset);
    batch.Put(std::string(kPositionPrefix) + tp, value);
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  const rocksdb::Status st = db_->Write(wo, &batch);
  if (!st.ok()) {
    error = "profile store write failed: " + st.ToString();
    return false;
  }
  for (auto& [account, c] : cache_) c.dirty = false;
  for (const auto& [tp, offset] : positions) positions_[tp] = offset;
  ++stats_.commits;
  stats_.profiles_written += written;
  return true;
}

std::int64_t ProfileStore::position(const std::string& topic_partition) const {
  const auto it = positions_.find(topic_partition);
  return it == positions_.end() ? -1 : it->second;
}

}  // namespace portalwatch
