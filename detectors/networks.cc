#include "detectors/networks.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
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
    : lists_(std::move(lower_pattern_lists)), slots_(2 * kSets) {}

unsigned OrgClassifier::kinds(std::string_view as_org) {
  if (as_org.empty()) return 0;
  as_org = as_org.substr(0, kKeyBytes);
  // The set from the name's length and its last eight bytes; the slot compared whole.
  std::uint64_t tail = 0;
  std::memcpy(&tail, as_org.data() + (as_org.size() >= 8 ? as_org.size() - 8 : 0),
              std::min<std::size_t>(8, as_org.size()));
  const std::uint64_t pick = (tail ^ as_org.size()) * 0x9E3779B97F4A7C15ull;
  Slot* set = &slots_[((pick >> 40) % kSets) * 2];
  if (set[0].used && set[0].org == as_org) return set[0].kinds;
  if (set[1].used && set[1].org == as_org) {
    std::swap(set[0], set[1]);
    return set[0].kinds;
  }
  unsigned kinds = 0;
  for (std::size_t i = 0; i < lists_.size(); ++i)
    if (org_names_any(as_org, lists_[i])) kinds |= 1u << i;
  std::swap(set[0], set[1]);
  set[0].org.assign(as_org);
  set[0].kinds = kinds;
  set[0].used = true;
  return kinds;
}

void lower_patterns(std::vector<std::string>& patterns) {
  for (auto& p : patterns)
    for (auto& ch : p) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
}

}  // namespace portalwatch
