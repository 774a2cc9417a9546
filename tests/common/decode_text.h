// What the decoder made of one message, as text, so that two decoders (the fast path and
// simdjson alone, two kernels, padded and unpadded input) can be compared field by field. Shared
// by tests/unit/decoder_paths_test.cc and tests/fuzz/fuzz_decoder.cc.
#pragma once

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "detectors/decoder.h"

namespace portalwatch::testing {

/// Every field the decoder sets (doubles to the last bit), or the rejection with its detail.
inline std::string describe_decode(const DecodeResult& r, const Event& ev) {
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
  const auto exact = [](double d) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%a", d);
    return std::string(buf);
  };
  add("ts", std::to_string(ev.timestamp));
  add("time", std::to_string(ev.time));
  add("action", ev.action_text);
  add("action_kind", std::to_string(static_cast<int>(ev.action)));
  add("outcome", std::to_string(static_cast<int>(ev.outcome)));
  add("reason", ev.reason_text);
  add("reason_kind", std::to_string(static_cast<int>(ev.reason)));
  add("user", ev.user_name);
  add("user_id", ev.user_id);
  add("roles", std::to_string(ev.role_count));
  for (std::uint8_t i = 0; i < ev.role_count && i < Event::kMaxRoles; ++i) add("role", ev.roles[i]);
  add("ip", ev.source_ip_text);
  add("ip_parsed", ev.source_ip.to_string());
  add("country", ev.geo_country);
  add("region", ev.geo_region);
  add("city", ev.geo_city);
  add("has_geo", ev.has_geo_location ? "1" : "0");
  add("lat", exact(ev.geo_lat));
  add("lon", exact(ev.geo_lon));
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

/// The ignored-field counts that one decode added, as text ("" when none).
inline std::string describe_ignored(const DecoderStats& before, const DecoderStats& after) {
  std::string out;
  for (std::size_t f = 0; f < kFieldCount; ++f) {
    const auto added = after.ignored_fields[f] - before.ignored_fields[f];
    if (!added) continue;
    out += field_name(static_cast<Field>(f));
    out += '+';
    out += std::to_string(added);
    out += ' ';
  }
  return out;
}

/// One message through d: the result, the event and the ignored-field counts it added. With
/// padded, msg is copied into a buffer followed by EventDecoder::kPadding bytes of `filler` and
/// decoded in place there.
inline std::string decode_as_text(EventDecoder& d, std::string_view msg, bool padded,
                                  char filler = ' ') {
  const DecoderStats before = d.stats();
  Event ev;
  DecodeResult r;
  std::unique_ptr<char[]> buf;
  if (padded) {
    buf.reset(new char[msg.size() + EventDecoder::kPadding]);
    if (!msg.empty()) std::memcpy(buf.get(), msg.data(), msg.size());
    std::memset(buf.get() + msg.size(), filler, EventDecoder::kPadding);
    r = d.decode(std::string_view(buf.get(), msg.size()), true, ev);
  } else {
    r = d.decode(msg, false, ev);
  }
  return describe_decode(r, ev) + "| ignored " + describe_ignored(before, d.stats());
}

}  // namespace portalwatch::testing
