#include "detectors/decoder.h"

#include <simdjson.h>

#include "detectors/decoder_backend.h"

namespace portalwatch {

static_assert(EventDecoder::kPadding == simdjson::SIMDJSON_PADDING);

std::string_view to_string(RejectReason r) noexcept {
  switch (r) {
    case RejectReason::kNotJson: return "not_json";
    case RejectReason::kNotObject: return "not_object";
    case RejectReason::kMissingField: return "missing_field";
    case RejectReason::kInvalidField: return "invalid_field";
    case RejectReason::kBadTimestamp: return "bad_timestamp";
    case RejectReason::kOversize: return "oversize";
    case RejectReason::kCount: break;
  }
  return "unknown";
}

FieldMap::FieldMap() {
  for (size_t i = 0; i < kFieldCount; ++i) paths_[i] = std::string(field_name(static_cast<Field>(i)));
}

bool FieldMap::set(Field f, std::string_view dotted_path) {
  if (dotted_path.empty() || dotted_path.front() == '.' || dotted_path.back() == '.' ||
      dotted_path.find("..") != std::string_view::npos)
    return false;
  paths_[static_cast<size_t>(f)] = std::string(dotted_path);
  return true;
}

std::optional<Field> FieldMap::field_by_name(std::string_view name) {
  for (size_t i = 0; i < kFieldCount; ++i)
    if (field_name(static_cast<Field>(i)) == name) return static_cast<Field>(i);
  return std::nullopt;
}

struct EventDecoder::Impl {
  std::unique_ptr<DecoderBackend> backend;
  simdjson::dom::parser validator;  // only for the rare messages that are not objects
};

namespace {

bool cpu_runs_haswell_kernel() {
  const std::string name = simdjson::get_active_implementation()->name();
  return name == "haswell" || name == "icelake";
}

}  // namespace

EventDecoder::EventDecoder(const FieldMap& fields, std::size_t max_message_bytes, FieldSet decoded,
                           JsonReader reader, DecoderStats* count_into)
    : impl_(std::make_unique<Impl>()), reader_(reader), counts_(count_into ? count_into : &stats_) {
  reconfigure(fields, max_message_bytes, decoded);
}

void EventDecoder::reconfigure(const FieldMap& fields, std::size_t max_message_bytes, FieldSet decoded) {
  max_message_bytes_ = max_message_bytes;
  decoded |= kAlwaysDecodedFields;
  impl_->backend = cpu_runs_haswell_kernel()
                       ? decoder_haswell::make_backend(fields, max_message_bytes, decoded, counts_, reader_)
                       : decoder_generic::make_backend(fields, max_message_bytes, decoded, counts_, reader_);
}

EventDecoder::~EventDecoder() = default;

DecodeResult EventDecoder::decode(std::string_view msg, bool padded, Event& ev) noexcept {
  if (msg.size() > max_message_bytes_)
    return {false, RejectReason::kOversize, "message larger than input.max_message_bytes"};
  DecodeResult r = impl_->backend->decode(msg, padded, ev);
  // On Demand stops at the first token that is not '{'. Whether the rest is valid JSON (an array,
  // a string) or not JSON at all takes a full parse, which only this rare path pays for.
  if (!r.ok && r.reason == RejectReason::kNotObject && impl_->validator.parse(msg.data(), msg.size(), true).error())
    r = {false, RejectReason::kNotJson, "not valid JSON"};
  return r;
}

}  // namespace portalwatch
