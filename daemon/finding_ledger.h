// Which findings the daemon published recently, so that the same finding is not fired twice.
//
// Detectors keep their episodes (what they already reported) in memory. After a restart, or when
// a crash makes Kafka deliver again the events processed since the last commit, a detector
// rebuilds its windows and may report an attack it had already reported. The ledger remembers,
// per detector instance and entity, the highest severity published and until when that finding's
// window runs. A finding that repeats one published *before this process started* (restored from
// the state store, or read back from the alerts topic after another member's) is suppressed: same
// instance and entity, severity no higher, inside that finding's window, and no later than the
// newest finding the earlier run published (where it stopped, as far as it is known: what comes
// after that is new). Escalations and new episodes pass. Findings of this process's own run are
// never suppressed: within one run the detectors' own episodes decide what is new, exactly as in
// a replay (a second finding of the same severity can carry news: successes in a stuffing wave).
// The daemon keeps the ledger in its state store, written before the finding is produced.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "detectors/finding.h"

namespace portalwatch {

struct LedgerEntry {
  Severity severity = Severity::kInfo;
  TimeMs at = 0;     ///< event time of the finding
  TimeMs until = 0;  ///< end of its window: a repeat after this is a new episode
  std::uint64_t seq = 0;  ///< the finding's running number in the process that published it (0: elsewhere)
  /// Published before this process started (restored or read back); not encoded.
  bool earlier = false;

  /// The entry publishing f makes: its severity and time, its window's length after it.
  static LedgerEntry of(const Finding& f);
  std::string encode() const;  ///< fixed 26 bytes: version, severity, at, until, seq
  static std::optional<LedgerEntry> decode(std::string_view bytes);
};

class FindingLedger {
 public:
  /// At most max_entries are kept; past that the entries whose window ends first go.
  explicit FindingLedger(std::size_t max_entries = 200'000) : max_entries_(max_entries) {}

  /// "instance name \x1f entity type \x1f entity value".
  static std::string key_of(const Finding& f);

  /// Whether f repeats a finding published before this process started (see above).
  bool repeats(const Finding& f) const;
  /// Records f as published; returns its key.
  std::string record(const Finding& f);
  /// Puts back an entry read from the state store (published by an earlier run).
  void restore(std::string key, const LedgerEntry& e);
  /// Adds a finding published elsewhere (read back from the alerts topic), keeping whichever of
  /// it and a known entry has the higher severity, then the later window.
  void remember(const std::string& key, const LedgerEntry& e);

  /// Everything recorded so far counts as published by an earlier run from now on: for a source
  /// that starts detection again from an earlier point within the same process (see
  /// Pipeline::restart), exactly as a restart would.
  void mark_all_earlier();

  /// Whether exactly this finding (instance, entity, severity, time) was published: recorded by
  /// this process, restored or read back. For events a source reads again to rebuild the
  /// detectors' windows (EventOrigin::read_again), where a finding that differs from what was
  /// published, even by its time, is news.
  bool published_exactly(const Finding& f) const;
  /// Forgets what published_exactly() knows of findings older than t (event time).
  void forget_published_before(TimeMs t);

  /// Forgets entries whose window ended before t (event time); returns their keys.
  std::vector<std::string> prune(TimeMs t);
  std::size_t size() const { return entries_.size(); }

 private:
  void note_earlier(LedgerEntry& e);
  void note_published(const std::string& key, Severity severity, TimeMs at);
  std::size_t max_entries_;
  std::unordered_map<std::string, LedgerEntry> entries_;
  // Every finding published, by time: key \x1f severity (published_exactly).
  std::set<std::pair<TimeMs, std::string>> published_;
  TimeMs earlier_until_ = 0;  // the newest finding time published before this process started
};

}  // namespace portalwatch
