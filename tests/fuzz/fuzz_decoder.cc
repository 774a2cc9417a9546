// Fuzz harness: the event decoder (detectors/decoder.h), one input = one Kafka message.
//
// Every input goes through the decoder variants the daemon can build, and they must agree:
//   - the contract's paths with every field, unpadded and padded (the padding filled with '"', to
//     check that its content really does not matter), which must decode identically;
//   - both compiled kernels (simdjson's portable one and, on a CPU with AVX2, the haswell one),
//     which must decode identically;
//   - field masks (a hash of the input picks one, as a configuration's detectors would) with
//     remapped paths (`input.fields:`), including a path that is also the parent of other paths
//     and one deeper than the decoder walks;
//   - a 256-byte max_message_bytes (oversize before parsing).
// An accepted event must carry an address that prints and parses back to itself, and a
// timestamp that does the same.
#include <simdjson.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "detectors/decoder.h"
#include "detectors/decoder_backend.h"
#include "tests/fuzz/fuzz_check.h"

namespace portalwatch {
namespace {

// Every decoded field as text, so two decodes can be compared (the views die at the next decode).
std::string describe(const DecodeResult& r, const Event& ev) {
  std::string out;
  if (!r.ok) {
    out = "rejected ";
    out += to_string(r.reason);
    out += ": ";
    out += r.detail;
    return out;
  }
  const auto add = [&out](std::string_view name, std::string_view value) {
    out += name;
    out += '=';
    out += std::to_string(value.size());
    out += ':';
    out += value;
    out += ' ';
  };
  add("ts", std::to_string(ev.timestamp));
  add("action", ev.action_text);
  add("action_kind", std::to_string(static_cast<int>(ev.action)));
  add("outcome", std::to_string(static_cast<int>(ev.outcome)));
  add("reason", ev.reason_text);
  add("reason_kind", std::to_string(static_cast<int>(ev.reason)));
  add("user", ev.user_name);
  add("user_id", ev.user_id);
  FUZZ_CHECK(ev.role_count <= Event::kMaxRoles);
  for (std::uint8_t i = 0; i < ev.role_count; ++i) add("role", ev.roles[i]);
  add("ip", ev.source_ip_text);
  add("ip_parsed", ev.source_ip.to_string());
  add("country", ev.geo_country);
  add("region", ev.geo_region);
  add("city", ev.geo_city);
  add("geo", ev.has_geo_location ? std::to_string(ev.geo_lat) + "," + std::to_string(ev.geo_lon) : "-");
  add("as", std::to_string(ev.as_number));
  add("as_org", ev.as_org);
  add("ua", ev.user_agent);
  add("device", ev.device_id);
  add("session", ev.session_id);
  add("path", ev.url_path);
  add("method", ev.http_method);
  add("status", std::to_string(ev.http_status));
  add("app", ev.app);
  add("record", ev.record_id);
  return out;
}

void check_accepted(const DecodeResult& r, const Event& ev) {
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
  EventDecoder small{FieldMap(), 256, kAlwaysDecodedFields};
  // One per mask family, so a decoder (and its parser's buffers) is reused from input to input
  // as in the daemon.
  std::vector<std::unique_ptr<EventDecoder>> masked;
  DecoderStats generic_stats, haswell_stats;
  std::unique_ptr<DecoderBackend> generic =
      decoder_generic::make_backend(FieldMap(), 65536, kAllFields, &generic_stats);
  std::unique_ptr<DecoderBackend> haswell;

  Decoders() {
    const std::string kernel = simdjson::get_active_implementation()->name();
    if (kernel == "haswell" || kernel == "icelake")
      haswell = decoder_haswell::make_backend(FieldMap(), 65536, kAllFields, &haswell_stats);
    const FieldMap remapped = remapped_fields();
    for (unsigned i = 0; i < 8; ++i) {
      // Masks as detectors ask for them: the required fields plus a varying few.
      const FieldSet mask = kAlwaysDecodedFields | (0x5A5A5A5Au >> i) | (1u << (i * 3));
      masked.push_back(std::make_unique<EventDecoder>(i % 2 ? remapped : FieldMap(), 65536, mask & kAllFields));
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
  const std::string plain_text = describe(plain, ev);

  // The padded path reads the caller's buffer in place: exactly size + kPadding bytes.
  std::unique_ptr<char[]> padded(new char[size + EventDecoder::kPadding]);
  if (size) std::memcpy(padded.get(), data, size);
  std::memset(padded.get() + size, '"', EventDecoder::kPadding);
  const std::string_view padded_msg(padded.get(), size);
  const DecodeResult in_place = d.all.decode(padded_msg, true, ev);
  FUZZ_CHECK(describe(in_place, ev) == plain_text);

  if (size <= d.all.max_message_bytes()) {
    // The kernels, straight (EventDecoder turns some not_object results into not_json after).
    const DecodeResult g = d.generic->decode(msg, false, ev);
    const std::string generic_text = describe(g, ev);
    if (d.haswell) {
      const DecodeResult h = d.haswell->decode(msg, false, ev);
      FUZZ_CHECK(describe(h, ev) == generic_text);
    }
  }

  std::uint32_t hash = 2166136261u;
  for (std::size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * 16777619u;
  EventDecoder& masked = *d.masked[hash % d.masked.size()];
  check_accepted((hash & 256) ? masked.decode(padded_msg, true, ev) : masked.decode(msg, false, ev), ev);

  const DecodeResult small = d.small.decode(msg, false, ev);
  check_accepted(small, ev);
  if (size > 256) FUZZ_CHECK(!small.ok && small.reason == RejectReason::kOversize);
  return 0;
}
