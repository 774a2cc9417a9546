#include "detectors/networks.h"

#include <utility>

namespace portalwatch {

bool org_names_any(std::string_view as_org, const std::vector<std::string>& lower_patterns) {
  if (as_org.empty() || lower_patterns.empty()) return false;
  std::string lower(as_org.substr(0, 128));
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const auto& m : lower_patterns)
    if (!m.empty() && lower.find(m) != std::string::npos) return true;
  return false;
}

OrgClassifier::OrgClassifier(std::vector<std::vector<std::string>> lower_pattern_lists)
    : lists_(std::move(lower_pattern_lists)) {}

unsigned OrgClassifier::kinds(std::string_view as_org) {
  if (as_org.empty()) return 0;
  as_org = as_org.substr(0, kKeyBytes);
  if (const unsigned* known = known_.find(as_org)) return *known;
  unsigned kinds = 0;
  for (std::size_t i = 0; i < lists_.size(); ++i)
    if (org_names_any(as_org, lists_[i])) kinds |= 1u << i;
  known_.remember(as_org, kinds);
  return kinds;
}

void lower_patterns(std::vector<std::string>& patterns) {
  for (auto& p : patterns)
    for (auto& ch : p) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
}

}  // namespace portalwatch
