// enumeration (entity: ip, session or user): one client reading many distinct records that are
// not its own (record scraping, the "public lookup page read one SSN at a time" shape), or walking
// record ids in sequence.
//
// Only views and downloads that name a record count, and only records other than the reader's own
// (portal.record.id different from user.id). Distinct records are estimated per reader with
// HyperLogLog over a sliding window; a run of consecutive record numbers (each one more or one less
// than the last) is a sequential walk, which people never do by hand. Roles that legitimately read
// colleagues' records (hr_admin, payroll_admin) have their own, higher limits, per role, not an
// exemption: a reader's role comes from user.roles on its events (remembered per account, since
// most portals log roles only at sign-in). By ip, the count is per account reading from that
// address (an office NAT's hundred employees each opening the directory are not one scraper),
// readers with such a role are judged on their account and session instead, and shared egress is
// held to its own thresholds.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "detectors/detector.h"
#include "detectors/distinct_counter.h"
#include "detectors/severity_ladder.h"

namespace portalwatch {

struct RoleLimit {
  std::string role;
  SeverityLadder severity;
};

struct EnumerationConfig {
  TimeMs window_ms = 15 * kMinuteMs;
  /// Distinct other people's records read in the window, by severity.
  SeverityLadder severity{0, 40, 150, 500};
  /// Per role, its own ladder; the first role in this list that a reader has applies.
  std::vector<RoleLimit> role_limits{{"hr_admin", {0, 250, 600, 2000}},
                                     {"payroll_admin", {0, 250, 600, 2000}}};
  /// Consecutive record numbers in a row, by severity (the same for every role).
  bool sequential_walks = true;
  SeverityLadder sequential{0, 25, 100, 500};
  /// Which readers: any of "ip", "session", "user".
  bool by_ip = true, by_session = true, by_user = true;
  /// Only these apps (portal.app); empty = all.
  std::vector<std::string> apps;
  std::size_t max_readers = 200'000;  ///< per entity table
  std::size_t max_privileged_accounts = 100'000;
};

EnumerationConfig read_enumeration_config(MapReader& cfg);
std::unique_ptr<Detector> make_enumeration(MapReader& cfg, const DetectorCommon& common);

class EnumerationDetector final : public Detector {
 public:
  EnumerationDetector(EnumerationConfig config, std::string name);
  std::string_view detector() const override { return "enumeration"; }
  void on_event(const Event& ev, FindingSink& out) override;
  void on_time(TimeMs watermark, FindingSink& out) override;
  FieldSet fields_used() const override;
  bool uses_source_class() const override { return config_.by_ip; }
  std::vector<TableStats> tables() const override;
  bool adopt_settings(Detector& next) override;

  /// Per reader: two half-window record sketches (64 four-bit registers each), counters and the
  /// current sequential run.
  struct Reader {
    std::array<DistinctCounter<6>, 2> records;
    std::array<DistinctCounter<4>, 2> readers;  // by ip: the accounts reading (16 registers each)
    std::array<std::uint32_t, 2> views{};
    std::array<std::uint32_t, 2> not_found{};
    std::int64_t half = 0;
    std::int64_t last_number = -1;
    std::uint32_t run = 0;       // consecutive record numbers so far
    std::uint32_t best_run = 0;  // longest run this episode
    std::uint8_t role = 0;       // 0: default limits; i + 1: role_limits[i]
    Episode episode;
    std::string first_record;  // first record of the episode (evidence)
  };

 private:
  std::uint8_t role_of(const Event& ev, std::string_view user);
  void read(KeyedTable<Reader>* strings, KeyedTable<Reader, IpAddress, IpHash>* ips,
            EntityType type, std::string_view key, const Event& ev, std::uint8_t role,
            double multiplier, std::int64_t number, FindingSink& out);
  void record(Reader& r, const Event& ev, std::uint8_t role, std::int64_t number) const;
  void maybe_fire(Reader& r, EntityType type, std::string_view key, const Event& ev,
                  double multiplier, FindingSink& out);

  EnumerationConfig config_;
  std::string name_;
  TimeMs half_ms_;
  KeyedTable<Reader, IpAddress, IpHash> ips_;
  KeyedTable<Reader> sessions_;
  KeyedTable<Reader> users_;
  /// Accounts seen with a role that has its own limits, for events that do not carry roles.
  KeyedTable<std::uint8_t> privileged_;
  std::string user_buf_;
};

}  // namespace portalwatch
