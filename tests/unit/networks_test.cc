// AS organisation names by kind: the remembered classifier answers as org_names_any does.
#include "detectors/networks.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace portalwatch {

TEST_CASE("org classifier: the same answers as org_names_any, remembered or not") {
  const std::vector<std::string> hosting = default_hosting_networks();
  const std::vector<std::string> vpn = default_vpn_providers();
  std::vector<std::string> mobile{"wireless", "mobile"};
  OrgClassifier orgs({hosting, vpn, mobile});
  std::vector<std::string> names = {"", "Comcast Cable Communications", "DIGITALOCEAN-ASN",
                                    "Amazon.com, Inc.", "M247 Europe SRL", "T-Mobile USA, Inc.",
                                    "Verizon Wireless", "Proton AG", "Cellco Partnership DBA Verizon Wireless"};
  // Far more names than the classifier keeps (it evicts), some long, some sharing their ends.
  for (int i = 0; i < 3000; ++i) {
    std::string n = "AS" + std::to_string(i) + (i % 7 == 0 ? " Hetzner Online GmbH" : " Regional Telephone Co");
    if (i % 11 == 0) n = std::string(150, 'x') + (i % 2 ? " mobile" : " nordvpn") + std::to_string(i);
    if (i % 13 == 0) n = std::string(120, 'y') + "Mull" + std::to_string(i) + "vad";  // a pattern cut at 128 bytes
    names.push_back(n);
  }
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < names.size(); i += 1 + static_cast<size_t>(round)) {
      const std::string& n = names[i];
      const unsigned want = (org_names_any(n, hosting) ? 1u : 0u) | (org_names_any(n, vpn) ? 2u : 0u) |
                            (org_names_any(n, mobile) ? 4u : 0u);
      CAPTURE(n);
      CHECK(orgs.kinds(n) == want);
      CHECK(orgs.kinds(n) == want);  // now from memory
    }
  }
  CHECK(orgs.kinds("Amazon.com, Inc.") == 1u);
  CHECK(orgs.kinds("Verizon Wireless") == 4u);
  CHECK(orgs.kinds("M247 Europe SRL") == 2u);
  CHECK(orgs.kinds(std::string(150, 'x') + " nordvpn") == 0u);  // past the 128 bytes read
}

}  // namespace portalwatch
