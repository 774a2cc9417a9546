// What a group member needs when it takes over partitions another member was reading (a member
// killed, or the group rebalanced): each member has its own state store, so the new owner knows
// neither the partition's recent past (detector windows) nor which findings the old owner
// published. The old owner leaves both where the new one can read them: the offset where the
// partition's warm-up begins goes with every offset commit (commit metadata), and its findings are
// on the alerts topic.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/finding_ledger.h"

struct rd_kafka_s;

namespace portalwatch {

/// Commit metadata for a partition: "portalwatch warmup=OFFSET".
std::string warmup_metadata(std::int64_t warmup_offset);
/// The warm-up offset in commit metadata, or nullopt (none, or written by something else).
std::optional<std::int64_t> parse_warmup_metadata(std::string_view metadata);

/// Commits offsets ((topic, partition) -> next offset) with their warm-up offsets as metadata
/// (librdkafka's C API: the C++ one of this version does not carry metadata). Returns the error
/// (a synchronous commit's first partition error included); asynchronous commits report their
/// outcome to the consumer's offset_commit_cb.
int commit_offsets(rd_kafka_s* consumer, const std::map<std::pair<std::string, std::int32_t>, std::int64_t>& offsets,
                   const std::map<std::pair<std::string, std::int32_t>, std::int64_t>& warmups, bool async);

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
