// The detection engine: bytes in, findings out. Decodes, keeps event time honest (watermark,
// lateness, clamping of forged future timestamps) and runs the configured detectors. No I/O.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "detectors/decoder.h"
#include "detectors/detector.h"
#include "detectors/enrich.h"
#include "detectors/profile.h"
#include "detectors/sources.h"

namespace portalwatch {

struct TimeOptions {
  /// An event this much older than the newest event time seen is still placed at its own time;
  /// older ones are processed at the watermark (and counted), never dropped.
  TimeMs allowed_lateness_ms = 60 * kSecondMs;
  /// An event further than this ahead of the reference time is processed at the reference time
  /// (and counted), so a forged timestamp cannot push time forward and expire windows early.
  TimeMs max_future_ms = 5 * kMinuteMs;
  /// What "now" is for the future check: the injected wall clock (live daemon), or the stream
  /// itself (replay of old files): the median of the last few event timestamps, which one forged
  /// event cannot move.
  enum class Reference { kWallClock, kStream } reference = Reference::kWallClock;
};

struct ProfileOptions {
  /// Accounts whose profiles are kept in memory when no store is given (replay).
  std::size_t max_accounts = 200'000;
  /// An attribute (device, network...) not seen for this long is forgotten.
  TimeMs ttl_ms = 180 * kDayMs;
};

struct EngineOptions {
  FieldMap fields;
  ProfileOptions profiles;
  std::size_t max_message_bytes = 65536;
  TimeOptions time;
  SourcesConfig sources;
};

struct EngineStats {
  std::uint64_t received = 0;
  std::uint64_t accepted = 0;
  std::array<std::uint64_t, kRejectReasonCount> rejected{};
  std::uint64_t late_clamped = 0;  ///< older than the allowed lateness; processed at the watermark
  std::uint64_t future_clamped = 0;  ///< too far ahead; processed at the reference time
  std::uint64_t findings = 0;
  std::uint64_t rejected_total() const {
    std::uint64_t n = 0;
    for (auto r : rejected) n += r;
    return n;
  }
};

/// Per detector instance: findings by severity.
struct DetectorCounts {
  std::array<std::uint64_t, kSeverityCount> findings{};
};

class Engine {
 public:
  /// wall_clock is used only with Reference::kWallClock and must outlive the engine. profiles,
  /// when given, must outlive the engine; without it profiles are kept in memory (when a
  /// detector uses them). enricher, when given, must outlive the engine: it fills what events lack
  /// (GeoIP) before anything else looks at them, and is not called when no detector reads what it
  /// fills.
  Engine(EngineOptions options, std::vector<DetectorInstance> detectors, const Clock* wall_clock,
         ProfileBook* profiles = nullptr, Enricher* enricher = nullptr);

  struct Result {
    bool accepted = true;
    RejectReason reason = RejectReason::kNotJson;
    std::string_view detail;
  };
  /// Decodes and processes one message. See EventDecoder::decode for padded. Never throws for bad
  /// input; a rejected message is counted and reported in the result.
  /// record_profiles=false runs the detectors but leaves profiles as they are (and judges sign-ins
  /// against them as they were at the event's time): for an event a
  /// persistent profile store already includes (replayed after a crash).
  Result process(std::string_view message, bool padded, FindingSink& out, bool record_profiles = true);

  /// Counts a message rejected before it reached the decoder (e.g. skipped by a reader as
  /// oversize).
  Result reject(RejectReason reason, std::string_view detail) {
    ++stats_.received;
    ++stats_.rejected[static_cast<size_t>(reason)];
    return {false, reason, detail};
  }

  /// Processes an already decoded event (ev.time is set here; the enricher fills what it lacks).
  void process_event(Event& ev, FindingSink& out, bool record_profiles = true);

  /// Decodes a message with `decoder` (one of make_decoder()'s) without processing it: for a
  /// source that holds several decoded events at once and chooses which goes first (the Kafka
  /// source's event-time merge keeps one per partition, its text copied by keep_strings()). A rejected message is counted here; an
  /// accepted one when it is processed (process_event).
  Result decode(EventDecoder& decoder, std::string_view message, bool padded, Event& ev) {
    const DecodeResult r = decoder.decode(message, padded, ev);
    if (r.ok) return {};
    ++stats_.received;
    ++stats_.rejected[static_cast<size_t>(r.reason)];
    return {false, r.reason, r.detail};
  }
  /// A decoder that reads messages as the engine's own does (field paths, size limit, the fields
  /// the detectors use) and counts into decoder_stats().
  std::unique_ptr<EventDecoder> make_decoder();
  /// Changes whenever a reload changes how messages are decoded: a decoder made by make_decoder()
  /// is then brought up to date with configure_decoder() (between two messages).
  std::uint64_t decoder_generation() const { return decoder_generation_; }
  void configure_decoder(EventDecoder& decoder) const;

  /// What a reload did, by detector instance name.
  struct ReloadReport {
    std::vector<std::string> kept;       ///< new settings, counted state carried over
    std::vector<std::string> restarted;  ///< replaced (another type, or a window/prefix changed): counting starts again
    std::vector<std::string> added;
    std::vector<std::string> removed;  ///< gone from the configuration or disabled
    /// false: the sources section changed its prefixes or learning period, which only a restart
    /// applies (the previous sources settings stay).
    bool sources_applied = true;
  };
  /// A reload, between two events: the decoder's field names and size limit, the time options
  /// (except the reference, fixed at start), the sources' trusted networks and thresholds, and the
  /// detector instances. Instances are matched by name; one whose type and state layout are
  /// unchanged takes its new settings and keeps its windows and tables (Detector::adopt_settings),
  /// the others are replaced. Finding counts by instance name carry over. Profile options are not
  /// changed.
  ReloadReport reconfigure(const EngineOptions& options, std::vector<DetectorInstance> detectors);

  /// Starts detection again from nothing, as a new process would: `fresh` (the same instances as
  /// detectors(), built again from the configuration) replaces the detectors with their windows,
  /// and the stream's time and the learned shared sources start again. Counters, finding counts,
  /// finding ids and profiles are kept. For a source that reads its inputs again from an earlier
  /// point (a Kafka partition assigned after the others had moved on: its events would be late).
  /// Throws std::invalid_argument when `fresh` does not name the same instances in the same order.
  void restart(std::vector<DetectorInstance> fresh);

  const EngineStats& stats() const { return stats_; }
  const DecoderStats& decoder_stats() const { return decoder_counts_; }
  const std::vector<DetectorInstance>& detectors() const { return detectors_; }
  const std::vector<DetectorCounts>& detector_counts() const { return counts_; }
  /// Keyed tables the engine itself holds (learned shared sources).
  std::vector<TableStats> tables() const;
  /// Newest event time seen minus the allowed lateness; 0 before the first event.
  TimeMs watermark() const {
    return max_time_ == kNoTime ? 0 : max_time_ - options_.time.allowed_lateness_ms;
  }
  /// Where a source that merges several inputs by event time places an event with this timestamp:
  /// the timestamp, but with the wall-clock reference no further ahead of the wall clock than
  /// max_future (as process_event clamps it), so that a forged timestamp holds its input back
  /// only until the others have reached the present. (Not capped by the stream's own time: in a
  /// backlog a quiet input's next event is legitimately far ahead of the others.)
  TimeMs ordering_time(TimeMs timestamp) const {
    if (options_.time.reference != TimeOptions::Reference::kWallClock || !wall_clock_) return timestamp;
    return std::min(timestamp, wall_clock_->now() + options_.time.max_future_ms);
  }
  /// The id the next finding gets; the daemon restores it after a restart.
  std::uint64_t next_finding_id() const { return next_finding_id_; }
  void set_next_finding_id(std::uint64_t id) { next_finding_id_ = id; }

 private:
  class CountingSink;
  static constexpr TimeMs kNoTime = INT64_MIN;
  static constexpr int kRecent = 5;
  TimeMs reference_time(TimeMs ts);

  EngineOptions options_;
  std::vector<DetectorInstance> detectors_;
  std::vector<DetectorCounts> counts_;
  const Clock* wall_clock_;
  DecoderStats decoder_counts_;  // every decoder's, the engine's own included: before them
  EventDecoder decoder_;  // after detectors_: built for the fields they use
  SourceClassifier sources_;
  bool classify_sources_ = false;  // some detector reads the source class
  void configure_from_detectors();
  // After detectors_ was replaced (reconfigure, restart): the decoders read the fields the new
  // instances use, and what the engine derives from them is derived again.
  void detectors_changed();

  std::unique_ptr<MemoryProfileBook> own_profiles_;
  ProfileBook* given_profiles_ = nullptr;  // from the constructor (a persistent store), may be null
  ProfileBook* profiles_ = nullptr;        // set when some detector uses profiles
  Enricher* given_enricher_ = nullptr;
  Enricher* enricher_ = nullptr;     // set when some detector reads a field it can fill
  FieldSet enrich_fields_ = 0;       // those fields
  std::string user_buf_;
  Event event_;
  EngineStats stats_;
  TimeMs max_time_ = kNoTime;
  TimeMs last_tick_ = kNoTime;
  std::array<TimeMs, kRecent> recent_{};
  int recent_count_ = 0;
  int recent_pos_ = 0;
  std::uint64_t next_finding_id_ = 1;
  std::uint64_t decoder_generation_ = 0;
};

}  // namespace portalwatch
