#include "detectors/networks.h"

namespace portalwatch {

bool org_names_any(std::string_view as_org, const std::vector<std::string>& lower_patterns) {
  if (as_org.empty() || lower_patterns.empty()) return false;
  std::string lower(as_org.substr(0, 128));
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const auto& m : lower_patterns)
    if (!m.empty() && lower.find(m) != std::string::npos) return true;
  return false;
}

void lower_patterns(std::vector<std::string>& patterns) {
  for (auto& p : patterns)
    for (auto& ch : p) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
}

}  // namespace portalwatch
