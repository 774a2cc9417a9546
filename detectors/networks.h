// Kinds of networks by their autonomous system's organisation name, for detectors that must tell
// a home ISP from a commercial VPN or a hosting provider without an ASN-type database.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "detectors/text_memo.h"

namespace portalwatch {

/// Lower-case substrings of AS organisation names of hosting and cloud providers: anyone can rent
/// a server there, and employees do not sign in to a payroll portal from a data centre.
inline std::vector<std::string> default_hosting_networks() {
  return {"digitalocean",     "amazon",   "google llc", "microsoft", "linode",  "akamai",
          "constant company", "vultr",    "choopa",     "ovh",       "hetzner", "leaseweb",
          "contabo",          "datacamp", "cdn77",      "quadranet"};
}

/// ... of commercial VPN providers: privacy-minded employees use them every day, so they hide
/// where someone is without saying much about who.
inline std::vector<std::string> default_vpn_providers() {
  return {"m247",       "nordvpn",  "proton", "mullvad", "private internet access",
          "expressvpn", "surfshark"};
}

/// Both: networks whose position says nothing about the person.
inline std::vector<std::string> default_anonymizing_networks() {
  auto all = default_hosting_networks();
  for (auto& v : default_vpn_providers()) all.push_back(std::move(v));
  return all;
}

/// Whether an AS organisation name contains any of the lower-case patterns (case-insensitive).
bool org_names_any(std::string_view as_org, const std::vector<std::string>& lower_patterns);

/// Lower-cases each pattern in place (configuration reading).
void lower_patterns(std::vector<std::string>& patterns);

/// org_names_any against several pattern lists at once, remembered: a portal sees a few dozen AS
/// organisations over and over, and lower-casing a name and searching it for some twenty
/// patterns costs a few thousand instructions each time.
class OrgClassifier {
 public:
  explicit OrgClassifier(std::vector<std::vector<std::string>> lower_pattern_lists = {});
  /// Bit i set: org_names_any(as_org, list i).
  unsigned kinds(std::string_view as_org);

 private:
  static constexpr std::size_t kKeyBytes = 128;  // org_names_any reads no further
  std::vector<std::vector<std::string>> lists_;
  TextMemo<unsigned, 128> known_;  // kinds of the names seen (their first kKeyBytes)
};

}  // namespace portalwatch
