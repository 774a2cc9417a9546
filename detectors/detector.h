// The detector interface and the registry that builds detectors from configuration by type.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "detectors/config_node.h"
#include "detectors/event.h"
#include "detectors/finding.h"
#include "detectors/window.h"

namespace portalwatch {

/// Where detectors put findings. The engine assigns ids and counts them.
class FindingSink {
 public:
  virtual ~FindingSink() = default;
  virtual void emit(Finding&& f) = 0;
};

/// A detection: events in, findings out, event time passed in. Implementations do no I/O and
/// never read the wall clock.
class Detector {
 public:
  virtual ~Detector() = default;
  /// Canonical detector name from the contract ("brute_force").
  virtual std::string_view detector() const = 0;
  /// Looks at one accepted event. ev.time is the (clamped) event time to use.
  virtual void on_event(const Event& ev, FindingSink& out) = 0;
  /// Event time has advanced to watermark (called about once per second of event time): expire
  /// state, emit findings that depend on time passing.
  virtual void on_time(TimeMs watermark, FindingSink& out) {
    (void)watermark;
    (void)out;
  }
  /// The event fields this detector reads; the decoder skips fields no detector uses.
  virtual FieldSet fields_used() const = 0;
  /// Whether this detector reads ev.source_threshold_multiplier / ev.source_class (shared egress).
  virtual bool uses_source_class() const { return false; }
  /// Whether this detector reads ev.profiled / ev.novelty / ev.prior_sign_ins (account profiles).
  virtual bool uses_profiles() const { return false; }
  /// Sizes of the keyed tables this detector holds, for metrics and memory accounting.
  virtual std::vector<TableStats> tables() const = 0;
  /// A reload: takes the settings of `next` (built from the new configuration under the same
  /// instance name) and keeps everything this instance has counted, returning true; or returns
  /// false, changing nothing, when they cannot be carried over: another type, or settings that
  /// change the shape of the state (a window's length, a prefix). The engine then puts `next` in
  /// this instance's place and counting starts again for it.
  virtual bool adopt_settings(Detector& next) {
    (void)next;
    return false;
  }
};

/// Settings every configured detector instance has, whatever its type.
struct DetectorCommon {
  std::string type;  ///< registry key, the canonical detector name
  std::string name;  ///< instance name; defaults to the type
  bool enabled = true;
  bool dry_run = false;
};

/// Builds one detector from its YAML mapping. The factory reads its own keys from cfg (the common
/// keys are already read); any key it does not read is reported as unknown.
using DetectorFactory = std::function<std::unique_ptr<Detector>(MapReader& cfg, const DetectorCommon& common)>;

class DetectorRegistry {
 public:
  /// Registers a type. Returns false (and changes nothing) if the type is already registered.
  bool add(std::string type, DetectorFactory factory);
  const DetectorFactory* find(std::string_view type) const;
  std::vector<std::string> types() const;

 private:
  std::map<std::string, DetectorFactory, std::less<>> factories_;
};

/// Registers every detector this build ships. A plain function, called once by whoever builds an
/// engine, so the set is explicit and no static-initialisation order matters.
void register_builtin_detectors(DetectorRegistry& registry);

/// A configured detector instance.
struct DetectorInstance {
  DetectorCommon common;
  std::unique_ptr<Detector> detector;
};

/// Reads the `detectors:` list. Disabled instances are validated but not built. Errors go to the
/// node's diagnostics; instance names must be unique.
std::vector<DetectorInstance> build_detectors(const ConfigNode& list, const DetectorRegistry& registry);

}  // namespace portalwatch
