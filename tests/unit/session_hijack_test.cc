// session_hijack: a session cookie replayed from another network by another client; a phone
// changing networks, or a carrier rotating addresses, is the same client.
#include "detectors/session_hijack.h"

#include <doctest/doctest.h>

#include "tests/unit/event_builder.h"

namespace portalwatch {

using test::Collect;
using test::Ev;

namespace {

const TimeMs kT0 = *parse_rfc3339("2026-12-23T14:00:00Z");
const char* kChromeWindows =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36";
const char* kChromeWindowsNewer =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/132.0.0.0 Safari/537.36";
const char* kFirefoxLinux =
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const char* kSafariIphone =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 "
    "Mobile/15E148 Safari/604.1";

Engine hijack_engine() {
  return test::engine_with(
      std::make_unique<SessionHijackDetector>(SessionHijackConfig{}, "session_hijack"));
}

Ev in_session(TimeMs t, const std::string& ip, int asn, const char* ua,
              const std::string& device = "d-1") {
  Ev ev = Ev{}.at(t).as("jdoe42").from(ip).view("E0000042", "paystub");
  ev.user_id = "E0000042";
  ev.session = "s-8f2c77e1";
  ev.asn = asn;
  ev.ua = ua;
  ev.device = device;
  return ev;
}

}  // namespace

TEST_CASE("user agent families") {
  CHECK(classify_user_agent(kChromeWindows).text() == "Chrome on Windows");
  CHECK(classify_user_agent(kChromeWindows) == classify_user_agent(kChromeWindowsNewer));
  CHECK(classify_user_agent(kFirefoxLinux).text() == "Firefox on Linux");
  CHECK(classify_user_agent(kSafariIphone).text() == "Safari on iOS");
  CHECK(classify_user_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                            "Chrome/131.0 Safari/537.36 Edg/131.0")
            .browser == Browser::kEdge);
  CHECK(classify_user_agent("curl/8.4.0").browser == Browser::kTool);
  CHECK(classify_user_agent("").browser == Browser::kNone);
}

TEST_CASE("session_hijack: the cookie replayed from a hosting provider by another browser") {
  Engine e = hijack_engine();
  Collect out;
  test::feed(e, in_session(kT0, "73.12.9.4", 7922, kChromeWindows), out);
  test::feed(e, in_session(kT0 + kMinuteMs, "73.12.9.4", 7922, kChromeWindows), out);
  REQUIRE(out.findings.empty());
  test::feed(e, in_session(kT0 + 3 * kMinuteMs, "185.220.101.4", 9009, kFirefoxLinux), out);
  REQUIRE(out.findings.size() == 1);
  const Finding& f = out.findings[0];
  CHECK(f.entity_type == EntityType::kSession);
  CHECK(f.entity == "s-8f2c77e1");
  CHECK(f.severity == Severity::kHigh);
  CHECK(*f.evidence.get("established_client") == "\"Chrome on Windows\"");
  CHECK(*f.evidence.get("client") == "\"Firefox on Linux\"");
  CHECK(f.window_start == kT0);
  // The thief changes the direct deposit: critical.
  Ev change = in_session(kT0 + 4 * kMinuteMs, "185.220.101.4", 9009, kFirefoxLinux);
  change.action = "change";
  change.app = "direct_deposit";
  test::feed(e, change, out);
  REQUIRE(out.findings.size() == 2);
  CHECK(out.findings[1].severity == Severity::kCritical);
  CHECK(out.findings[1].summary.find("direct_deposit") != std::string::npos);
  // Nothing more for the same thief reading on.
  test::feed(e, in_session(kT0 + 5 * kMinuteMs, "185.220.101.4", 9009, kFirefoxLinux), out);
  CHECK(out.findings.size() == 2);
}

TEST_CASE("session_hijack: the same browser with another device id is another client") {
  Engine e = hijack_engine();
  Collect out;
  test::feed(e, in_session(kT0, "73.12.9.4", 7922, kChromeWindows, "d-1"), out);
  test::feed(e, in_session(kT0 + kMinuteMs, "45.32.1.1", 20473, kChromeWindows, "d-2"), out);
  REQUIRE(out.findings.size() == 1);
  CHECK(*out.findings[0].evidence.get("other_device") == "true");
}

TEST_CASE("session_hijack: what must not fire") {
  Engine e = hijack_engine();
  Collect out;
  SUBCASE("a phone moving from home Wi-Fi to cellular") {
    test::feed(e, in_session(kT0, "73.12.9.4", 7922, kSafariIphone), out);
    test::feed(e, in_session(kT0 + kMinuteMs, "174.243.10.2", 22394, kSafariIphone), out);
  }
  SUBCASE("a mobile user whose address changes mid-session within the same carrier") {
    test::feed(e, in_session(kT0, "174.243.10.2", 22394, kSafariIphone), out);
    test::feed(e, in_session(kT0 + kMinuteMs, "174.201.77.9", 22394, kSafariIphone), out);
  }
  SUBCASE("a browser that updated itself during the session") {
    test::feed(e, in_session(kT0, "73.12.9.4", 7922, kChromeWindows), out);
    test::feed(e, in_session(kT0 + kMinuteMs, "73.12.9.4", 7922, kChromeWindowsNewer), out);
  }
  SUBCASE(
      "another client on the same network (a second tab is the same; a relative is not a thief)") {
    test::feed(e, in_session(kT0, "73.12.9.4", 7922, kChromeWindows), out);
    test::feed(e, in_session(kT0 + kMinuteMs, "73.12.9.4", 7922, kFirefoxLinux), out);
  }
  CHECK(out.findings.empty());
}

}  // namespace portalwatch
