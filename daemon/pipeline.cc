#include "daemon/pipeline.h"

namespace portalwatch {

Pipeline::Pipeline(Engine& engine, PolicyEngine& policies, FindingLedger& ledger, FindingOutput& findings,
                   DecisionSink& decisions)
    : engine_(engine), policies_(policies), ledger_(ledger), findings_(findings), decisions_(decisions) {}

Engine::Result Pipeline::process(std::string_view message, bool padded, EventOrigin origin) {
  const Engine::Result r = engine_.process(message, padded, *this, !origin.profiles_include);
  if (r.accepted) after_event(origin);
  return r;
}

void Pipeline::process(Event& ev, EventOrigin origin) {
  engine_.process_event(ev, *this, !origin.profiles_include);
  after_event(origin);
}

void Pipeline::after_event(EventOrigin origin) {
  for (Finding& f : pending_) {
    if (origin.findings_published) {
      ++stats_.suppressed_replayed;
    } else if (origin.read_again ? ledger_.published_exactly(f) : ledger_.repeats(f)) {
      ++stats_.suppressed_repeat;
    } else {
      const std::string key = ledger_.record(f);
      ++stats_.published;
      findings_.publish(f, f.to_json(), key);
      policies_.on_finding(f, decisions_);
    }
  }
  pending_.clear();
  // In event time, as the detectors: wherever the stream is read from, a lockdown ends at the same
  // point of it.
  policies_.tick(engine_.watermark(), decisions_);
}

}  // namespace portalwatch
