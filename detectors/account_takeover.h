// account_takeover (entity: user): a sign-in that does not look like the account's owner,
// followed within a window by what thieves come for — a change to where money goes (direct
// deposit, beneficiary, HSA, deferred compensation, retirement) or reads of savings accounts.
//
// A sign-in is suspicious when, judged against the account's profile as it was before it:
//  - both its device and its network are new to an account with history (min_history sign-ins);
//  - or it comes from a hosting provider or a commercial VPN (by AS organisation name);
//  - or from a country new to an account with history;
//  - or it succeeds after a burst of failed passwords on the account.
// Cold start is honest: an account with no history is not suspicious merely for being new, and
// the finding says how much history the account had. The sensitive action must come from the
// suspicious sign-in's session when both carry one. A hosting provider, a new country or a burst
// of failures first are strong signs: a money change is critical, a savings read high. A new
// device on a new network (also just a new phone on the carrier) or a commercial VPN (also just a
// privacy-minded employee) are weak: only a money change counts, and it is high.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "detectors/detector.h"
#include "detectors/networks.h"
#include "detectors/severity_ladder.h"

namespace portalwatch {

struct AccountTakeoverConfig {
  /// How long after a suspicious sign-in a sensitive action still counts.
  TimeMs window_ms = 2 * kHourMs;
  /// Sign-ins an account needs before "new device and network" or "new country" mean anything.
  std::int64_t min_history = 10;
  /// Apps where a `change` can move money.
  std::vector<std::string> money_apps{"direct_deposit", "beneficiary", "hsa", "deferred_comp",
                                      "retirement"};
  /// Apps whose reads (view, download) expose savings.
  std::vector<std::string> savings_apps{"hsa", "deferred_comp", "retirement"};
  /// Hosting and cloud providers (AS organisation name, case-insensitive): a strong sign.
  std::vector<std::string> hosting_networks = default_hosting_networks();
  /// Commercial VPN providers: employees use them too, so only a weak sign, and only when the VPN
  /// is new to an account with history.
  std::vector<std::string> vpn_providers = default_vpn_providers();
  /// A success after at least this many failed passwords on the account within failure_window
  /// (as many as brute_force's medium step: a forgetful employee gives up or resets sooner).
  std::int64_t failures_before_success = 10;
  TimeMs failure_window_ms = 30 * kMinuteMs;
  std::size_t max_accounts = 200'000;
};

AccountTakeoverConfig read_account_takeover_config(MapReader& cfg);
std::unique_ptr<Detector> make_account_takeover(MapReader& cfg, const DetectorCommon& common);

class AccountTakeoverDetector final : public Detector {
 public:
  AccountTakeoverDetector(AccountTakeoverConfig config, std::string name);
  std::string_view detector() const override { return "account_takeover"; }
  void on_event(const Event& ev, FindingSink& out) override;
  void on_time(TimeMs watermark, FindingSink& out) override;
  FieldSet fields_used() const override;
  bool uses_profiles() const override { return true; }
  std::vector<TableStats> tables() const override;
  bool adopt_settings(Detector& next) override;

  enum Why : std::uint8_t {
    kNewDeviceAndNetwork = 1,
    kHostingNetwork = 2,
    kNewCountry = 4,
    kAfterFailures = 8,
    kVpnProvider = 16,
  };
  /// A suspicious sign-in waiting for what follows it.
  struct Suspect {
    TimeMs at = 0;
    IpAddress source;
    std::uint32_t asn = 0;
    std::uint64_t session = 0;  // hash of the session id, 0 when none
    std::uint32_t prior_sign_ins = 0;
    std::uint8_t reasons = 0;
    std::uint8_t failures = 0;
    Episode episode;
  };

 private:
  static constexpr int kBuckets = 6;
  struct Failures {
    SlidingWindowCounter<kBuckets> count;
  };
  bool in(const std::vector<std::string>& apps, std::string_view app) const;

  AccountTakeoverConfig config_;
  OrgClassifier orgs_;  ///< bit 0: hosting network, bit 1: VPN provider
  static constexpr unsigned kHosting = 1, kVpn = 2;
  std::string name_;
  TimeMs failure_span_;
  KeyedTable<Suspect> suspects_;
  KeyedTable<Failures> failures_;
  std::string user_buf_;
};

}  // namespace portalwatch
