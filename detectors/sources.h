// Who is behind a source address: shared egress (state office NATs, VPN concentrators) carries
// thousands of employees and their ordinary typos, so rate detectors must hold it to its own
// thresholds. Sources are trusted by configuration (CIDR lists) or learned: a source that signed
// in as many distinct accounts in the last completed learning period is shared. The engine
// classifies each event's source once, before the detectors see it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "detectors/config_node.h"
#include "detectors/distinct_counter.h"
#include "detectors/event.h"
#include "detectors/window.h"

namespace portalwatch {

struct TrustedNetwork {
  std::string name;
  std::vector<IpNetwork> networks;
  /// Rate thresholds for sources in this network are multiplied by this.
  double threshold_multiplier = 20;
};

struct SourcesConfig {
  /// Sources are aggregated to this prefix: an IPv6 client rotating addresses inside its /64 is
  /// one source.
  int ipv4_prefix = 32;
  int ipv6_prefix = 64;
  std::vector<TrustedNetwork> trusted_networks;
  bool learn_shared = true;
  /// A source that signed in successfully as at least this many distinct accounts during the
  /// previous learning period is shared egress for the current one.
  std::int64_t shared_min_accounts = 25;
  TimeMs learning_period_ms = 24 * kHourMs;
  double shared_threshold_multiplier = 10;
  std::size_t max_learned_sources = 100'000;
};

/// Reads the `sources:` section.
SourcesConfig read_sources_config(MapReader& section);

class SourceClassifier {
 public:
  explicit SourceClassifier(SourcesConfig config);

  /// Sets ev.source_key and learns from the event (successful logins). With classify, also sets
  /// ev.source_threshold_multiplier and ev.source_class; that costs a table lookup per event, so
  /// the engine asks for it only when a detector uses it. Classification uses only completed
  /// periods, so a burst of successful logins from a new source cannot trust that source while it
  /// happens.
  void observe(Event& ev, bool classify);
  IpAddress aggregate(const IpAddress& ip) const {
    return ip.masked(ip.v4 ? config_.ipv4_prefix : config_.ipv6_prefix);
  }
  std::vector<TableStats> tables() const;
  const SourcesConfig& config() const { return config_; }
  /// A reload: takes next's trusted networks, thresholds and caps, keeping what was learned, and
  /// returns true; returns false, changing nothing, when next aggregates sources to other prefixes
  /// or learns over another period (the detectors' tables are keyed by those: a restart applies it).
  bool reconfigure(const SourcesConfig& next);

 private:
  struct Learned {
    DistinctCounter<6> accounts;  // distinct accounts signed in during the current period
    std::int64_t period = 0;      // which period `accounts` covers
    std::int64_t marked_for = -1;  // the period this source was last marked shared for
  };
  SourcesConfig config_;
  /// Every source that signed in this period, counting its accounts.
  KeyedTable<Learned, IpAddress, IpHash> learned_;
  /// The few that reached min_accounts: source → the period they are shared egress for.
  KeyedTable<std::int64_t, IpAddress, IpHash> shared_;
  std::string user_buf_;
};

}  // namespace portalwatch
