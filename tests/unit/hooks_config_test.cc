// The `hooks:` section: every kind of hook read with its defaults, and every mistake reported at
// its file:line:col and key path, all at once.
#include <doctest/doctest.h>

#include "daemon/config.h"
#include "tests/unit/hook_test_support.h"

namespace portalwatch {

using test::TempDir;

namespace {

// Errors as "line:col: key.path: message" lines without the file name and the quoted source.
std::vector<std::string> error_lines(const std::string& errors) {
  std::vector<std::string> out;
  std::istringstream in(errors);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("hooks.yaml:", 0) == 0) out.push_back(line.substr(11));
  return out;
}

bool has_error(const std::vector<std::string>& lines, const std::string& start,
               const std::string& part) {
  for (const auto& l : lines)
    if (l.rfind(start, 0) == 0 && l.find(part) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("hooks config: none by default; each type read with its keys and defaults") {
  const ConfigResult none = load_config(std::nullopt);
  REQUIRE_MESSAGE(none.config, none.errors);
  CHECK(none.config->hooks.empty());

  TempDir dir;
  test::write_file(dir / "secret", "k3y\n");
  const ConfigResult r = load_config_text(R"y(
hooks:
  - name: maintenance-page
    type: exec
    on: {scopes: [global, app], states: [on, off], actions: [lockdown]}
    argv: [/bin/echo, "--mode", "$(not expanded)"]
    env: {MAINTENANCE_DIR: /var/www/portal-maintenance}
    inherit_env: [http_proxy]
    working_dir: /tmp
    timeout_ms: 5000
    kill_grace_ms: 500
    retries: 3
    backoff_initial_ms: 250
    backoff_max_ms: 4000
    queue_capacity: 50
    concurrency: 3
  - name: siem
    type: webhook
    url: "https://siem.example.org:8443/hooks/portalwatch?source=pw"
    hmac_secret_file: )y" + (dir / "secret") + R"y(
    headers: {X-Tenant: hr}
    run_in_dry_run: true
  - name: flag
    type: file
    path: /var/www/portal-maintenance/{app}
    mode: "0640"
  - name: plain
    type: webhook
    url: http://[::1]/x
)y",
                                          "hooks.yaml");
  REQUIRE_MESSAGE(r.config, r.errors);
  const auto& hooks = r.config->hooks;
  REQUIRE(hooks.size() == 4);

  const HookConfig& e = hooks[0];
  CHECK(e.type == HookType::kExec);
  CHECK(e.exec.argv == std::vector<std::string>{"/bin/echo", "--mode", "$(not expanded)"});
  CHECK(e.exec.env == std::vector<std::pair<std::string, std::string>>{
                          {"MAINTENANCE_DIR", "/var/www/portal-maintenance"}});
  CHECK(e.exec.inherit_env == std::vector<std::string>{"http_proxy"});
  CHECK(e.exec.working_dir == "/tmp");
  CHECK(e.timeout == std::chrono::milliseconds(5000));
  CHECK(e.exec.kill_grace == std::chrono::milliseconds(500));
  CHECK(e.retries == 3);
  CHECK(e.queue_capacity == 50);
  CHECK(e.concurrency == 3);
  CHECK(e.backoff(1) == std::chrono::milliseconds(250));
  CHECK(e.backoff(2) == std::chrono::milliseconds(500));
  CHECK(e.backoff(5) == std::chrono::milliseconds(4000));
  CHECK(e.backoff(50) == std::chrono::milliseconds(4000));
  CHECK(e.on.matches(test::make_decision(ScopeType::kApp, "hsa", false)));
  CHECK_FALSE(e.on.matches(test::make_decision(ScopeType::kUser, "x")));
  CHECK_FALSE(e.on.matches(
      test::make_decision(ScopeType::kGlobal, "", true, 1, DecisionAction::kReauthenticate)));
  CHECK_FALSE(e.run_in_dry_run);

  const HookConfig& w = hooks[1];
  CHECK(w.type == HookType::kWebhook);
  CHECK(w.webhook.tls);
  CHECK(w.webhook.host == "siem.example.org");
  CHECK(w.webhook.port == "8443");
  CHECK(w.webhook.target == "/hooks/portalwatch?source=pw");
  CHECK(w.webhook.hmac_secret == "k3y");  // the file's trailing newline dropped
  CHECK(w.webhook.signature_header == "X-Portalwatch-Signature");
  CHECK(w.webhook.headers.size() == 1);
  CHECK(w.run_in_dry_run);
  CHECK(w.timeout == std::chrono::milliseconds(10000));
  CHECK(w.retries == 2);
  CHECK(w.concurrency == 2);
  CHECK(w.queue_capacity == 1000);
  for (auto t : {ScopeType::kGlobal, ScopeType::kApp, ScopeType::kUser, ScopeType::kIp})
    CHECK(w.on.matches(test::make_decision(t, "x")));

  const HookConfig& f = hooks[2];
  CHECK(f.type == HookType::kFile);
  CHECK(f.file.path == "/var/www/portal-maintenance/{app}");
  CHECK(f.file.mode == 0640);
  // {app} in the path: app-scope decisions only.
  CHECK(f.on.matches(test::make_decision(ScopeType::kApp, "hsa")));
  CHECK_FALSE(f.on.matches(test::make_decision(ScopeType::kGlobal, "")));
  CHECK_FALSE(f.on.matches(test::make_decision(ScopeType::kUser, "hsa")));

  const HookConfig& p = hooks[3];
  CHECK_FALSE(p.webhook.tls);
  CHECK(p.webhook.host == "::1");
  CHECK(p.webhook.port == "80");
  CHECK(p.webhook.target == "/x");
}

TEST_CASE("hooks config: every mistake at its file:line:col and key path, all at once") {
  TempDir dir;
  const ConfigResult r = load_config_text(R"y(hooks:
  - name: a
    type: exce
  - name: relative
    type: exec
    argv: [nginx-maintenance, on]
  - name: missing-secret
    type: webhook
    url: https://hooks.example.org/x
    hmac_secret_file: )y" + (dir / "no-such-secret") +
                                              R"y(
  - name: bad-url
    type: webhook
    url: ftp://hooks.example.org/x
  - name: a
    type: file
    path: /var/run/flag
  - name: inline-secret
    type: webhook
    url: "http://user:pw@hooks.example.org:99999/x"
    hmac_secret: hunter2
  - name: user-in-path
    type: file
    path: /var/www/{app}/{user}
    on: {scopes: [app, user], states: [onn]}
  - name: "bad name with spaces"
    type: exec
    argv: [/bin/true]
    timeout: 5
    env: {PORTALWATCH_STATE: x, "1BAD": y}
  - type: exec
    argv: []
  - name: no-path
    type: file
    on: {scopes: []}
  - just a string
)y",
                                          "hooks.yaml");
  REQUIRE_FALSE(r.config);
  const auto lines = error_lines(r.errors);
  INFO(r.errors);
  CHECK(has_error(lines, "3:11: hooks[0].type: ",
                  "unknown hook type \"exce\" (exec, webhook or file); did you mean \"exec\"?"));
  CHECK(has_error(lines, "6:12: hooks[1].argv[0]: ", "argv[0] must be an absolute path"));
  CHECK(has_error(lines, "10:23: hooks[2].hmac_secret_file: ", "cannot read the HMAC secret file"));
  CHECK(has_error(lines, "10:23: hooks[2].hmac_secret_file: ", "No such file or directory"));
  CHECK(has_error(lines, "13:10: hooks[3].url: ", "expected an http:// or https:// URL"));
  CHECK(has_error(lines, "14:11: hooks[4].name: ", "duplicate hook name \"a\" (first at line 2)"));
  CHECK(has_error(lines, "19:10: hooks[5].url: ", "credentials in the URL"));
  CHECK(has_error(lines, "20:18: hooks[5].hmac_secret: ", "never written inline"));
  CHECK(has_error(lines, "23:11: hooks[6].path: ", "the only placeholder is {app}"));
  CHECK(has_error(lines, "24:18: hooks[6].on.scopes: ", "app-scope decisions only"));
  CHECK(has_error(lines, "24:40: hooks[6].on.states[0]: ",
                  "\"onn\" is not one of: on off (did you mean \"on\"?)"));
  CHECK(has_error(lines, "25:11: hooks[7].name: ", "a hook name is 1 to 64 letters"));
  CHECK(has_error(lines, "28:5: hooks[7].timeout: ",
                  "unknown key \"timeout\" (durations are in milliseconds: timeout_ms)"));
  CHECK(has_error(lines, "29:11: hooks[7].env.PORTALWATCH_STATE: ", "set by portalwatch"));
  CHECK(has_error(lines, "29:33: hooks[7].env.1BAD: ", "not an environment variable name"));
  CHECK(has_error(lines, "30:5: hooks[8]: ", "a hook needs a name"));
  CHECK(has_error(lines, "31:11: hooks[8].argv: ", "at least the program's absolute path"));
  CHECK(has_error(lines, "32:5: hooks[9]: ", "a file hook needs a path"));
  CHECK(has_error(lines, "34:18: hooks[9].on.scopes: ", "an empty list matches nothing"));
  CHECK(has_error(lines, "35:5: hooks[10]: ", "expected a hook"));
  CHECK(lines.size() == 19);
}

TEST_CASE("hooks config: type-specific checks") {
  TempDir dir;
  test::write_file(dir / "not-executable", "#!/bin/sh\n", 0600);
  test::write_file(dir / "empty-secret", "\n");
  test::write_file(dir / "world-writable", "#!/bin/sh\n", 0757);
  const ConfigResult r = load_config_text(R"y(hooks:
  - name: not-executable
    type: exec
    argv: [)y" + (dir / "not-executable") + R"y(]
    working_dir: relative/dir
  - name: missing-program
    type: exec
    argv: [/nonexistent/hook]
  - name: empty-secret
    type: webhook
    url: http://127.0.0.1:8080
    hmac_secret_file: )y" + (dir / "empty-secret") +
                                              R"y(
    ca_file: /etc/ssl/certs/ca-certificates.crt
    signature_header: "X Bad"
    headers: {Content-Type: text/plain, "X-Ok": "fine", X-Bad: "a\nb"}
  - name: world-writable
    type: file
    path: relative/flag
    mode: "0666"
  - name: no-type
    whatever: 1
  - name: world-writable-program
    type: exec
    argv: [)y" + (dir / "world-writable") + R"y(]
  - name: backoff
    type: file
    path: /tmp/x
    backoff_initial_ms: 1000
    backoff_max_ms: 10
    retries: 1000
    argv: [/bin/true]
)y",
                                          "hooks.yaml");
  REQUIRE_FALSE(r.config);
  const auto lines = error_lines(r.errors);
  INFO(r.errors);
  CHECK(has_error(lines, "4:12: hooks[0].argv[0]: ", "is not an executable file"));
  CHECK(has_error(lines, "5:18: hooks[0].working_dir: ", "must be an absolute path"));
  CHECK(has_error(lines, "8:12: hooks[1].argv[0]: ",
                  "cannot run \"/nonexistent/hook\": No such file or directory"));
  CHECK(has_error(lines, "12:23: hooks[2].hmac_secret_file: ", "is empty"));
  CHECK(has_error(lines, "13:14: hooks[2].ca_file: ", "ca_file is for https:// URLs"));
  CHECK(has_error(lines, "14:23: hooks[2].signature_header: ", "not an HTTP header name"));
  CHECK(has_error(lines, "15:15: hooks[2].headers.Content-Type: ", "set by portalwatch"));
  CHECK(has_error(lines, "15:64: hooks[2].headers.X-Bad: ", "no control characters"));
  CHECK(has_error(lines, "18:11: hooks[3].path: ", "path must be absolute"));
  CHECK(has_error(lines, "19:11: hooks[3].mode: ", "writable by everyone"));
  CHECK(has_error(lines, "20:5: hooks[4]: ", "a hook needs a type"));
  CHECK(has_error(lines, "24:12: hooks[5].argv[0]: ", "is writable by every user"));
  CHECK(has_error(lines, "29:21: hooks[6].backoff_max_ms: ", "less than backoff_initial_ms"));
  CHECK(has_error(lines, "30:14: hooks[6].retries: ", "out of range"));
  CHECK(has_error(lines, "31:5: hooks[6].argv: ", "unknown key \"argv\""));
  CHECK(lines.size() == 15);
}

TEST_CASE("hooks config: the shipped configuration's commented example is valid when uncommented") {
  std::ifstream in(std::string(PORTALWATCH_SOURCE_DIR) + "/config/portalwatch.yaml");
  REQUIRE(in);
  // The example is the commented block after "hooks:"; uncommented it must load (with the
  // example's secret file and programs replaced by ones that exist here).
  std::string text, line, example;
  bool in_hooks = false;
  while (std::getline(in, line)) {
    if (line.rfind("hooks:", 0) == 0) {
      in_hooks = true;
      example += "hooks:\n";
      continue;
    }
    if (in_hooks) {
      if (line.rfind("#   ", 0) == 0)
        example += line.substr(4) + "\n";
      else if (!line.empty() && line[0] != '#')
        in_hooks = false;
    }
  }
  REQUIRE_MESSAGE(example.size() > 100,
                  "no commented hooks example after hooks: in config/portalwatch.yaml");
  TempDir dir;
  test::write_file(dir / "secret", "example\n");
  const auto replace_all = [](std::string s, const std::string& from, const std::string& to) {
    for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size())
      s.replace(at, from.size(), to);
    return s;
  };
  example = replace_all(example, "/etc/portalwatch/webhook.secret", dir / "secret");
  example = replace_all(example, "/usr/local/lib/portalwatch/hooks/",
                        std::string(PORTALWATCH_SOURCE_DIR) + "/deploy/hooks/");
  const ConfigResult r = load_config_text(example, "hooks.yaml");
  CHECK_MESSAGE(r.config, example, "\n", r.errors);
}

}  // namespace portalwatch
