// portalwatchctl's human-readable output, from results in the documented schemas; and whatever
// the daemon sends, no control character reaches the operator's terminal.
#include "daemon/control_render.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "daemon/control_protocol.h"

namespace portalwatch {

namespace {

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

ControlRequest request(std::string_view line) {
  auto r = parse_control_request(line);
  REQUIRE_MESSAGE(r.request, r.error);
  return *r.request;
}

RenderOptions at(std::string_view now) {
  RenderOptions o;
  o.now = parse_rfc3339(now).value();
  return o;
}

const char* kFinding =
    R"({"id":"f-000000000042","detector":"password_spray","severity":"high","entity":{"type":"ip","value":"203.0.113.9"},)"
    R"("at":"2026-12-23T14:05:00.000Z","window":{"start":"2026-12-23T13:50:00.000Z","end":"2026-12-23T14:05:00.000Z"},)"
    R"("summary":"203.0.113.9 failed logins for 142 distinct accounts in 15m","evidence":{"distinct_users":142}})";
const char* kDecision =
    R"({"id":"d-000000000007","kind":"decision","action":"lockdown","state":"on","scope":{"type":"app","value":"hsa"},)"
    R"("at":"2026-12-23T14:06:02.000Z","by":"policy:savings-accounts-under-attack","reason":"account_takeover x3 on hsa in 10m",)"
    R"("findings":["f-000000000040"],"expires":"2026-12-23T15:06:02.000Z"})";

}  // namespace

TEST_CASE("control render: status") {
  const std::string result =
      std::string(
          R"({"version":"0.1.0","uptime_seconds":11580,"health":"degraded","health_reasons":["consumer lag 12000"],)"
          R"("events_received":1234567,"consumer_lag":12000,"lockdowns":[)") +
      R"({"scope":"app:hsa","action":"lockdown","since":"2026-12-23T14:06:02.000Z","by":"policy:savings-accounts-under-attack",)"
      R"("reason":"account_takeover x3 on hsa in 10m","expires":"2026-12-23T15:06:02.000Z","dry_run":false,"decision":"d-000000000007"},)"
      R"({"scope":"user:jdoe42","action":"lockdown","since":"2026-12-23T13:00:00.000Z","by":"operator:alice","reason":"phoned in",)"
      R"("dry_run":true,"decision":"d-000000000003"}],)"
      R"("silenced":[{"detector":"password_spray","until":"2026-12-23T16:00:00.000Z","by":"operator:bob","reason":"pen test"}],)"
      R"("recent_findings":[)" +
      kFinding + R"(],"recent_decisions":[)" + kDecision + "]}";
  const Rendered r =
      render_result(request(R"({"command":"status"})"), result, at("2026-12-23T14:16:02Z"));
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "portalwatchd 0.1.0, up 3h13m, health: DEGRADED (consumer lag 12000)\n"));
  CHECK(contains(r.out, "events received: 1234567, consumer lag: 12000 messages\n"));
  CHECK(contains(r.out, "Lockdowns on: 2\n"));
  CHECK(contains(
      r.out,
      "  SCOPE        ACTION    SINCE                             BY                               "
      "     "
      "EXPIRES                        REASON\n"
      "  app:hsa      lockdown  2026-12-23 14:06:02Z (10m ago)    "
      "policy:savings-accounts-under-attack  "
      "2026-12-23 15:06:02Z (in 50m)  account_takeover x3 on hsa in 10m (d-000000000007)\n"
      "  user:jdoe42  lockdown  2026-12-23 13:00:00Z (1h16m ago)  operator:alice                   "
      "     "
      "until lifted                   phoned in [dry run: not enforced] (d-000000000003)\n"));
  CHECK(contains(r.out, "Silenced detectors: 1\n"));
  CHECK(contains(r.out,
                 "  password_spray  2026-12-23 16:00:00Z (in 1h44m)  operator:bob  pen test\n"));
  CHECK(contains(r.out,
                 "Recent findings: 1\n  2026-12-23 14:05:00  HIGH      password_spray        ip    "
                 "  203.0.113.9"
                 "             203.0.113.9 failed logins for 142 distinct accounts in 15m\n"));
  CHECK(contains(
      r.out,
      "Recent decisions: 1\n  2026-12-23 14:06:02  d-000000000007  lockdown on  app:hsa  by "
      "policy:savings-accounts-under-attack: account_takeover x3 on hsa in 10m  (until 2026-12-23 "
      "15:06:02Z)\n"));
}

TEST_CASE("control render: a quiet status") {
  const Rendered r =
      render_result(request(R"({"command":"status"})"),
                    R"({"version":"0.1.0","uptime_seconds":42,"health":"ok","health_reasons":[],)"
                    R"("events_received":0,"consumer_lag":0,"lockdowns":[],"silenced":[],)"
                    R"("recent_findings":[],"recent_decisions":[]})",
                    {});
  CHECK(r.out ==
        "portalwatchd 0.1.0, up 42s, health: ok\n"
        "events received: 0, consumer lag: 0 messages\n"
        "\nLockdowns on: none\n"
        "\nRecent findings: none\n"
        "\nRecent decisions: none\n");
}

TEST_CASE("control render: the other commands") {
  SUBCASE("lockdown") {
    const auto req = request(
        R"({"command":"lockdown","state":"on","scope":"app:hsa","reason":"x","ttl_seconds":3600})");
    const std::string decision =
        R"({"id":"d-000000000009","kind":"decision","action":"lockdown","state":"on","scope":{"type":"app","value":"hsa"},)"
        R"("at":"2026-12-23T14:06:02.000Z","by":"operator:alice","reason":"x","findings":[],"expires":"2026-12-23T15:06:02.000Z"})";
    CHECK(render_result(req, R"({"decision":)" + decision + R"(,"changed":true})",
                        at("2026-12-23T14:06:02Z"))
              .out ==
          "app:hsa: lockdown on (d-000000000009, by operator:alice), until 2026-12-23 15:06:02Z "
          "(in 1h)\n");
    CHECK(render_result(req, R"({"decision":)" + decision + R"(,"changed":false})", {}).out ==
          "app:hsa: lockdown was already on; nothing changed\n");
  }
  SUBCASE("findings and decisions") {
    const Rendered f =
        render_result(request(R"({"command":"findings"})"),
                      std::string(R"({"items":[)") + kFinding + "," + kFinding + "]}", {});
    CHECK(f.out.find("password_spray") != f.out.rfind("password_spray"));
    CHECK(std::count(f.out.begin(), f.out.end(), '\n') == 2);
    CHECK(render_result(request(R"({"command":"decisions"})"), R"({"items":[]})", {}).out ==
          "no recent decisions\n");
    CHECK(result_items(std::string(R"({"items":[)") + kDecision + "]}").size() == 1);
    CHECK(item_id(kDecision) == "d-000000000007");
  }
  SUBCASE("allowlist") {
    const std::string list =
        R"({"networks":[{"network":"10.1.0.0/16","comment":"state offices","by":"operator:alice","at":"2026-12-01T09:00:00.000Z"},)"
        R"({"network":"2001:db8::/32","comment":"","by":"operator:bob","at":"2026-12-02T09:00:00.000Z"}]})";
    CHECK(render_result(request(R"({"command":"allowlist","op":"list"})"), list, {}).out ==
          "NETWORK        ADDED                 BY              COMMENT\n"
          "10.1.0.0/16    2026-12-01 09:00:00Z  operator:alice  state offices\n"
          "2001:db8::/32  2026-12-02 09:00:00Z  operator:bob\n");
    CHECK(render_result(request(R"({"command":"allowlist","op":"list"})"), R"({"networks":[]})", {})
              .out == "the allowlist is empty\n");
    CHECK(render_result(request(R"({"command":"allowlist","op":"add","network":"10.1.0.0/16"})"),
                        list, {})
              .out == "added 10.1.0.0/16 to the allowlist\n");
  }
  SUBCASE("silence") {
    CHECK(render_result(
              request(R"({"command":"silence","detector":"password_spray","seconds":3600})"),
              R"({"detector":"password_spray","until":"2026-12-23T15:00:00.000Z"})",
              at("2026-12-23T14:00:00Z"))
              .out == "password_spray: silenced until 2026-12-23 15:00:00Z (in 1h)\n");
    CHECK(render_result(request(R"({"command":"silence","detector":"password_spray","seconds":0})"),
                        R"({"detector":"password_spray"})", {})
              .out == "password_spray: silence lifted\n");
  }
  SUBCASE("reload") {
    const Rendered ok =
        render_result(request(R"({"command":"reload"})"), R"({"reloaded":true,"errors":[]})", {});
    CHECK(ok.out == "configuration reloaded\n");
    CHECK(ok.exit_code == 0);
    const Rendered bad = render_result(
        request(R"({"command":"reload"})"),
        R"({"reloaded":false,"errors":["x.yaml:3:3: kafka.topics: at least one topic is required"]})",
        {});
    CHECK(bad.exit_code == 1);
    CHECK(bad.err ==
          "reload failed; the running configuration stays:\n  x.yaml:3:3: kafka.topics: at least "
          "one topic is required\n");
  }
}

TEST_CASE("control render: nothing the daemon sends reaches the terminal as a control sequence") {
  CHECK(terminal_safe("plain ÜTF-8 🔒") == "plain ÜTF-8 🔒");
  CHECK(terminal_safe("\x1b[2Jgone\r\n\x7f") == "?[2Jgone???");
  CHECK(terminal_safe("\xc2\x9b"
                      "31m") == "?31m");  // C1 CSI
  CHECK(terminal_safe("\xff\xfe\xc3") == "???");
  CHECK(terminal_safe("\xed\xa0\x80") == "???");  // a surrogate is not UTF-8
  const std::string evil =
      R"({"id":"f-1","detector":"brute_force","severity":"medium","entity":{"type":"user","value":"\u001b]0;pwned\u0007"},)"
      R"("at":"2026-12-23T14:05:00.000Z","summary":"\u009b2J \u001b[31mred"})";
  const std::string line = render_finding_line(evil, {});
  CHECK(line.find('\x1b') == std::string::npos);
  CHECK(line.find('\x07') == std::string::npos);
  CHECK(line.find("\xc2\x9b") == std::string::npos);
  CHECK(line.back() == '\n');
}

TEST_CASE("control render: results that are not in the schema do not crash") {
  for (const char* odd :
       {"", "{", "[]", "null", R"({"lockdowns":7})", R"({"lockdowns":[7,null,{"scope":3}]})",
        R"({"recent_findings":[{"entity":"x","at":12,"severity":{}}]})",
        R"({"uptime_seconds":9e300})", R"({"uptime_seconds":-5,"events_received":"many"})",
        R"({"items":{"a":1}})", R"({"decision":[],"changed":"yes"})",
        R"({"networks":[{"at":"yesterday"}]})"}) {
    INFO(odd);
    for (const char* req :
         {R"({"command":"status"})", R"({"command":"findings"})", R"({"command":"decisions"})",
          R"({"command":"allowlist","op":"list"})", R"({"command":"reload"})",
          R"({"command":"lockdown","state":"on","scope":"global","reason":"x"})",
          R"({"command":"silence","detector":"x","seconds":5})"})
      render_result(request(req), odd, at("2026-12-23T14:00:00Z"));
    render_finding_line(odd, {});
    render_decision_line(odd, {});
    result_items(odd);
    item_id(odd);
  }
}

}  // namespace portalwatch
