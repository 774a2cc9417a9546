// What a group member needs when it takes over partitions another member was reading (a member
// killed, or the group rebalanced): each member has its own state store, so the new owner knows
// neither the partition's recent past (detector windows) nor which findings the old owner
// published. The old owner leaves both where the new one can read them: the offset where the
// partition's warm-up begins goes with every offset commit (commit metadata), and its findings are
// on the alerts topic.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/finding_ledger.h"

struct rd_kafka_s;
struct rd_kafka_queue_s;

namespace portalwatch {

/// Commit metadata for a partition: "portalwatch warmup=OFFSET".
std::string warmup_metadata(std::int64_t warmup_offset);
/// The warm-up offset in commit metadata, or nullopt (none, or written by something else).
std::optional<std::int64_t> parse_warmup_metadata(std::string_view metadata);

/// Offset commits that carry each partition's warm-up offset as metadata (librdkafka's C API: the
/// C++ one of this version does not carry metadata). Asynchronous commits report on a queue of
/// their own, served by serve(); a synchronous commit first waits for them, since two commits in
/// flight could land out of order and move the group's offset back.
class GroupCommitter {
 public:
  struct Result {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    int err = 0;  ///< this partition's rd_kafka_resp_err_t
  };
  /// Called with a commit's outcome: the request's error and each partition's.
  using Done = std::function<void(int err, const std::vector<Result>& results)>;
  using Offsets = std::map<std::pair<std::string, std::int32_t>, std::int64_t>;

  GroupCommitter(rd_kafka_s* consumer, Done done);
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  /// Commits `next` ((topic, partition) -> next offset) with `warmups` as metadata. Asynchronous:
  /// returns at once, done() is called from serve(). Synchronous: waits for the asynchronous
  /// commits in flight, then commits and waits for the outcome (done() called before returning),
  /// all within wait_ms; an outcome later than that is served like an asynchronous one.
  void commit(const Offsets& next, const Offsets& warmups, bool async, int wait_ms = 10000);
  /// Calls done() for the asynchronous commits that have come back, waiting up to timeout_ms
  /// for the first (0: only those already back).
  void serve(int timeout_ms = 0);
  /// Serves until no asynchronous commit is in flight, or wait_ms passed.
  void drain(int wait_ms);
  std::size_t in_flight() const { return in_flight_; }

 private:
  static void on_commit(rd_kafka_s*, int err, void* offsets, void* opaque);
  void report(int err, const void* offsets);
  rd_kafka_s* consumer_;
  rd_kafka_queue_s* queue_;
  Done done_;
  std::size_t in_flight_ = 0;
};

struct GroupPosition {
  std::int64_t offset = -1;  ///< the group's committed offset (-1: none)
  std::int64_t warmup = -1;  ///< the warm-up offset its committer recorded (-1: none)
};
/// The group's committed offsets and warm-up metadata; false on error.
bool committed_positions(rd_kafka_s* consumer, const std::vector<std::pair<std::string, std::int32_t>>& partitions,
                         std::vector<GroupPosition>& out, int timeout_ms);

/// A finding read back from the alerts topic, as the ledger keeps it.
struct PublishedFinding {
  std::string ledger_key;
  LedgerEntry entry;
};
/// Parses a finding as the daemon publishes it (the contract's JSON); nullopt if it is not one.
std::optional<PublishedFinding> parse_published_finding(std::string_view json);

/// Reads the last `per_partition` messages of each partition of `topic` (a consumer of its own,
/// no group) and returns the findings among them. `properties`: the daemon's common librdkafka
/// properties (bootstrap servers, security).
std::vector<PublishedFinding> read_published_findings(const std::map<std::string, std::string>& properties,
                                                      const std::string& topic, std::int64_t per_partition,
                                                      std::chrono::milliseconds timeout, std::string& error);

}  // namespace portalwatch
