// The one path an event takes, wherever it comes from: a Kafka partition (`portalwatchd run`,
// the demo, benchmarks), a file (`portalwatchd replay`), a test.
//
//   message ─ decode ─ Engine (event time, enrichment, detectors)
//           ─ repeat filter (FindingLedger) ─ FindingOutput (alerts topic, log, control stream,
//             state store outbox; stdout in replay)
//           ─ PolicyEngine ─ DecisionSink (state store, decisions topic, log, hooks; stdout in replay)
//
// Policies run on the same event time as the detectors: after every event, at the engine's
// watermark, so a lockdown's expiry ends it at the same point of a stream wherever the stream is
// read from. Wall time enters only through advance_to(), which the Kafka source calls while its
// input is idle (every partition read to its end), so that a lockdown that took the portal down,
// and with it the events, still ends.
//
// No I/O and no threads of its own: what it produces goes to the outputs it is given.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/finding_ledger.h"
#include "detectors/engine.h"
#include "detectors/policy.h"

namespace portalwatch {

/// Where published findings go.
class FindingOutput {
 public:
  virtual ~FindingOutput() = default;
  /// f passed the repeat filter and is published: `json` is its contract form, `ledger_key` its
  /// entry in the ledger (recorded already). Policies see it right after.
  virtual void publish(const Finding& f, const std::string& json, const std::string& ledger_key) = 0;
};

/// What a source knows of an event it hands over (Kafka: from the partition's offset).
struct EventOrigin {
  /// Read again to rebuild the detectors' windows after a restart or a takeover: its findings
  /// were published when it was first processed and are not published again.
  bool findings_published = false;
  /// The account profiles include it already (the state store recorded it before a crash): a
  /// sign-in is judged against its profile as it was then and not recorded twice.
  bool profiles_include = false;
  /// Read again by this process to rebuild the detectors' windows after it started detection
  /// again (partitions assigned late): a finding exactly like one published already (instance,
  /// entity, severity, time) is not published again; any other is, even one the repeat filter
  /// would take for a repeat of an earlier run's (seeing more, the detectors may report the same
  /// attack sooner, and that is what a replay reports).
  bool read_again = false;
};

struct PipelineStats {
  std::uint64_t published = 0;           ///< findings published
  std::uint64_t suppressed_repeat = 0;   ///< findings the ledger knew (same episode published before)
  std::uint64_t suppressed_replayed = 0;  ///< findings of events read again (EventOrigin::findings_published)
};

class Pipeline final : private FindingSink {
 public:
  /// All must outlive the pipeline.
  Pipeline(Engine& engine, PolicyEngine& policies, FindingLedger& ledger, FindingOutput& findings,
           DecisionSink& decisions);

  /// Decodes (with the engine's own decoder) and processes one message. Never throws for bad
  /// input: a rejected message is counted by the engine and reported in the result.
  Engine::Result process(std::string_view message, bool padded, EventOrigin origin = {});
  /// Processes an event a source decoded itself (Engine::decode with a decoder of its own).
  void process(Event& ev, EventOrigin origin = {});
  /// Counts a message rejected before decoding (a reader skipped it as oversize).
  Engine::Result reject(RejectReason reason, std::string_view detail) { return engine_.reject(reason, detail); }

  /// Time passes without events (the wall clock while the input is idle): lockdowns whose end
  /// has come end. Never moves the detectors' time.
  void advance_to(TimeMs now) { policies_.tick(now, decisions_); }

  /// Detection starts again from nothing (Engine::restart with `fresh`, the detectors built again
  /// from the configuration) and what was published so far counts as an earlier run's (the
  /// ledger): the source then reads its inputs again from an earlier point, as a new process
  /// would after a restart, and a finding published before is not published twice. Policies and
  /// their lockdowns carry on.
  void restart(std::vector<DetectorInstance> fresh) {
    engine_.restart(std::move(fresh));
    ledger_.mark_all_earlier();
  }

  Engine& engine() { return engine_; }
  const Engine& engine() const { return engine_; }
  PolicyEngine& policies() { return policies_; }
  const PolicyEngine& policies() const { return policies_; }
  FindingLedger& ledger() { return ledger_; }
  const PipelineStats& stats() const { return stats_; }

 private:
  void emit(Finding&& f) override { pending_.push_back(std::move(f)); }  // from the engine
  void after_event(EventOrigin origin);

  Engine& engine_;
  PolicyEngine& policies_;
  FindingLedger& ledger_;
  FindingOutput& findings_;
  DecisionSink& decisions_;
  std::vector<Finding> pending_;  // the current event's findings
  PipelineStats stats_;
};

}  // namespace portalwatch
