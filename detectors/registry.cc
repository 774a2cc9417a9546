#include <set>

#include "detectors/account_takeover.h"
#include "detectors/automation.h"
#include "detectors/brute_force.h"
#include "detectors/credential_stuffing.h"
#include "detectors/detector.h"
#include "detectors/enumeration.h"
#include "detectors/failure_spike.h"
#include "detectors/impossible_travel.h"
#include "detectors/mfa_fatigue.h"
#include "detectors/multi_account_source.h"
#include "detectors/session_hijack.h"
#include "detectors/password_spray.h"

namespace portalwatch {

bool DetectorRegistry::add(std::string type, DetectorFactory factory) {
  return factories_.emplace(std::move(type), std::move(factory)).second;
}

const DetectorFactory* DetectorRegistry::find(std::string_view type) const {
  auto it = factories_.find(type);
  return it == factories_.end() ? nullptr : &it->second;
}

std::vector<std::string> DetectorRegistry::types() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : factories_) out.push_back(k);
  return out;
}

void register_builtin_detectors(DetectorRegistry& registry) {
  struct Builtin {
    const char* type;
    DetectorFactory factory;
  };
  const Builtin builtins[] = {
      {"brute_force", make_brute_force},
      {"password_spray", make_password_spray},
      {"credential_stuffing", make_credential_stuffing},
      {"failure_spike", make_failure_spike},
      {"enumeration", make_enumeration},
      {"automation", make_automation},
      {"multi_account_source", make_multi_account_source},
      {"mfa_fatigue", make_mfa_fatigue},
      {"session_hijack", make_session_hijack},
      {"impossible_travel", make_impossible_travel},
      {"account_takeover", make_account_takeover},
  };
  for (const auto& b : builtins) {
    if (!registry.add(b.type, b.factory)) throw std::logic_error(std::string("detector type registered twice: ") + b.type);
  }
}

std::vector<DetectorInstance> build_detectors(const ConfigNode& list, const DetectorRegistry& registry) {
  std::vector<DetectorInstance> out;
  std::set<std::string> names;
  for (const auto& item : list.elements()) {
    MapReader m(item);
    if (!item.is_map()) continue;
    DetectorCommon common;
    const auto type_node = m.child("type");
    if (!type_node.defined()) {
      item.error("missing key \"type\" (one of the detector types)");
      m.accept_all_keys();
      continue;
    }
    common.type = type_node.as_string().value_or("");
    const DetectorFactory* factory = registry.find(common.type);
    if (!factory) {
      std::string msg = "unknown detector type \"" + common.type + "\"";
      if (auto near = closest_word(common.type, registry.types())) msg += " (did you mean \"" + *near + "\"?)";
      type_node.error(msg);
      m.accept_all_keys();
      continue;
    }
    common.name = m.get_string("name", common.type);
    common.enabled = m.get_bool("enabled", true);
    common.dry_run = m.get_bool("dry_run", false);
    if (!names.insert(common.name).second)
      item.error("detector name \"" + common.name + "\" is used twice; give each instance its own name");
    auto detector = (*factory)(m, common);
    if (common.enabled) out.push_back({std::move(common), std::move(detector)});
  }
  return out;
}

}  // namespace portalwatch
