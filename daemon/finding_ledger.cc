#include "daemon/finding_ledger.h"

#include <algorithm>
#include <cstring>

namespace portalwatch {

namespace {

constexpr std::uint8_t kLedgerVersion = 1;
constexpr std::size_t kEncodedSize = 2 + 3 * 8;

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof v];
  std::memcpy(b, &v, sizeof v);
  out.append(b, sizeof v);
}

template <typename T>
T get(std::string_view in, std::size_t at) {
  T v;
  std::memcpy(&v, in.data() + at, sizeof v);
  return v;
}

}  // namespace

LedgerEntry LedgerEntry::of(const Finding& f) {
  LedgerEntry e;
  e.severity = f.severity;
  e.at = f.at;
  e.until = f.at + std::max<TimeMs>(0, f.window_end - f.window_start);
  e.seq = f.seq;
  return e;
}

std::string LedgerEntry::encode() const {
  std::string out;
  out.reserve(kEncodedSize);
  out.push_back(static_cast<char>(kLedgerVersion));
  out.push_back(static_cast<char>(severity));
  put<std::int64_t>(out, at);
  put<std::int64_t>(out, until);
  put<std::uint64_t>(out, seq);
  return out;
}

std::optional<LedgerEntry> LedgerEntry::decode(std::string_view bytes) {
  if (bytes.size() != kEncodedSize || static_cast<std::uint8_t>(bytes[0]) != kLedgerVersion) return std::nullopt;
  const auto severity = static_cast<std::uint8_t>(bytes[1]);
  if (severity >= kSeverityCount) return std::nullopt;
  LedgerEntry e;
  e.severity = static_cast<Severity>(severity);
  e.at = get<std::int64_t>(bytes, 2);
  e.until = get<std::int64_t>(bytes, 10);
  e.seq = get<std::uint64_t>(bytes, 18);
  return e;
}

std::string FindingLedger::key_of(const Finding& f) {
  std::string key = f.name;
  key += '\x1f';
  key += to_string(f.entity_type);
  key += '\x1f';
  key += f.entity;
  return key;
}

bool FindingLedger::repeats(const Finding& f) const {
  const auto it = entries_.find(key_of(f));
  if (it == entries_.end() || !it->second.earlier) return false;
  return f.severity <= it->second.severity && f.at <= it->second.until && f.at <= earlier_until_;
}

void FindingLedger::note_published(const std::string& key, Severity severity, TimeMs at) {
  std::string exact = key;
  exact += '\x1f';
  exact += static_cast<char>('0' + static_cast<int>(severity));
  published_.emplace(at, std::move(exact));
  // Bounded as the entries are: the oldest go first.
  while (published_.size() > max_entries_) published_.erase(published_.begin());
}

bool FindingLedger::published_exactly(const Finding& f) const {
  std::string exact = key_of(f);
  exact += '\x1f';
  exact += static_cast<char>('0' + static_cast<int>(f.severity));
  return published_.count({f.at, exact}) > 0;
}

void FindingLedger::forget_published_before(TimeMs t) {
  published_.erase(published_.begin(), published_.lower_bound({t, std::string()}));
}

void FindingLedger::note_earlier(LedgerEntry& e) {
  e.earlier = true;
  earlier_until_ = std::max(earlier_until_, e.at);
}

std::string FindingLedger::record(const Finding& f) {
  std::string key = key_of(f);
  const LedgerEntry e = LedgerEntry::of(f);
  if (entries_.size() >= max_entries_ && !entries_.count(key)) {
    // Full (a flood of distinct entities): drop the entries whose windows end first.
    std::vector<TimeMs> ends;
    ends.reserve(entries_.size());
    for (const auto& [k, v] : entries_) ends.push_back(v.until);
    const std::size_t n = std::max<std::size_t>(1, ends.size() / 8);
    std::nth_element(ends.begin(), ends.begin() + static_cast<std::ptrdiff_t>(n - 1), ends.end());
    const TimeMs cutoff = ends[n - 1];
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.until <= cutoff)
        it = entries_.erase(it);
      else
        ++it;
    }
  }
  entries_[key] = e;
  note_published(key, e.severity, e.at);
  return key;
}

void FindingLedger::restore(std::string key, const LedgerEntry& e) {
  note_published(key, e.severity, e.at);
  LedgerEntry& in = entries_[std::move(key)];
  in = e;
  note_earlier(in);
}

void FindingLedger::remember(const std::string& key, const LedgerEntry& e) {
  note_published(key, e.severity, e.at);
  auto [it, fresh] = entries_.emplace(key, e);
  if (fresh || e.severity > it->second.severity || (e.severity == it->second.severity && e.until > it->second.until))
    it->second = e;
  note_earlier(it->second);
}

void FindingLedger::mark_all_earlier() {
  for (auto& [key, e] : entries_) note_earlier(e);
}

std::vector<std::string> FindingLedger::prune(TimeMs t) {
  std::vector<std::string> gone;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.until < t) {
      gone.push_back(it->first);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  return gone;
}

}  // namespace portalwatch
