// The event decoder against the contract: every field, nested and dotted keys, remapping, and
// every rejection reason.
#include <doctest/doctest.h>

#include <string>

#include "detectors/decoder.h"

namespace portalwatch {

namespace {

const std::string kContractExample = R"({
  "@timestamp": "2026-12-23T14:03:11.123Z",
  "event":   {"action": "login", "outcome": "failure", "reason": "bad_password"},
  "user":    {"name": "jdoe42", "id": "E0123456", "roles": ["employee"]},
  "source":  {"ip": "198.51.100.23",
              "geo": {"country_iso_code": "US", "region_iso_code": "US-MO",
                      "city_name": "Jefferson City", "location": {"lat": 38.57, "lon": -92.17}},
              "as":  {"number": 7018, "organization": {"name": "AT&T"}}},
  "user_agent": {"original": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) ..."},
  "device":  {"id": "d-93ab51c0"},
  "session": {"id": "s-8f2c77e1"},
  "url":     {"path": "/ess/hsa/balance"},
  "http":    {"request": {"method": "GET"}, "response": {"status_code": 200}},
  "portal":  {"app": "hsa", "record": {"id": "E0099871"}}
})";

DecodeResult decode(EventDecoder& d, const std::string& msg, Event& ev) { return d.decode(msg, false, ev); }

void check_rejected(const std::string& msg, RejectReason reason, std::size_t max_bytes = 65536) {
  EventDecoder d(FieldMap(), max_bytes);
  Event ev;
  const DecodeResult r = decode(d, msg, ev);
  INFO("message: " << msg);
  CHECK_FALSE(r.ok);
  CHECK(to_string(r.reason) == to_string(reason));
  CHECK_FALSE(r.detail.empty());
}

}  // namespace

TEST_CASE("decoder: the contract's example event decodes with every field") {
  EventDecoder d;
  Event ev;
  const DecodeResult r = decode(d, kContractExample, ev);
  REQUIRE(r.ok);
  CHECK(ev.timestamp == *parse_rfc3339("2026-12-23T14:03:11.123Z"));
  CHECK(ev.time == ev.timestamp);
  CHECK(ev.action == Action::kLogin);
  CHECK(ev.action_text == "login");
  CHECK(ev.outcome == Outcome::kFailure);
  CHECK(ev.reason == Reason::kBadPassword);
  CHECK(ev.user_name == "jdoe42");
  CHECK(ev.user_id == "E0123456");
  REQUIRE(ev.role_count == 1);
  CHECK(ev.roles[0] == "employee");
  CHECK(ev.source_ip_text == "198.51.100.23");
  CHECK(ev.source_ip == *IpAddress::parse("198.51.100.23"));
  CHECK(ev.geo_country == "US");
  CHECK(ev.geo_region == "US-MO");
  CHECK(ev.geo_city == "Jefferson City");
  CHECK(ev.has_geo_location);
  CHECK(ev.geo_lat == doctest::Approx(38.57));
  CHECK(ev.geo_lon == doctest::Approx(-92.17));
  CHECK(ev.as_number == 7018);
  CHECK(ev.as_org == "AT&T");
  CHECK(ev.user_agent == "Mozilla/5.0 (Windows NT 10.0; Win64; x64) ...");
  CHECK(ev.device_id == "d-93ab51c0");
  CHECK(ev.session_id == "s-8f2c77e1");
  CHECK(ev.url_path == "/ess/hsa/balance");
  CHECK(ev.http_method == "GET");
  CHECK(ev.http_status == 200);
  CHECK(ev.app == "hsa");
  CHECK(ev.record_id == "E0099871");
}

TEST_CASE("decoder: dotted keys and mixed nesting read the same fields") {
  EventDecoder d;
  Event ev;
  const std::string msg = R"({"@timestamp":"2026-12-23T14:03:11Z","event.action":"view","event":{"outcome":"success"},
    "source.ip":"2001:db8::1","source":{"geo.location":{"lat":1.5,"lon":2.5}},"portal.record.id":"E1","user.name":"a"})";
  REQUIRE(decode(d, msg, ev).ok);
  CHECK(ev.action == Action::kView);
  CHECK(ev.outcome == Outcome::kSuccess);
  CHECK(ev.source_ip.to_string() == "2001:db8::1");
  CHECK(ev.has_geo_location);
  CHECK(ev.geo_lon == doctest::Approx(2.5));
  CHECK(ev.record_id == "E1");
  CHECK(ev.user_name == "a");
}

TEST_CASE("decoder: a field map reads other paths, and the contract path is then ignored") {
  FieldMap fields;
  REQUIRE(fields.set(Field::kUserName, "usr.login"));
  REQUIRE(fields.set(Field::kSourceIp, "client_address"));
  CHECK_FALSE(fields.set(Field::kUserId, ""));
  CHECK_FALSE(fields.set(Field::kUserId, "a..b"));
  EventDecoder d(fields);
  Event ev;
  const std::string msg = R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":"login","outcome":"success"},
    "usr":{"login":"mapped"},"user":{"name":"ignored"},"client_address":"192.0.2.7","source":{"ip":"bogus"}})";
  REQUIRE(decode(d, msg, ev).ok);
  CHECK(ev.user_name == "mapped");
  CHECK(ev.source_ip_text == "192.0.2.7");
  // A missing mapped field names both the contract field and where it was looked for.
  const DecodeResult r = decode(d, R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":"view","outcome":"success"}})", ev);
  CHECK_FALSE(r.ok);
  CHECK(r.detail == "missing field source.ip (mapped to client_address)");
}

TEST_CASE("decoder: every rejection reason") {
  const std::string ok_rest = R"("event":{"action":"view","outcome":"success"},"source":{"ip":"192.0.2.1"})";
  SUBCASE("not_json") {
    check_rejected("", RejectReason::kNotJson);
    check_rejected("garbage", RejectReason::kNotJson);
    check_rejected(R"({"@timestamp":"2026-12-23T14:03:11Z",)", RejectReason::kNotJson);  // truncated
    check_rejected(R"({"@timestamp":"2026-12-23T14:03:11Z",)" + ok_rest + "} {}", RejectReason::kNotJson);
    check_rejected("{\"@timestamp\":\"\xff\xfe\"," + ok_rest + "}", RejectReason::kNotJson);  // invalid UTF-8
    check_rejected(std::string(5000, '[') + std::string(5000, ']'), RejectReason::kNotJson);  // too deep
  }
  SUBCASE("not_object") {
    check_rejected("[1,2,3]", RejectReason::kNotObject);
    check_rejected("\"a string\"", RejectReason::kNotObject);
    check_rejected("42", RejectReason::kNotObject);
    check_rejected("null", RejectReason::kNotObject);
  }
  SUBCASE("missing_field") {
    check_rejected("{" + ok_rest + "}", RejectReason::kMissingField);
    check_rejected(R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"outcome":"success"},"source":{"ip":"192.0.2.1"}})",
                   RejectReason::kMissingField);
    check_rejected(R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":"view"},"source":{"ip":"192.0.2.1"}})",
                   RejectReason::kMissingField);
    check_rejected(R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":"view","outcome":"success"}})",
                   RejectReason::kMissingField);
    // A login must name its account...
    check_rejected(R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":"login","outcome":"failure","reason":"bad_password"},"source":{"ip":"192.0.2.1"}})",
                   RejectReason::kMissingField);
  }
  SUBCASE("invalid_field") {
    check_rejected(R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":"view","outcome":"success"},"source":{"ip":"999.1.1.1"}})",
                   RejectReason::kInvalidField);
    check_rejected(R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":["view"],"outcome":"success"},"source":{"ip":"192.0.2.1"}})",
                   RejectReason::kInvalidField);
    check_rejected(R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":"view","outcome":{}},"source":{"ip":"192.0.2.1"}})",
                   RejectReason::kInvalidField);
  }
  SUBCASE("bad_timestamp") {
    check_rejected(R"({"@timestamp":"yesterday",)" + ok_rest + "}", RejectReason::kBadTimestamp);
    check_rejected(R"({"@timestamp":"2026-02-30T00:00:00Z",)" + ok_rest + "}", RejectReason::kBadTimestamp);
    check_rejected(R"({"@timestamp":true,)" + ok_rest + "}", RejectReason::kBadTimestamp);
  }
  SUBCASE("oversize") {
    check_rejected(R"({"@timestamp":"2026-12-23T14:03:11Z",)" + ok_rest + ",\"pad\":\"" + std::string(600, 'x') + "\"}",
                   RejectReason::kOversize, 512);
  }
}

TEST_CASE("decoder: what is not an error") {
  EventDecoder d;
  Event ev;
  SUBCASE("a login with an unknown user may omit the name") {
    CHECK(decode(d, R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":"login","outcome":"failure","reason":"unknown_user"},"source":{"ip":"192.0.2.1"}})", ev).ok);
  }
  SUBCASE("unknown action and reason words are kept") {
    REQUIRE(decode(d, R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":"impersonate","outcome":"failure","reason":"cosmic_ray"},"source":{"ip":"192.0.2.1"},"extra":{"deep":[1,{"x":null}]}})", ev).ok);
    CHECK(ev.action == Action::kOther);
    CHECK(ev.action_text == "impersonate");
    CHECK(ev.reason == Reason::kOther);
    CHECK(ev.reason_text == "cosmic_ray");
  }
  SUBCASE("optional fields of the wrong type are dropped and counted") {
    REQUIRE(decode(d, R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":"view","outcome":"success"},"source":{"ip":"192.0.2.1","geo":{"location":{"lat":300,"lon":2}},"as":{"number":"AS7018"}},"http":{"response":{"status_code":"abc"}},"device":{"id":{"x":1}}})", ev).ok);
    CHECK_FALSE(ev.has_geo_location);
    CHECK(ev.as_number == 7018);
    CHECK(ev.http_status == 0);
    CHECK(ev.device_id.empty());
    CHECK(d.stats().ignored_fields[static_cast<size_t>(Field::kGeoLat)] == 1);
    CHECK(d.stats().ignored_fields[static_cast<size_t>(Field::kHttpStatus)] == 1);
    CHECK(d.stats().ignored_fields[static_cast<size_t>(Field::kDeviceId)] == 1);
  }
  SUBCASE("numeric ids, roles as one string, escapes, epoch timestamps") {
    REQUIRE(decode(d, R"({"@timestamp":1797000000123,"event":{"action":"view","outcome":"success"},"source":{"ip":"::ffff:192.0.2.1"},"user":{"id":12345,"roles":"hr_admin","name":"j\u00f6rg\"x"}})", ev).ok);
    CHECK(ev.timestamp == 1797000000123);
    CHECK(ev.user_id == "12345");
    CHECK(ev.has_role("hr_admin"));
    CHECK(ev.user_name == "j\xc3\xb6rg\"x");
    CHECK(ev.source_ip == *IpAddress::parse("192.0.2.1"));
  }
  SUBCASE("at most eight roles are kept") {
    REQUIRE(decode(d, R"({"@timestamp":"2026-12-23T14:03:11Z","event":{"action":"view","outcome":"success"},"source":{"ip":"192.0.2.1"},"user":{"roles":["a","b","c","d","e","f","g","h","i","j"]}})", ev).ok);
    CHECK(ev.role_count == Event::kMaxRoles);
  }
}

TEST_CASE("decoder: in-place (padded) and copied input decode alike; only requested fields are read") {
  std::string buf = kContractExample;
  buf.append(EventDecoder::kPadding, ' ');
  EventDecoder d;
  Event a, b;
  REQUIRE(d.decode(std::string_view(buf.data(), kContractExample.size()), true, a).ok);
  const std::string a_ua(a.user_agent);
  REQUIRE(d.decode(kContractExample, false, b).ok);
  CHECK(a_ua == b.user_agent);
  CHECK(a.timestamp == b.timestamp);

  EventDecoder lean(FieldMap(), 65536, kAlwaysDecodedFields);
  Event c;
  REQUIRE(lean.decode(kContractExample, false, c).ok);
  CHECK(c.user_name == "jdoe42");
  CHECK(c.user_agent.empty());
  CHECK_FALSE(c.has_geo_location);
}

TEST_CASE("time: RFC 3339 parsing and formatting") {
  CHECK(parse_rfc3339("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339("2026-12-23T14:03:11.123Z") == parse_rfc3339("2026-12-23T15:03:11.123+01:00"));
  CHECK(*parse_rfc3339("2026-12-23T14:03:11.123456789Z") % 1000 == 123);
  CHECK(parse_rfc3339("2026-12-23t14:03:11z").has_value());
  CHECK(parse_rfc3339("2024-02-29T00:00:00Z").has_value());
  CHECK_FALSE(parse_rfc3339("2026-02-29T00:00:00Z").has_value());
  CHECK_FALSE(parse_rfc3339("2026-13-01T00:00:00Z").has_value());
  CHECK_FALSE(parse_rfc3339("2026-12-23T24:00:00Z").has_value());
  CHECK_FALSE(parse_rfc3339("2026-12-23T14:03:11").has_value());
  CHECK_FALSE(parse_rfc3339("2026-12-23T14:03:11Zjunk").has_value());
  CHECK_FALSE(parse_rfc3339("2026-12-23T14:03:11.Z").has_value());
  CHECK(format_rfc3339(*parse_rfc3339("2026-12-23T14:03:11.007Z")) == "2026-12-23T14:03:11.007Z");
  CHECK(format_rfc3339(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(format_duration(15 * kMinuteMs) == "15m");
  CHECK(format_duration(90 * kSecondMs) == "1m30s");
  CHECK(format_duration(2 * kDayMs) == "2d");
}

TEST_CASE("ip: parsing, canonical text, prefixes and networks") {
  CHECK(IpAddress::parse("192.0.2.1")->v4);
  CHECK(IpAddress::parse("::ffff:192.0.2.1") == IpAddress::parse("192.0.2.1"));
  CHECK(IpAddress::parse("2001:0db8:0000:0000:0000:0000:0000:0001")->to_string() == "2001:db8::1");
  CHECK_FALSE(IpAddress::parse("fe80::1%eth0").has_value());
  CHECK_FALSE(IpAddress::parse("1.2.3").has_value());
  CHECK_FALSE(IpAddress::parse("").has_value());
  CHECK_FALSE(IpAddress::parse(std::string_view("1.2.3.4\0junk", 12)).has_value());  // not cut at a NUL
  CHECK(IpAddress::parse("192.0.2.77")->masked(24).to_string() == "192.0.2.0");
  CHECK(IpAddress::parse("2001:db8:1:2:3:4:5:6")->masked(64).to_string() == "2001:db8:1:2::");
  const auto net = IpNetwork::parse("10.0.0.0/8");
  REQUIRE(net);
  CHECK(net->contains(*IpAddress::parse("10.200.1.1")));
  CHECK_FALSE(net->contains(*IpAddress::parse("11.0.0.1")));
  CHECK_FALSE(net->contains(*IpAddress::parse("::a00:1")));
  CHECK_FALSE(IpNetwork::parse("10.0.0.0/33").has_value());
  CHECK_FALSE(IpNetwork::parse("10.0.0.0/").has_value());
  CHECK(IpNetwork::parse("2001:db8::/32")->to_string() == "2001:db8::/32");
}

}  // namespace portalwatch
