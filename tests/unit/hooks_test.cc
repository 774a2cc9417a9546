// Lockdown hooks with real processes, files and sockets: exec hooks get the decision only as data
// (stdin, environment), hang and get killed with their whole process group, fail and get retried;
// webhooks sign their body, retry a target that is down, give up on one that never answers, and
// verify TLS; file hooks switch a flag file atomically; the runner's queues drop rather than block
// and keep one target's decisions in order. Each case takes well under a few seconds.
#include "daemon/hooks.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <openssl/hmac.h>
#include <prometheus/registry.h>

#include <cstdlib>

#include "daemon/hook_actions.h"
#include "tests/unit/hook_test_support.h"

namespace portalwatch {

using namespace std::chrono_literals;
using test::exec_hook;
using test::make_decision;
using test::Results;
using test::TempDir;
using SteadyClock = std::chrono::steady_clock;

namespace {

// A user name made of what shells, HTML and SQL treat specially, and two attempts to run a
// command: if any of it were ever interpreted, the canary file would appear.
std::string evil_user_name(const std::string& canary) {
  return "$(touch " + canary + ");`touch " + canary + "`;\"'\\|&><*?[]{}~!#%^ ;touch " + canary +
         " # <script>";
}

std::map<std::string, std::string> parse_env(const std::string& text) {
  std::map<std::string, std::string> env;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\0', start);
    if (end == std::string::npos) end = text.size();
    const std::string entry = text.substr(start, end - start);
    const auto eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
    start = end + 1;
  }
  return env;
}

double elapsed_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace

TEST_CASE(
    "hooks exec: the decision arrives as JSON on stdin and PORTALWATCH_* variables, nothing else "
    "inherited") {
  TempDir dir;
  // The environment is copied byte for byte (NUL-separated) from /proc, not printed by a shell.
  const std::string script = test::write_script(dir, "hook", R"(#!/bin/sh
cat > "$OUT/stdin"
cp /proc/$$/environ "$OUT/env"
pwd > "$OUT/cwd"
leak=closed
[ -e "/proc/$$/fd/$LEAK_FD" ] && leak=open
printf '%s' "$leak" > "$OUT/leak"
echo "hello from the hook"
)");
  // A descriptor this process opened without O_CLOEXEC must not reach the hook.
  const int leak_fd = ::open("/dev/null", O_RDONLY);
  REQUIRE(leak_fd >= 0);
  ::setenv("PORTALWATCH_TEST_INHERITED", "from the daemon", 1);
  ::setenv("PORTALWATCH_TEST_NOT_INHERITED", "secret", 1);

  auto h = exec_hook("recorder", {script, "--flag"},
                     {{"OUT", dir.path}, {"LEAK_FD", std::to_string(leak_fd)}});
  h.exec.inherit_env = {"PORTALWATCH_TEST_INHERITED", "NOT_SET_ANYWHERE"};
  h.exec.working_dir = dir.path;
  Decision d = make_decision(ScopeType::kUser, "jdoe42", true, 42, DecisionAction::kReauthenticate);
  d.expires = *parse_rfc3339("2026-12-23T15:06:02.000Z");

  Results results;
  prometheus::Registry registry;
  {
    HookRunner runner({h}, registry, results.callback());
    CHECK(runner.submit(d));
    const auto r = results.wait(1);
    REQUIRE(r.size() == 1);
    CHECK(r[0].outcome == HookOutcome::kSuccess);
    CHECK(r[0].attempts == 1);
    CHECK(r[0].detail == "exit status 0");
    CHECK(test::counter(runner, 0, HookOutcome::kSuccess) == 1);
    CHECK(runner.metrics().hooks[0].last_exit_code->Value() == 0);
  }
  ::close(leak_fd);
  ::unsetenv("PORTALWATCH_TEST_INHERITED");
  ::unsetenv("PORTALWATCH_TEST_NOT_INHERITED");

  CHECK(test::read_file(dir / "stdin") == d.to_json() + "\n");
  CHECK(test::read_file(dir / "leak") == "closed");
  CHECK(test::read_file(dir / "cwd") == dir.path + "\n");
  const auto env = parse_env(test::read_file(dir / "env"));
  CHECK(env.at("PATH") == "/usr/sbin:/usr/bin:/sbin:/bin");
  CHECK(env.at("PORTALWATCH_HOOK") == "recorder");
  CHECK(env.at("PORTALWATCH_DECISION_ID") == d.id_string());
  CHECK(env.at("PORTALWATCH_ACTION") == "reauthenticate");
  CHECK(env.at("PORTALWATCH_STATE") == "on");
  CHECK(env.at("PORTALWATCH_SCOPE_TYPE") == "user");
  CHECK(env.at("PORTALWATCH_SCOPE_VALUE") == "jdoe42");
  CHECK(env.at("PORTALWATCH_BY") == "policy:savings-accounts-under-attack");
  CHECK(env.at("PORTALWATCH_REASON") == "account_takeover x3 on hsa in 10m");
  CHECK(env.at("PORTALWATCH_AT") == "2026-12-23T14:06:02.000Z");
  CHECK(env.at("PORTALWATCH_EXPIRES") == "2026-12-23T15:06:02.000Z");
  CHECK(env.at("PORTALWATCH_DRY_RUN") == "false");
  CHECK(env.at("PORTALWATCH_FINDINGS") == "f-000000000040 f-000000000042");
  CHECK(env.at("OUT") == dir.path);
  CHECK(env.at("PORTALWATCH_TEST_INHERITED") == "from the daemon");
  CHECK(env.count("PORTALWATCH_TEST_NOT_INHERITED") == 0);
  CHECK(env.count("NOT_SET_ANYWHERE") == 0);
  CHECK(env.count("HOME") == 0);
  // /proc/PID/environ is what the program was started with: every variable is one of ours.
  for (const auto& entry : env) {
    const std::string& name = entry.first;
    CHECK_MESSAGE((name.rfind("PORTALWATCH_", 0) == 0 || name == "PATH" || name == "OUT" ||
                   name == "LEAK_FD"),
                  name);
  }
}

TEST_CASE("hooks exec: a user name full of shell metacharacters reaches the hook only as data") {
  TempDir dir;
  const std::string canary = dir / "canary";
  const std::string name = evil_user_name(canary);
  const std::string script = test::write_script(dir, "hook", R"(#!/bin/sh
cat > "$OUT/stdin"
printf '%s' "$PORTALWATCH_SCOPE_VALUE" > "$OUT/value"
)");
  const Decision d =
      make_decision(ScopeType::kUser, name, true, 9, DecisionAction::kReauthenticate);
  // The shipped IdP hook, against a local server standing in for the identity provider.
  test::TestHttpServer idp({});
  auto idp_hook = exec_hook(
      "idp", {std::string(PORTALWATCH_SOURCE_DIR) + "/deploy/hooks/idp-revoke-sessions"},
      {{"IDP_REVOKE_URL", "http://127.0.0.1:" + std::to_string(idp.port()) + "/admin/revoke"}});

  Results results;
  prometheus::Registry registry;
  {
    HookRunner runner({exec_hook("recorder", {script}, {{"OUT", dir.path}}), idp_hook}, registry,
                      results.callback());
    CHECK(runner.submit(d));
    const auto r = results.wait(2);
    REQUIRE(r.size() == 2);
    for (const auto& one : r)
      CHECK_MESSAGE(one.outcome == HookOutcome::kSuccess, one.hook, ": ", one.detail);
    // Metric labels are hook names and fixed words, never the user name.
    for (const auto& family : registry.Collect())
      for (const auto& metric : family.metric)
        for (const auto& label : metric.label)
          CHECK(label.value.find("touch") == std::string::npos);
  }
  CHECK(test::read_file(dir / "value") == name);
  CHECK(test::read_file(dir / "stdin") == d.to_json() + "\n");
  const auto requests = idp.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "POST");
  CHECK(requests[0].target == "/admin/revoke");
  CHECK(requests[0].headers.at("content-type") == "application/json");
  // json.dumps escapes nothing in this ASCII name but the quote and the backslash.
  std::string expected_json_name;
  for (char c : name) {
    if (c == '"' || c == '\\') expected_json_name.push_back('\\');
    expected_json_name.push_back(c);
  }
  CHECK(requests[0].body.find("\"username\": \"" + expected_json_name + "\"") != std::string::npos);
  CHECK_FALSE(test::exists(canary));
}

TEST_CASE("hooks exec: a hook that hangs is killed at its timeout, with everything it started") {
  TempDir dir;
  // A child that outlives its parent unless the whole process group is signalled.
  const std::string spawner = test::write_script(dir, "spawner", R"(#!/bin/sh
/bin/sleep 60 &
echo $! > "$OUT/child"
wait
)");
  // Ignores SIGTERM (and so does its child, which inherits the ignored disposition): only SIGKILL
  // ends them.
  const std::string stubborn = test::write_script(dir, "stubborn", R"(#!/bin/sh
trap '' TERM
/bin/sleep 60 &
echo $! > "$OUT/stubborn-child"
wait
wait
)");
  std::vector<HookConfig> hooks = {exec_hook("sleep", {"/bin/sleep", "60"}),
                                   exec_hook("spawner", {spawner}, {{"OUT", dir.path}}),
                                   exec_hook("stubborn", {stubborn}, {{"OUT", dir.path}})};
  for (auto& h : hooks) h.timeout = 300ms;

  Results results;
  prometheus::Registry registry;
  const auto t0 = SteadyClock::now();
  {
    HookRunner runner(hooks, registry, results.callback());
    CHECK(runner.submit(make_decision(ScopeType::kGlobal, "")));
    const auto r = results.wait(3);
    REQUIRE(r.size() == 3);
    // 300 ms, plus up to 300 ms of grace for the stubborn one; each hook has its own workers.
    CHECK(elapsed_since(t0) < 2.0);
    for (const auto& one : r) {
      CHECK_MESSAGE(one.outcome == HookOutcome::kTimeout, one.hook, ": ", one.detail);
      CHECK(one.duration.count() >= 0.29);
      if (one.hook == "stubborn")
        CHECK(one.detail.find("SIGKILL") != std::string::npos);
      else
        CHECK(one.detail.find("SIGKILL") == std::string::npos);
    }
    for (std::size_t i = 0; i < 3; ++i) {
      CHECK(test::counter(runner, i, HookOutcome::kTimeout) == 1);
      CHECK(runner.metrics().hooks[i].last_exit_code->Value() >= 128);  // killed by a signal
    }
  }
  for (const char* file : {"child", "stubborn-child"}) {
    const std::string pid_text = test::read_file(dir / file);
    REQUIRE_MESSAGE(!pid_text.empty(), file);
    const pid_t child = static_cast<pid_t>(std::stol(pid_text));
    // The group's SIGKILL has been sent before the result was reported; the kernel may take a
    // moment to finish the process off.
    const auto deadline = SteadyClock::now() + 2s;
    while (!test::process_gone(child) && SteadyClock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    CHECK_MESSAGE(test::process_gone(child), file, " ", child, " still runs");
  }
}

TEST_CASE(
    "hooks exec: a failing hook is retried with backoff, then reported with its exit status and "
    "output") {
  TempDir dir;
  const std::string script = test::write_script(dir, "fail", R"(#!/bin/sh
echo attempt >> "$OUT/attempts"
echo "the IdP said no" >&2
exit 3
)");
  auto h = exec_hook("failing", {script}, {{"OUT", dir.path}});
  h.retries = 2;
  h.backoff_initial = 50ms;  // then 100 ms
  h.backoff_max = 1s;
  Results results;
  prometheus::Registry registry;
  const auto t0 = SteadyClock::now();
  HookRunner runner({h}, registry, results.callback());
  CHECK(runner.submit(make_decision(ScopeType::kGlobal, "")));
  const auto r = results.wait(1);
  REQUIRE(r.size() == 1);
  CHECK(elapsed_since(t0) >= 0.15);
  CHECK(r[0].outcome == HookOutcome::kFailure);
  CHECK(r[0].attempts == 3);
  CHECK(r[0].detail == "exit status 3");
  CHECK(test::read_file(dir / "attempts") == "attempt\nattempt\nattempt\n");
  CHECK(test::counter(runner, 0, HookOutcome::kRetry) == 2);
  CHECK(test::counter(runner, 0, HookOutcome::kFailure) == 1);
  CHECK(test::counter(runner, 0, HookOutcome::kSuccess) == 0);
  CHECK(runner.metrics().hooks[0].last_exit_code->Value() == 3);
  CHECK(runner.metrics().hooks[0].duration->Collect().histogram.sample_count == 3);

  // The captured output, as the log shows it.
  HookAttemptContext ctx;
  const auto attempt = run_exec_hook(h, make_decision(ScopeType::kGlobal, ""), "{}", ctx);
  CHECK(attempt.output == "stderr: the IdP said no");
  // A program that cannot start is a failure, not a crash.
  auto missing = exec_hook("missing", {dir / "does-not-exist"});
  const auto not_started = run_exec_hook(missing, make_decision(ScopeType::kGlobal, ""), "{}", ctx);
  CHECK(not_started.status == HookAttemptResult::Status::kFailure);
  CHECK(not_started.detail.find("No such file") != std::string::npos);
}

TEST_CASE(
    "hooks exec: output past 4 KiB is read and counted, not kept; a hook closing stdin early is "
    "fine") {
  TempDir dir;
  // Writes 100 KB without reading stdin (a pipe would fill and block it if nobody read).
  const std::string script = test::write_script(dir, "chatty", R"(#!/bin/sh
exec 0<&-
i=0
while [ $i -lt 2000 ]; do
  echo "0123456789012345678901234567890123456789012345678"
  i=$((i + 1))
done
)");
  const auto h = exec_hook("chatty", {script});
  HookAttemptContext ctx;
  std::string big_json(200'000, 'x');  // more than a pipe holds
  const auto r = run_exec_hook(h, make_decision(ScopeType::kGlobal, ""), big_json, ctx);
  CHECK(r.status == HookAttemptResult::Status::kSuccess);
  CHECK(r.output.find("stdout: 0123") == 0);
  CHECK(r.output.find("more bytes]") != std::string::npos);
  CHECK(r.output.size() < 2 * kHookOutputLimit);
}

namespace {

std::string hmac_hex(const std::string& key, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  std::string hex;
  char byte[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(byte, sizeof byte, "%02x", mac[i]);
    hex += byte;
  }
  return hex;
}

HookConfig webhook(std::string name, const std::string& url) {
  HookConfig h;
  h.name = std::move(name);
  h.type = HookType::kWebhook;
  h.webhook.url = url;
  const auto scheme_end = url.find("://") + 3;
  h.webhook.tls = url.rfind("https", 0) == 0;
  const auto path = url.find('/', scheme_end);
  const std::string authority = url.substr(scheme_end, path - scheme_end);
  h.webhook.host = authority.substr(0, authority.rfind(':'));
  h.webhook.port = authority.substr(authority.rfind(':') + 1);
  h.webhook.target = path == std::string::npos ? "/" : url.substr(path);
  h.timeout = 2s;
  h.retries = 0;
  h.backoff_initial = 10ms;
  h.backoff_max = 100ms;
  return h;
}

std::string local_url(const char* scheme, unsigned short port, const char* host = "127.0.0.1") {
  return std::string(scheme) + "://" + host + ":" + std::to_string(port) + "/hooks/portalwatch";
}

}  // namespace

TEST_CASE(
    "hooks webhook: the decision JSON is POSTed with an HMAC-SHA256 signature and fixed headers") {
  test::TestHttpServer server({});
  auto h = webhook("siem", local_url("http", server.port()));
  h.webhook.hmac_secret = "s3cret key";
  h.webhook.headers = {{"X-Tenant", "hr-portal"}};
  const Decision d = make_decision(ScopeType::kApp, "hsa", true, 12);
  Results results;
  prometheus::Registry registry;
  HookRunner runner({h}, registry, results.callback());
  CHECK(runner.submit(d));
  const auto r = results.wait(1);
  REQUIRE(r.size() == 1);
  CHECK_MESSAGE(r[0].outcome == HookOutcome::kSuccess, r[0].detail);
  CHECK(r[0].detail == "HTTP 200 OK");
  const auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  const auto& req = requests[0];
  CHECK(req.method == "POST");
  CHECK(req.target == "/hooks/portalwatch");
  CHECK(req.body == d.to_json());
  CHECK(req.headers.at("content-type") == "application/json");
  CHECK(req.headers.at("host") == "127.0.0.1:" + std::to_string(server.port()));
  CHECK(req.headers.at("x-tenant") == "hr-portal");
  // Verified independently of the code under test.
  CHECK(req.headers.at("x-portalwatch-signature") == "sha256=" + hmac_hex("s3cret key", req.body));
  CHECK(
      webhook_signature("key", "The quick brown fox jumps over the lazy dog") ==
      "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");  // the well-known
                                                                                   // example
}

TEST_CASE("hooks webhook: a target that is down is retried, then reported as a failure") {
  const unsigned short port = test::closed_port();
  auto h = webhook("down", local_url("http", port));
  h.retries = 2;
  Results results;
  prometheus::Registry registry;
  HookRunner runner({h}, registry, results.callback());
  CHECK(runner.submit(make_decision(ScopeType::kGlobal, "")));
  const auto r = results.wait(1);
  REQUIRE(r.size() == 1);
  CHECK(r[0].outcome == HookOutcome::kFailure);
  CHECK(r[0].attempts == 3);
  CHECK(r[0].detail.find("cannot connect") != std::string::npos);
  CHECK(r[0].detail.find("refused") != std::string::npos);
  CHECK(test::counter(runner, 0, HookOutcome::kRetry) == 2);
  CHECK(test::counter(runner, 0, HookOutcome::kFailure) == 1);
}

TEST_CASE("hooks webhook: a non-2xx answer fails; a server that never answers hits the timeout") {
  test::TestHttpServer refusing({503});
  test::TestHttpServer hanging({200, true});
  auto refused = webhook("refused", local_url("http", refusing.port()));
  auto hung = webhook("hung", local_url("http", hanging.port()));
  hung.timeout = 300ms;
  Results results;
  prometheus::Registry registry;
  const auto t0 = SteadyClock::now();
  HookRunner runner({refused, hung}, registry, results.callback());
  CHECK(runner.submit(make_decision(ScopeType::kGlobal, "")));
  auto r = results.wait(2);
  REQUIRE(r.size() == 2);
  CHECK(elapsed_since(t0) < 1.5);
  std::sort(r.begin(), r.end(), [](const auto& a, const auto& b) { return a.hook < b.hook; });
  CHECK(r[0].hook == "hung");
  CHECK(r[0].outcome == HookOutcome::kTimeout);
  CHECK(r[0].detail == "timed out after 300 ms waiting for the response");
  CHECK(r[1].outcome == HookOutcome::kFailure);
  CHECK(r[1].detail == "HTTP 503 Service Unavailable: test server says hello\\n");
  CHECK(hanging.requests().size() == 1);
}

TEST_CASE("hooks webhook: HTTPS verifies the server's certificate and name") {
  TempDir dir;
  const std::string key = dir / "key.pem", cert = dir / "cert.pem";
  const std::string openssl = PORTALWATCH_OPENSSL_CLI;
  if (openssl.empty()) {
    MESSAGE("no openssl command (Debian package openssl): HTTPS tests skipped");
    return;
  }
  // A self-signed certificate for localhost only (not for 127.0.0.1).
  REQUIRE(test::run_program({openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                             "-days", "2", "-subj", "/CN=localhost", "-addext",
                             "subjectAltName=DNS:localhost"}) == 0);
  boost::asio::ssl::context tls(boost::asio::ssl::context::tls_server);
  tls.use_certificate_chain_file(cert);
  tls.use_private_key_file(key, boost::asio::ssl::context::pem);
  test::TestHttpServer server({200, false, &tls});

  auto trusted = webhook("trusted", local_url("https", server.port(), "localhost"));
  trusted.webhook.ca_file = cert;
  auto untrusted =
      webhook("untrusted", local_url("https", server.port(), "localhost"));  // system CAs
  auto wrong_name = webhook("wrong-name", local_url("https", server.port(), "127.0.0.1"));
  wrong_name.webhook.ca_file = cert;
  auto plain_to_tls = webhook("plain", local_url("http", server.port()));
  plain_to_tls.timeout = 500ms;

  Results results;
  prometheus::Registry registry;
  HookRunner runner({trusted, untrusted, wrong_name, plain_to_tls}, registry, results.callback());
  CHECK(runner.submit(make_decision(ScopeType::kGlobal, "")));
  auto r = results.wait(4);
  REQUIRE(r.size() == 4);
  std::map<std::string, Results::Copy> by_hook;
  for (auto& one : r) by_hook.emplace(one.hook, one);
  CHECK_MESSAGE(by_hook.at("trusted").outcome == HookOutcome::kSuccess,
                by_hook.at("trusted").detail);
  CHECK(by_hook.at("untrusted").outcome == HookOutcome::kFailure);
  CHECK(by_hook.at("untrusted").detail.find("certificate rejected: self-signed certificate") !=
        std::string::npos);
  CHECK(by_hook.at("wrong-name").outcome == HookOutcome::kFailure);
  CHECK(by_hook.at("wrong-name").detail.find("certificate rejected: IP address mismatch") !=
        std::string::npos);
  CHECK(by_hook.at("plain").outcome != HookOutcome::kSuccess);
  // Only the trusted hook's request got through.
  CHECK(server.requests().size() == 1);
}

TEST_CASE("hooks file: on writes the decision atomically, off removes, both idempotent") {
  TempDir dir;
  HookConfig h;
  h.name = "maintenance";
  h.type = HookType::kFile;
  h.file.path = dir / "on";
  h.file.mode = 0640;
  const Decision on = make_decision(ScopeType::kGlobal, "", true, 1);
  const Decision off = make_decision(ScopeType::kGlobal, "", false, 2);

  auto r = run_file_hook(h, on, on.to_json());
  CHECK_MESSAGE(r.status == HookAttemptResult::Status::kSuccess, r.detail);
  CHECK(test::read_file(dir / "on") == on.to_json() + "\n");
  struct stat st {};
  REQUIRE(::stat((dir / "on").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  // Again: replaced, still whole.
  Decision on_again = on;
  on_again.seq = 3;
  CHECK(run_file_hook(h, on_again, on_again.to_json()).status ==
        HookAttemptResult::Status::kSuccess);
  CHECK(test::read_file(dir / "on") == on_again.to_json() + "\n");
  // Nothing else is left in the directory (no temporary files).
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path), {}) == 1);
  CHECK(run_file_hook(h, off, off.to_json()).status == HookAttemptResult::Status::kSuccess);
  CHECK_FALSE(test::exists(dir / "on"));
  r = run_file_hook(h, off, off.to_json());
  CHECK(r.status == HookAttemptResult::Status::kSuccess);  // already off
  // A directory that does not exist is a failure worth retrying.
  h.file.path = dir / "missing/on";
  r = run_file_hook(h, on, on.to_json());
  CHECK(r.status == HookAttemptResult::Status::kFailure);
  CHECK_FALSE(r.permanent);
  CHECK(r.detail.find("No such file or directory") != std::string::npos);
}

TEST_CASE(
    "hooks file: {app} is filled only with a valid app name, never with a user name or address") {
  TempDir dir;
  FileHookConfig f;
  f.path = dir / "apps/{app}.off";
  CHECK(file_hook_path(f, make_decision(ScopeType::kApp, "hsa")) == dir / "apps/hsa.off");
  CHECK(file_hook_path(f, make_decision(ScopeType::kApp, "direct_deposit-2")) ==
        dir / "apps/direct_deposit-2.off");
  std::string why;
  CHECK_FALSE(file_hook_path(f, make_decision(ScopeType::kApp, "../../etc/passwd"), &why));
  CHECK(why.find("app name") != std::string::npos);
  CHECK_FALSE(file_hook_path(f, make_decision(ScopeType::kApp, "HSA")));
  CHECK_FALSE(file_hook_path(f, make_decision(ScopeType::kApp, "")));
  CHECK_FALSE(file_hook_path(f, make_decision(ScopeType::kUser, "jdoe42")));
  CHECK_FALSE(file_hook_path(f, make_decision(ScopeType::kIp, "203.0.113.9")));
  // Without {app} the path is what configuration says, whatever the decision.
  f.path = dir / "flag";
  CHECK(file_hook_path(f, make_decision(ScopeType::kUser, "../../x")) == dir / "flag");

  // Through the runner: a bad app name is not retried and touches nothing.
  ::mkdir((dir / "apps").c_str(), 0700);
  HookConfig h;
  h.name = "per-app";
  h.type = HookType::kFile;
  h.file.path = dir / "apps/{app}.off";
  h.on.scopes = {false, true, false, false};
  h.retries = 3;
  Results results;
  prometheus::Registry registry;
  HookRunner runner({h}, registry, results.callback());
  CHECK(runner.submit(make_decision(ScopeType::kApp, "w2", true, 1)));
  CHECK(runner.submit(make_decision(ScopeType::kApp, "../w2", true, 2)));
  CHECK(runner.submit(make_decision(ScopeType::kUser, "w2", true, 3)));  // not for this hook
  const auto r = results.wait(2);
  REQUIRE(r.size() == 2);
  std::map<std::uint64_t, Results::Copy> by_id;
  for (const auto& one : r) by_id.emplace(one.decision->seq, one);
  CHECK(by_id.at(1).outcome == HookOutcome::kSuccess);
  CHECK(by_id.at(2).outcome == HookOutcome::kFailure);
  CHECK(by_id.at(2).attempts == 1);
  CHECK(test::exists(dir / "apps/w2.off"));
  CHECK(std::distance(std::filesystem::directory_iterator(dir / "apps"), {}) == 1);
}

TEST_CASE(
    "hooks runner: a full queue drops and counts; submit never blocks while a hook hangs; stop "
    "kills") {
  auto h = exec_hook("hanging", {"/bin/sleep", "60"});
  h.timeout = 30s;
  h.concurrency = 1;
  h.queue_capacity = 2;
  HookConfig quick;
  quick.name = "quick";
  quick.type = HookType::kFile;
  TempDir dir;
  quick.file.path = dir / "flag";

  Results results;
  prometheus::Registry registry;
  HookRunner runner({h, quick}, registry, results.callback());
  const auto t0 = SteadyClock::now();
  int accepted = 0;
  for (int i = 0; i < 50; ++i)
    accepted +=
        runner.submit(make_decision(ScopeType::kUser, "u" + std::to_string(i), true, i + 1));
  CHECK(elapsed_since(t0) < 0.5);  // fifty submissions while the first hangs
  CHECK(accepted == 2);            // the hanging hook took two (one running, one queued) ...
  CHECK(test::counter(runner, 0, HookOutcome::kDropped) == 48);
  CHECK(runner.metrics().hooks[0].queue_depth->Value() == 2);
  // ... and dropped the rest, while the other hook, with its own queue and workers, ran them all.
  const auto deadline = SteadyClock::now() + 5s;
  while (test::counter(runner, 1, HookOutcome::kSuccess) < 50 && SteadyClock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  CHECK(test::counter(runner, 1, HookOutcome::kSuccess) == 50);

  const auto t1 = SteadyClock::now();
  runner.stop(100ms);
  CHECK(elapsed_since(t1) < 1.5);  // the grace, then the hanging process killed (300 ms kill grace)
  // The running one failed (killed), the queued one was dropped at stop.
  CHECK(test::counter(runner, 0, HookOutcome::kDropped) == 49);
  CHECK(test::counter(runner, 0, HookOutcome::kFailure) == 1);
  CHECK(runner.metrics().hooks[0].queue_depth->Value() == 0);
  CHECK_FALSE(runner.submit(make_decision(ScopeType::kGlobal, "")));
  // Every decision has a result for each hook, and the one submitted after stop() too.
  const auto all = results.wait(50 + 50 + 2);
  CHECK(all.size() == 102);
}

TEST_CASE("hooks runner: one target's decisions run in order; different targets in parallel") {
  TempDir dir;
  // "on" is slow and "off" fast: without ordering an off would overtake its on.
  const std::string script = test::write_script(dir, "ordered", R"(#!/bin/sh
if [ "$PORTALWATCH_STATE" = on ]; then /bin/sleep 0.1; fi
printf '%s %s\n' "$PORTALWATCH_SCOPE_VALUE" "$PORTALWATCH_STATE" >> "$OUT/log"
)");
  auto h = exec_hook("ordered", {script}, {{"OUT", dir.path}});
  h.concurrency = 4;
  Results results;
  prometheus::Registry registry;
  HookRunner runner({h}, registry, results.callback());
  const auto t0 = SteadyClock::now();
  std::uint64_t id = 1;
  for (int round = 0; round < 2; ++round)
    for (const char* user : {"alice", "bob", "carol", "dave"}) {
      CHECK(runner.submit(make_decision(ScopeType::kUser, user, true, id++)));
      CHECK(runner.submit(make_decision(ScopeType::kUser, user, false, id++)));
    }
  REQUIRE(results.wait(16).size() == 16);
  // Four users in parallel, each on-off-on-off in turn: about 2 × 100 ms, not 8 × 100 ms.
  CHECK(elapsed_since(t0) < 0.75);
  std::map<std::string, std::string> per_user;
  std::istringstream log(test::read_file(dir / "log"));
  for (std::string user, state; log >> user >> state;) per_user[user] += state + " ";
  REQUIRE(per_user.size() == 4);
  for (const auto& entry : per_user) CHECK_MESSAGE(entry.second == "on off on off ", entry.first);
}

TEST_CASE(
    "hooks runner: filters by scope, state and action; dry-run decisions only where allowed") {
  TempDir dir;
  HookConfig global_only;
  global_only.name = "global-on";
  global_only.type = HookType::kFile;
  global_only.file.path = dir / "global";
  global_only.on.scopes = {true, false, false, false};
  global_only.on.state_off = false;
  HookConfig reauth = global_only;
  reauth.name = "reauth";
  reauth.file.path = dir / "reauth";
  reauth.on = HookFilter{};
  reauth.on.actions = {false, true};
  reauth.run_in_dry_run = true;

  Results results;
  prometheus::Registry registry;
  HookRunner runner({global_only, reauth}, registry, results.callback());
  Decision dry = make_decision(ScopeType::kGlobal, "", true, 1);
  dry.dry_run = true;
  runner.submit(dry);                                              // neither
  runner.submit(make_decision(ScopeType::kGlobal, "", false, 2));  // neither (off)
  runner.submit(make_decision(ScopeType::kUser, "x", true, 3));    // neither
  Decision dry_reauth =
      make_decision(ScopeType::kUser, "x", true, 4, DecisionAction::kReauthenticate);
  dry_reauth.dry_run = true;
  runner.submit(dry_reauth);                                      // reauth
  runner.submit(make_decision(ScopeType::kGlobal, "", true, 5));  // global-on
  const auto r = results.wait(2);
  REQUIRE(r.size() == 2);
  runner.stop(1s);
  CHECK(results.size() == 2);
  std::map<std::string, std::uint64_t> ids;
  for (const auto& one : r) ids[one.hook] = one.decision->seq;
  CHECK(ids.at("reauth") == 4);
  CHECK(ids.at("global-on") == 5);
}

TEST_CASE("hooks runner: stop lets queued work finish within the grace period") {
  TempDir dir;
  const std::string script = test::write_script(dir, "slowish", R"(#!/bin/sh
/bin/sleep 0.05
echo done >> "$OUT/done"
)");
  auto h = exec_hook("slowish", {script}, {{"OUT", dir.path}});
  h.concurrency = 1;
  Results results;
  prometheus::Registry registry;
  HookRunner runner({h}, registry, results.callback());
  for (int i = 0; i < 4; ++i)
    runner.submit(make_decision(ScopeType::kApp, "hsa", i % 2 == 0, i + 1));
  runner.stop(5s);
  CHECK(test::read_file(dir / "done") == "done\ndone\ndone\ndone\n");
  CHECK(test::counter(runner, 0, HookOutcome::kSuccess) == 4);
  CHECK(runner.metrics().hooks[0].start_latency->Collect().histogram.sample_count == 4);
}

TEST_CASE(
    "hooks deploy: nginx-maintenance switches the global and per-app flags and refuses bad app "
    "names") {
  TempDir dir;
  const std::string script =
      std::string(PORTALWATCH_SOURCE_DIR) + "/deploy/hooks/nginx-maintenance";
  auto h = exec_hook("nginx", {script}, {{"MAINTENANCE_DIR", dir.path}});
  HookAttemptContext ctx;
  const auto run = [&](const Decision& d) { return run_exec_hook(h, d, d.to_json(), ctx); };

  CHECK(run(make_decision(ScopeType::kGlobal, "", true)).status ==
        HookAttemptResult::Status::kSuccess);
  CHECK(test::exists(dir / "on"));
  CHECK(run(make_decision(ScopeType::kGlobal, "", true)).status ==
        HookAttemptResult::Status::kSuccess);
  CHECK(run(make_decision(ScopeType::kApp, "hsa", true)).status ==
        HookAttemptResult::Status::kSuccess);
  CHECK(test::exists(dir / "apps/hsa"));
  CHECK(run(make_decision(ScopeType::kGlobal, "", false)).status ==
        HookAttemptResult::Status::kSuccess);
  CHECK_FALSE(test::exists(dir / "on"));
  CHECK(run(make_decision(ScopeType::kGlobal, "", false)).status ==
        HookAttemptResult::Status::kSuccess);
  CHECK(run(make_decision(ScopeType::kApp, "hsa", false)).status ==
        HookAttemptResult::Status::kSuccess);
  CHECK_FALSE(test::exists(dir / "apps/hsa"));

  const std::string canary = dir / "canary";
  const auto bad = run(make_decision(ScopeType::kApp, "../x;touch " + canary, true));
  CHECK(bad.status == HookAttemptResult::Status::kFailure);
  CHECK(bad.exit_code == 2);
  CHECK_FALSE(test::exists(canary));
  // A user-scope decision is not this hook's business: nothing happens.
  const auto user = run(make_decision(ScopeType::kUser, evil_user_name(canary), true));
  CHECK(user.status == HookAttemptResult::Status::kSuccess);
  CHECK_FALSE(test::exists(canary));
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path), {}) == 1);  // apps/

  // With NGINX_RELOAD=yes the reload runs only when a flag changed.
  const std::string fake_nginx = test::write_script(dir, "fake-nginx", R"(#!/bin/sh
echo "$*" >> "$OUT/reloads"
)");
  h.exec.env = {{"MAINTENANCE_DIR", dir.path},
                {"NGINX_RELOAD", "yes"},
                {"NGINX_BIN", fake_nginx},
                {"OUT", dir.path}};
  CHECK(run(make_decision(ScopeType::kGlobal, "", true)).status ==
        HookAttemptResult::Status::kSuccess);
  CHECK(run(make_decision(ScopeType::kGlobal, "", true)).status ==
        HookAttemptResult::Status::kSuccess);
  CHECK(run(make_decision(ScopeType::kGlobal, "", false)).status ==
        HookAttemptResult::Status::kSuccess);
  CHECK(test::read_file(dir / "reloads") == "-s reload\n-s reload\n");
}

}  // namespace portalwatch
