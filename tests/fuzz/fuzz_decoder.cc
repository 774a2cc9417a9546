// Fuzz harness: the event decoder (detectors/decoder.h), one input = one Kafka message.
//
// Every input goes through the decoder variants the daemon can build, and they must agree:
//   - the hand-written fast path and simdjson alone (JsonReader::kSimdjsonOnly), which must give
//     the same event field by field, the same rejection and detail and the same ignored-field
//     counts, for every field set and remapping below;
//   - the contract's paths with every field, unpadded and padded (the padding filled with '"', to
//     check that its content really does not matter), which must decode identically;
//   - both compiled kernels (simdjson's portable one and, on a CPU with AVX2, the haswell one),
//     simdjson alone, which must decode identically, and so must their fast paths (which learn
//     the shapes of the inputs before, as in the daemon);
//   - field masks (a hash of the input picks one, as a configuration's detectors would) with
//     remapped paths (`input.fields:`), including a path that is also the parent of other paths
//     and one deeper than the decoder walks;
//   - a 256-byte max_message_bytes (oversize before parsing).
// An accepted event must carry an address that prints and parses back to itself, and a
// timestamp that does the same.
#include <simdjson.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "detectors/decoder.h"
#include "detectors/decoder_backend.h"
#include "tests/common/decode_text.h"
#include "tests/fuzz/fuzz_check.h"

namespace portalwatch {
namespace {

using testing::decode_as_text;
using testing::describe_decode;

// Two decodes that must agree; both printed when they do not (a crash for libFuzzer).
void check_same(const std::string& a, const std::string& b, const char* what) {
  if (a == b) return;
  std::fprintf(stderr, "%s differ:\n  %s\n  %s\n", what, a.c_str(), b.c_str());
  std::abort();
}

void check_accepted(const DecodeResult& r, const Event& ev) {
  FUZZ_CHECK(ev.role_count <= Event::kMaxRoles);
  if (!r.ok) {
    FUZZ_CHECK(r.reason < RejectReason::kCount);
    FUZZ_CHECK(!r.detail.empty());
    return;
  }
  FUZZ_CHECK(ev.time == ev.timestamp);
  const auto again = IpAddress::parse(ev.source_ip.to_string());
  FUZZ_CHECK(again && *again == ev.source_ip);
  const auto ts = parse_rfc3339(format_rfc3339(ev.timestamp));
  FUZZ_CHECK(ts && *ts == ev.timestamp);
  std::string buf;
  const std::string_view user = normalize_user(ev.user_name, buf);
  FUZZ_CHECK(user.size() == ev.user_name.size());
}

FieldMap remapped_fields() {
  FieldMap m;
  m.set(Field::kUserName, "usr.login");
  m.set(Field::kSourceIp, "client.address");
  m.set(Field::kTimestamp, "ts");
  // A field at a path that is also the parent of other fields' paths.
  m.set(Field::kUserAgent, "source");
  m.set(Field::kDeviceId, "source.geo.location");
  // Deeper than the decoder walks (it stops at 8 levels).
  m.set(Field::kAsOrgName, "a.b.c.d.e.f.g.h.i.j");
  // Two fields at one path: the later in Field order wins.
  m.set(Field::kSessionId, "user.id");
  return m;
}

struct Decoders {
  EventDecoder all{FieldMap(), 65536, kAllFields};
  EventDecoder all_simdjson{FieldMap(), 65536, kAllFields, JsonReader::kSimdjsonOnly};
  EventDecoder small{FieldMap(), 256, kAlwaysDecodedFields};
  // One per mask family, so a decoder (and its parser's buffers) is reused from input to input
  // as in the daemon; each with its twin that reads by simdjson alone.
  std::vector<std::unique_ptr<EventDecoder>> masked, masked_simdjson;
  // The kernels compared without the fast path, and with it (each compiled for its CPU: the
  // shapes' literals are compared 16 bytes at a time in one, 32 in the other).
  DecoderStats generic_stats, haswell_stats, generic_fast_stats, haswell_fast_stats;
  std::unique_ptr<DecoderBackend> generic = decoder_generic::make_backend(
      FieldMap(), 65536, kAllFields, &generic_stats, JsonReader::kSimdjsonOnly);
  std::unique_ptr<DecoderBackend> generic_fast =
      decoder_generic::make_backend(FieldMap(), 65536, kAllFields, &generic_fast_stats);
  std::unique_ptr<DecoderBackend> haswell, haswell_fast;

  Decoders() {
    const std::string kernel = simdjson::get_active_implementation()->name();
    if (kernel == "haswell" || kernel == "icelake") {
      haswell = decoder_haswell::make_backend(FieldMap(), 65536, kAllFields, &haswell_stats,
                                              JsonReader::kSimdjsonOnly);
      haswell_fast = decoder_haswell::make_backend(FieldMap(), 65536, kAllFields, &haswell_fast_stats);
    }
    const FieldMap remapped = remapped_fields();
    for (unsigned i = 0; i < 8; ++i) {
      // Masks as detectors ask for them: the required fields plus a varying few.
      const FieldSet mask =
          (kAlwaysDecodedFields | (0x5A5A5A5Au >> i) | (1u << (i * 3))) & kAllFields;
      const FieldMap& fields = i % 2 ? remapped : FieldMap();
      masked.push_back(std::make_unique<EventDecoder>(fields, 65536, mask));
      masked_simdjson.push_back(
          std::make_unique<EventDecoder>(fields, 65536, mask, JsonReader::kSimdjsonOnly));
    }
  }
};

Decoders& decoders() {
  static Decoders d;
  return d;
}

}  // namespace
}  // namespace portalwatch

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace portalwatch;
  Decoders& d = decoders();
  const std::string_view msg(reinterpret_cast<const char*>(data), size);
  Event ev;

  const DecodeResult plain = d.all.decode(msg, false, ev);
  check_accepted(plain, ev);

  // The fast path against simdjson alone, unpadded; and the padded path, which reads the
  // caller's buffer in place (exactly size + kPadding bytes, the padding filled with '"').
  const std::string fast_text = decode_as_text(d.all, msg, false);
  check_same(fast_text, decode_as_text(d.all_simdjson, msg, false), "fast path and simdjson alone");
  check_same(fast_text, decode_as_text(d.all, msg, true, '"'), "unpadded and padded");
  check_same(fast_text, decode_as_text(d.all_simdjson, msg, true, '"'),
             "unpadded and padded, simdjson alone");

  if (size <= d.all.max_message_bytes()) {
    // The kernels, straight (EventDecoder turns some not_object results into not_json after).
    const DecodeResult g = d.generic->decode(msg, false, ev);
    const std::string generic_text = describe_decode(g, ev);
    if (d.haswell) {
      const DecodeResult h = d.haswell->decode(msg, false, ev);
      check_same(generic_text, describe_decode(h, ev), "the generic and haswell kernels");
    }
    const DecodeResult gf = d.generic_fast->decode(msg, false, ev);
    const std::string generic_fast_text = describe_decode(gf, ev);
    if (d.haswell_fast) {
      const DecodeResult hf = d.haswell_fast->decode(msg, false, ev);
      check_same(generic_fast_text, describe_decode(hf, ev), "the generic and haswell fast paths");
    }
  }

  std::uint32_t hash = 2166136261u;
  for (std::size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * 16777619u;
  const std::size_t family = hash % d.masked.size();
  const bool padded = hash & 256;
  EventDecoder& masked = *d.masked[family];
  check_same(decode_as_text(masked, msg, padded, '"'),
             decode_as_text(*d.masked_simdjson[family], msg, padded, '"'),
             "fast path and simdjson alone, masked");
  check_accepted(masked.decode(msg, false, ev), ev);

  const DecodeResult small = d.small.decode(msg, false, ev);
  check_accepted(small, ev);
  if (size > 256) FUZZ_CHECK(!small.ok && small.reason == RejectReason::kOversize);
  return 0;
}
