// JSON → Event decoding for the contract in ../shared/event-schema.md, with field remapping.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detectors/event.h"

namespace portalwatch {

/// Why a message was rejected. Each is a metric label value, so the set is fixed.
enum class RejectReason : std::uint8_t {
  kNotJson,
  kNotObject,
  kMissingField,
  kInvalidField,
  kBadTimestamp,
  kOversize,
  kCount,
};
inline constexpr std::size_t kRejectReasonCount = static_cast<std::size_t>(RejectReason::kCount);
std::string_view to_string(RejectReason r) noexcept;

/// Where each contract field is read from. The default is the contract's own path; a portal
/// whose logs differ maps a field to another path in YAML (`input.fields:`).
class FieldMap {
 public:
  FieldMap();  ///< the contract's paths
  /// Points a field at a dotted path ("usr.login", "client.address"). Returns false for an
  /// empty path or one with empty segments.
  bool set(Field f, std::string_view dotted_path);
  /// The field a contract name refers to ("source.ip" → Field::kSourceIp), if any.
  static std::optional<Field> field_by_name(std::string_view contract_name);
  const std::string& path(Field f) const { return paths_[static_cast<size_t>(f)]; }

 private:
  std::array<std::string, kFieldCount> paths_;
};

struct DecodeResult {
  bool ok = true;
  RejectReason reason = RejectReason::kNotJson;
  /// Short human detail for the log ("missing field source.ip"); no message content.
  std::string_view detail;
};

/// Per-decoder counters of optional fields that were present but unusable (wrong type, bad
/// value); the event is still accepted without them.
struct DecoderStats {
  std::array<std::uint64_t, kFieldCount> ignored_fields{};
  /// Messages the fast path read (the others went to simdjson); for tests and profiling.
  std::uint64_t fast_path_decoded = 0;
  /// Of those, the messages read by the shapes of earlier ones (decoder_impl.inc, "Shapes").
  std::uint64_t shape_decoded = 0;
};

/// How decode() reads JSON. kFastPathFirst: the documents producers write (plain, valid JSON) in
/// one hand-written pass, everything else (escapes, non-ASCII, true/false/null, invalid JSON, a
/// value to reject or ignore) by simdjson. kSimdjsonOnly: every message by simdjson. Both give the
/// same events, rejections and counts; kSimdjsonOnly exists so the tests can show it
/// (tests/unit/decoder_paths_test.cc, tests/fuzz/fuzz_decoder.cc).
enum class JsonReader : std::uint8_t { kFastPathFirst, kSimdjsonOnly };

/// Decodes one JSON object into an Event. Not thread-safe: one per thread. The strings of the
/// returned Event stay valid until the next decode() call.
class EventDecoder {
 public:
  /// Only the fields in `decoded` (plus kAlwaysDecodedFields) are read; the rest of each message is
  /// skipped, which roughly halves decoding time when detectors need few fields.
  /// count_into: where the decoder counts (DecoderStats); by default its own. Several decoders of
  /// one engine count into the engine's (Engine::make_decoder).
  explicit EventDecoder(const FieldMap& fields = FieldMap(), std::size_t max_message_bytes = 65536,
                        FieldSet decoded = kAllFields, JsonReader reader = JsonReader::kFastPathFirst,
                        DecoderStats* count_into = nullptr);
  ~EventDecoder();
  EventDecoder(const EventDecoder&) = delete;
  EventDecoder& operator=(const EventDecoder&) = delete;

  /// Decodes msg into ev. When padded is true, the caller promises that at least
  /// kPadding readable bytes follow msg (their content does not matter); otherwise the message is
  /// copied into an internal padded buffer first.
  DecodeResult decode(std::string_view msg, bool padded, Event& ev) noexcept;

  /// Decodes with new settings from the next message on (a reload); the counts go on.
  void reconfigure(const FieldMap& fields, std::size_t max_message_bytes, FieldSet decoded);

  const DecoderStats& stats() const { return *counts_; }
  std::size_t max_message_bytes() const { return max_message_bytes_; }

  static constexpr std::size_t kPadding = 64;  // == SIMDJSON_PADDING

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::size_t max_message_bytes_;
  JsonReader reader_;
  DecoderStats stats_;
  DecoderStats* counts_;  // &stats_, or the one given
};

}  // namespace portalwatch
