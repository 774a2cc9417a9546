// The operator control server with a fake handler: every command round-trips through the client
// library over a real Unix socket, the peer's uid reaches the handler and the audit log, followers
// receive what is published and a slow one is cut off without holding up publish(), a user without
// permission on the socket cannot connect, and remote control needs TLS and the right token.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/control_client.h"
#include "daemon/control_protocol.h"
#include "daemon/control_server.h"
#include "daemon/system_clock.h"

namespace portalwatch {

namespace {

using namespace std::chrono_literals;

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

/// Waits (polling) for something another thread does; fails the test after timeout.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

/// A temporary directory, removed with everything in it.
struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/portalwatch-control.XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    path = tmpl;
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  std::string path;
};

std::string finding_json(int i) {
  char id[32];
  std::snprintf(id, sizeof id, "f-%012d", i);
  return std::string(R"({"id":")") + id +
         R"(","detector":"brute_force","severity":"medium","entity":{"type":"user","value":"victim)" +
         std::to_string(i) +
         R"("},"at":"2026-12-23T14:05:00.000Z","window":{"start":"2026-12-23T13:55:00.000Z","end":"2026-12-23T14:05:00.000Z"},)"
         R"("summary":"10 failed logins in 10m","evidence":{"failures":10}})";
}

/// Answers every command in the documented result schemas and remembers who asked what.
class FakeHandler final : public ControlHandler {
 public:
  struct Call {
    ControlPeer peer;
    ControlRequest request;
  };

  ControlReply handle(const ControlPeer& peer, const ControlRequest& r) override {
    if (before_reply) before_reply(r);
    std::lock_guard lock(mu_);
    calls_.push_back({peer, r});
    if (override_reply_) return *override_reply_;
    switch (r.command) {
      case ControlCommand::kStatus:
        return ControlReply::success(
            R"({"version":"test","uptime_seconds":5,"health":"ok","health_reasons":[],"events_received":12,)"
            R"("consumer_lag":0,"lockdowns":[],"silenced":[],"recent_findings":[)" +
            finding_json(1) + R"(],"recent_decisions":[]})");
      case ControlCommand::kLockdown: {
        const bool changed = (lockdowns_.count(r.scope.key()) > 0) != r.on;
        if (r.on) {
          lockdowns_.insert(r.scope.key());
        } else {
          lockdowns_.erase(r.scope.key());
        }
        Decision d;
        d.seq = ++decisions_;
        d.on = r.on;
        d.scope = r.scope;
        d.at = SystemClock().now();
        d.by = peer.operator_name();
        d.reason = r.reason;
        if (r.ttl_seconds > 0) d.expires = d.at + r.ttl_seconds * kSecondMs;
        return ControlReply::success(R"({"decision":)" + d.to_json() + R"(,"changed":)" +
                                     (changed ? "true" : "false") + "}");
      }
      case ControlCommand::kFindings:
      case ControlCommand::kDecisions: {
        std::string items;
        for (int i = 1; i <= std::min(r.limit, 3); ++i)
          items += (i > 1 ? "," : "") + finding_json(i);
        return ControlReply::success(R"({"items":[)" + items + "]}");
      }
      case ControlCommand::kAllowlist: {
        if (r.op == AllowlistOp::kAdd) allowlist_.push_back(r.network.to_string());
        if (r.op == AllowlistOp::kRemove) std::erase(allowlist_, r.network.to_string());
        std::string networks;
        for (const auto& n : allowlist_)
          networks += std::string(networks.empty() ? "" : ",") + R"({"network":")" + n +
                      R"(","comment":"","by":")" + peer.operator_name() +
                      R"(","at":"2026-12-23T14:00:00.000Z"})";
        return ControlReply::success(R"({"networks":[)" + networks + "]}");
      }
      case ControlCommand::kSilence:
        if (r.detector == "unknown_detector")
          return ControlReply::failure(control_error::kFailed,
                                       "no detector named unknown_detector");
        return ControlReply::success(R"({"detector":")" + r.detector + R"(","until":")" +
                                     format_rfc3339(SystemClock().now() + r.seconds * kSecondMs) +
                                     R"("})");
      case ControlCommand::kReload:
        return ControlReply::success(R"({"reloaded":true,"errors":[]})");
    }
    return ControlReply::failure(control_error::kFailed, "unreachable");
  }

  std::vector<Call> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }

  /// Every later call answers this.
  void answer_with(ControlReply reply) {
    std::lock_guard lock(mu_);
    override_reply_ = std::move(reply);
  }

  std::function<void(const ControlRequest&)> before_reply;  ///< set before the server starts

 private:
  mutable std::mutex mu_;
  std::optional<ControlReply> override_reply_;
  std::vector<Call> calls_;
  std::set<std::string> lockdowns_;
  std::vector<std::string> allowlist_;
  std::uint64_t decisions_ = 0;
};

ControlConfig unix_config(const TempDir& dir) {
  ControlConfig c;
  c.socket = dir / "control.sock";
  c.audit_log = dir / "audit.jsonl";
  return c;
}

std::unique_ptr<ControlClient> connect(const std::string& path) {
  ControlConnectError error;
  auto client = ControlClient::connect_unix(path, error, 5000ms);
  INFO(error.message);
  REQUIRE(client);
  return client;
}

ControlRequest request(std::string_view line) {
  auto r = parse_control_request(line);
  REQUIRE_MESSAGE(r.request, r.error);
  return *r.request;
}

std::string my_user_name() {
  const passwd* pw = ::getpwuid(::getuid());
  return pw ? pw->pw_name : std::to_string(::getuid());
}

/// Runs fn in a child process as nobody (uid and gid 65534, no supplementary groups) and returns
/// its exit code. Only system calls in the child: the parent has threads.
int as_nobody(const std::function<int()>& fn) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
    ::_exit(fn());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

/// connect() to a Unix socket with system calls only; 0 or the errno.
int raw_connect(const char* path, int& fd) {
  fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  return ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? 0 : errno;
}

bool have_openssl_cli() { return std::system("openssl version > /dev/null 2>&1") == 0; }

/// A self-signed certificate for 127.0.0.1 and localhost, by the openssl command line tool.
void make_certificate(const TempDir& dir, const std::string& name) {
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj "
      "/CN=localhost "
      "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout '" +
      (dir / (name + ".key")) + "' -out '" + (dir / (name + ".pem")) + "' > /dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

void write_token(const std::string& path, const std::string& token, mode_t mode = 0600) {
  std::ofstream(path) << token << "\n";
  ::chmod(path.c_str(), mode);
}

}  // namespace

TEST_CASE(
    "control: every command round-trips over the Unix socket; the peer's uid reaches the handler "
    "and the audit log") {
  TempDir dir;
  SystemClock clock;
  FakeHandler handler;
  ControlServer server(clock);
  ControlConfig config = unix_config(dir);
  std::string error;
  REQUIRE_MESSAGE(server.start(config, handler, error), error);

  struct stat st {};
  REQUIRE(::lstat(config.socket.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0660);

  auto client = connect(config.socket);
  const std::vector<std::string> requests = {
      R"({"command":"status"})",
      R"({"command":"lockdown","state":"on","scope":"app:hsa","reason":"takeovers on hsa","ttl_seconds":3600})",
      R"({"command":"lockdown","state":"on","scope":"app:hsa","reason":"again"})",
      R"({"command":"lockdown","state":"off","scope":"app:hsa","reason":"resolved"})",
      R"({"command":"findings","limit":2})",
      R"({"command":"decisions","limit":50})",
      R"({"command":"allowlist","op":"add","network":"10.1.0.0/16","comment":"offices"})",
      R"({"command":"allowlist","op":"list"})",
      R"({"command":"allowlist","op":"remove","network":"10.1.0.0/16"})",
      R"({"command":"silence","detector":"password_spray","seconds":3600,"reason":"pen test"})",
      R"({"command":"silence","detector":"password_spray","seconds":0})",
      R"({"command":"reload"})",
  };
  std::vector<ControlReply> replies;
  for (const auto& line : requests) {
    replies.push_back(client->call(request(line), 5000ms));
    INFO(line);
    INFO(replies.back().error_message);
    CHECK(replies.back().ok);
    CHECK(is_json_object(replies.back().result_json));
  }
  CHECK(contains(replies[0].result_json, R"("health":"ok")"));
  CHECK(contains(replies[1].result_json, R"("by":"operator:)" + my_user_name() + "\""));
  CHECK(contains(replies[1].result_json, R"("changed":true)"));
  CHECK(contains(replies[2].result_json, R"("changed":false)"));
  CHECK(contains(replies[3].result_json, R"("state":"off")"));
  CHECK(contains(replies[4].result_json, R"({"items":[{"id":"f-000000000001")"));
  CHECK(contains(replies[7].result_json, R"("network":"10.1.0.0/16")"));
  CHECK(replies[8].result_json == R"({"networks":[]})");
  CHECK(contains(replies[11].result_json, R"("reloaded":true)"));

  // The handler saw each request, typed, from this process.
  const auto calls = handler.calls();
  REQUIRE(calls.size() == requests.size());
  for (const auto& call : calls) {
    CHECK(call.peer.uid == ::getuid());
    CHECK(call.peer.gid == ::getgid());
    CHECK(call.peer.pid == ::getpid());
    CHECK(call.peer.user == my_user_name());
    CHECK(call.peer.transport == "unix");
  }
  CHECK(calls[1].request.scope.key() == "app:hsa");
  CHECK(calls[1].request.ttl_seconds == 3600);

  // A refusal by the handler reaches the client with its code.
  const ControlReply refused =
      client->call(request(R"({"command":"silence","detector":"unknown_detector","seconds":60})"));
  CHECK_FALSE(refused.ok);
  CHECK(refused.error_code == "failed");
  CHECK(refused.error_message == "no detector named unknown_detector");

  // A bad request is answered and audited, and the connection goes on.
  REQUIRE(client->send_raw(
      "{\"command\":\"lockdown\",\"state\":\"on\",\"scope\":\"planet:earth\",\"reason\":\"x\"}\n"));
  const auto bad = client->read_line(5000ms);
  REQUIRE(bad);
  const ControlReply bad_reply = parse_control_reply(*bad);
  CHECK(bad_reply.error_code == "bad_request");
  CHECK(contains(bad_reply.error_message, "\"scope\""));
  REQUIRE(client->send_raw("not json\n\n   \n"));
  CHECK(parse_control_reply(client->read_line(5000ms).value_or("")).error_code == "bad_request");
  CHECK(client->call(request(R"({"command":"status"})")).ok);

  server.stop();
  CHECK(::lstat(config.socket.c_str(), &st) != 0);  // removed

  // One audit line per request, in order, with the peer and the outcome and never more.
  const auto audit = lines_of(read_file(config.audit_log));
  REQUIRE(audit.size() == requests.size() + 4);
  const std::string me = R"("peer":{"uid":)" + std::to_string(::getuid()) + R"(,"gid":)" +
                         std::to_string(::getgid()) + R"(,"pid":)" + std::to_string(::getpid()) +
                         R"(,"user":")" + my_user_name() + R"(","transport":"unix"})";
  for (const auto& line : audit) {
    INFO(line);
    CHECK(is_json_object(line));
    CHECK(contains(line, me));
  }
  CHECK(contains(
      audit[1],
      R"("command":"lockdown","args":{"state":"on","scope":"app:hsa","reason":"takeovers on hsa","ttl_seconds":3600},"outcome":"ok"})"));
  CHECK(contains(
      audit[12],
      R"("command":"silence","args":{"detector":"unknown_detector","seconds":60},"outcome":"failed","message":"no detector named unknown_detector"})"));
  CHECK(contains(audit[13],
                 R"("command":"lockdown","args":{},"outcome":"bad_request","message":"\"scope\")"));
  CHECK(contains(audit[14],
                 R"("command":"","args":{},"outcome":"bad_request","message":"not valid JSON)"));
}

TEST_CASE(
    "control: followers receive what is published; a slow follower is cut off without blocking "
    "publish()") {
  TempDir dir;
  SystemClock clock;
  FakeHandler handler;
  ControlServer server(clock);
  ControlConfig config = unix_config(dir);
  config.follower_buffer_bytes = 64 * 1024;
  config.write_timeout_ms = 5000;
  std::string error;
  REQUIRE_MESSAGE(server.start(config, handler, error), error);

  // With nobody following, publishing is free.
  server.publish(ControlStream::kFindings, finding_json(99));

  auto findings = connect(config.socket);
  auto decisions = connect(config.socket);
  const ControlReply f =
      findings->call(request(R"({"command":"findings","limit":1,"follow":true})"));
  REQUIRE(f.ok);
  CHECK(contains(f.result_json, "f-000000000001"));
  REQUIRE(decisions->call(request(R"({"command":"decisions","limit":0,"follow":true})")).ok);
  REQUIRE(eventually([&] { return server.stats().followers == 2; }));

  for (int i = 10; i < 13; ++i) server.publish(ControlStream::kFindings, finding_json(i));
  server.publish(ControlStream::kDecisions, R"({"id":"d-000000000001","state":"on"})");
  server.publish(ControlStream::kFindings, "not one line\n{}");  // never breaks the line protocol
  for (int i = 10; i < 13; ++i) {
    const auto line = findings->read_line(5000ms);
    REQUIRE(line);
    const auto item = parse_control_stream_line(*line);
    CHECK(item.kind == ControlStreamLine::Kind::kItem);
    CHECK(item.stream == ControlStream::kFindings);
    CHECK(item.item_json == finding_json(i));
  }
  const auto decision = decisions->read_line(5000ms);
  REQUIRE(decision);
  CHECK(*decision == R"({"decision":{"id":"d-000000000001","state":"on"}})");

  // A follower that leaves is forgotten.
  decisions.reset();
  REQUIRE(eventually([&] { return server.stats().followers == 1; }));

  // This follower stops reading. Publishing a burst far beyond its buffer neither waits for it
  // nor keeps what it cannot take.
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 20000; ++i) server.publish(ControlStream::kFindings, finding_json(1000 + i));
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(took < 2s);
  MESSAGE("20000 publishes to a follower that does not read took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(server.stats().followers_cut_off == 1);
  CHECK(server.stats().followers == 0);

  // What was queued before the cut arrives, then the server's last word, then the end.
  std::vector<std::string> received;
  while (auto line = findings->read_line(5000ms)) received.push_back(*line);
  REQUIRE_FALSE(received.empty());
  const auto last = parse_control_stream_line(received.back());
  CHECK(last.kind == ControlStreamLine::Kind::kError);
  CHECK(last.error_code == "unavailable");
  CHECK(contains(last.error_message, "too slow"));
  CHECK(received.size() < 20000);
  MESSAGE((received.size() - 1) << " items reached the slow follower before it was cut off");

  // The server itself never stalled.
  auto another = connect(config.socket);
  CHECK(another->call(request(R"({"command":"status"})"), 5000ms).ok);
}

TEST_CASE("control: a slow handler holds up only its own client; followers keep streaming") {
  TempDir dir;
  SystemClock clock;
  FakeHandler handler;
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  handler.before_reply = [&](const ControlRequest& r) {
    if (r.command != ControlCommand::kReload) return;
    std::unique_lock lock(mu);
    cv.wait_for(lock, 10s, [&] { return release; });
  };
  ControlServer server(clock);
  std::string error;
  const ControlConfig config = unix_config(dir);
  REQUIRE_MESSAGE(server.start(config, handler, error), error);
  auto follower = connect(config.socket);
  REQUIRE(follower->call(request(R"({"command":"findings","limit":0,"follow":true})")).ok);

  auto slow = connect(config.socket);
  std::thread reload([&] { CHECK(slow->call(request(R"({"command":"reload"})"), 10000ms).ok); });
  REQUIRE(eventually([&] { return server.stats().requests == 2; }));
  server.publish(ControlStream::kFindings, finding_json(7));
  const auto line = follower->read_line(5000ms);
  REQUIRE(line);
  CHECK(contains(*line, "f-000000000007"));
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  reload.join();
}

TEST_CASE("control: limits: connections, idle clients, long lines, invalid handler results") {
  TempDir dir;
  SystemClock clock;
  FakeHandler handler;
  ControlServer server(clock);
  ControlConfig config = unix_config(dir);
  config.max_connections = 2;
  config.idle_timeout_ms = 300;
  std::string error;
  REQUIRE_MESSAGE(server.start(config, handler, error), error);

  SUBCASE("beyond max_connections a client is refused with a reason") {
    auto a = connect(config.socket);
    auto b = connect(config.socket);
    REQUIRE(eventually([&] { return a->call(request(R"({"command":"status"})")).ok; }));
    auto c = connect(config.socket);
    const auto line = c->read_line(5000ms);
    REQUIRE(line);
    const ControlReply reply = parse_control_reply(*line);
    CHECK(reply.error_code == "unavailable");
    CHECK(contains(reply.error_message, "too many control connections"));
    CHECK_FALSE(c->read_line(5000ms));
    CHECK(server.stats().refused_connections == 1);
    CHECK(contains(read_file(config.audit_log),
                   R"("outcome":"unavailable","message":"too many control connections)"));
  }
  SUBCASE("an idle client is disconnected") {
    auto idle = connect(config.socket);
    CHECK_FALSE(idle->read_line(5000ms));  // end of stream, not the deadline
    auto fresh = connect(config.socket);
    CHECK(fresh->call(request(R"({"command":"status"})")).ok);
  }
  SUBCASE("a line longer than 64 KiB is refused and the connection closed") {
    auto client = connect(config.socket);
    REQUIRE(client->send_raw(std::string(70000, 'x')));
    const auto line = client->read_line(5000ms);
    REQUIRE(line);
    CHECK(
        contains(parse_control_reply(*line).error_message, "request line longer than 65536 bytes"));
    CHECK_FALSE(client->read_line(5000ms));
  }
  SUBCASE("a trickling client is cut off by the idle deadline, not held open") {
    auto client = connect(config.socket);
    const auto started = std::chrono::steady_clock::now();
    // A byte every 50 ms: each read is recent, but no request completes within 300 ms.
    while (client->send_raw(" ", 1000ms) && std::chrono::steady_clock::now() - started < 3s)
      std::this_thread::sleep_for(50ms);
    CHECK(std::chrono::steady_clock::now() - started < 2s);
    CHECK_FALSE(client->read_line(5000ms));
  }
  SUBCASE("a handler result that is not one JSON object never reaches the wire") {
    handler.answer_with(ControlReply::success("{\"broken\":\n true}"));
    auto client = connect(config.socket);
    const ControlReply r = client->call(request(R"({"command":"status"})"));
    CHECK_FALSE(r.ok);
    CHECK(r.error_code == "failed");
    handler.answer_with(ControlReply::failure("teapot", "I'm a teapot"));
    CHECK(client->call(request(R"({"command":"status"})")).error_code == "failed");
  }
}

namespace {

/// Sockets of this process that a child it starts would inherit (no close-on-exec).
int inheritable_sockets() {
  int count = 0;
  for (int fd = 0; fd < 1024; ++fd) {
    char link[64];
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
    if (n <= 0) continue;
    link[n] = '\0';
    if (std::strncmp(link, "socket:", 7) == 0 && (::fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0) ++count;
  }
  return count;
}

}  // namespace

TEST_CASE(
    "control: no socket leaks into processes the daemon starts (hooks); a stopped server starts "
    "again") {
  TempDir dir;
  SystemClock clock;
  FakeHandler handler;
  ControlServer server(clock);
  const ControlConfig config = unix_config(dir);
  std::string error;
  const int before = inheritable_sockets();
  REQUIRE_MESSAGE(server.start(config, handler, error), error);
  {
    auto client = connect(config.socket);
    REQUIRE(client->call(request(R"({"command":"findings","follow":true})")).ok);
    CHECK(inheritable_sockets() == before);  // listener, accepted connection and client alike
  }
  server.stop();
  REQUIRE_MESSAGE(server.start(config, handler, error), error);
  CHECK(connect(config.socket)->call(request(R"({"command":"status"})")).ok);
  CHECK(server.stats().requests == 1);
}

TEST_CASE("control: the socket file: stale sockets are replaced, anything else is left alone") {
  TempDir dir;
  SystemClock clock;
  FakeHandler handler;
  ControlConfig config = unix_config(dir);
  std::string error;

  SUBCASE("a stale socket is removed") {
    int fd = -1;
    {
      fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, config.socket.c_str(), sizeof addr.sun_path - 1);
      REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
      ::close(fd);  // the file stays, nobody listens
    }
    ControlServer server(clock);
    REQUIRE_MESSAGE(server.start(config, handler, error), error);
    CHECK(connect(config.socket)->call(request(R"({"command":"status"})")).ok);
  }
  SUBCASE("a live socket belongs to another daemon") {
    ControlServer first(clock);
    REQUIRE_MESSAGE(first.start(config, handler, error), error);
    ControlServer second(clock);
    CHECK_FALSE(second.start(config, handler, error));
    CHECK(contains(error, "another process is listening on it"));
    CHECK(connect(config.socket)->call(request(R"({"command":"status"})")).ok);
  }
  SUBCASE("a file that is not a socket is never removed") {
    std::ofstream(config.socket) << "precious\n";
    ControlServer server(clock);
    CHECK_FALSE(server.start(config, handler, error));
    CHECK(contains(error, "control.socket: \"" + config.socket + "\": exists and is not a socket"));
    CHECK(read_file(config.socket) == "precious\n");
  }
  SUBCASE("a missing directory is named") {
    config.socket = dir / "missing/control.sock";
    ControlServer server(clock);
    CHECK_FALSE(server.start(config, handler, error));
    CHECK(contains(error, "No such file or directory (create its directory"));
  }
  SUBCASE("an unopenable audit log") {
    config.audit_log = dir / "missing/audit.jsonl";
    ControlServer server(clock);
    CHECK_FALSE(server.start(config, handler, error));
    CHECK(contains(error, "control.audit_log: cannot open"));
    struct stat st {};
    CHECK(::lstat(config.socket.c_str(), &st) != 0);  // nothing left behind
  }
  SUBCASE("the client says why it cannot connect") {
    ControlConnectError e;
    CHECK_FALSE(ControlClient::connect_unix(dir / "nothing.sock", e, 1000ms));
    CHECK(e.sys_errno == ENOENT);
    CHECK(contains(e.message, "is portalwatchd running"));
  }
}

TEST_CASE(
    "control: a user without permission on the socket is refused; the socket's group lets one in") {
  if (::getuid() != 0) {
    MESSAGE("skipped: switching to another user (nobody) needs root; CI runs as root");
    return;
  }
  TempDir dir;
  ::chmod(dir.path.c_str(), 0755);  // the directory is not what keeps nobody out; the socket is
  SystemClock clock;
  FakeHandler handler;
  ControlConfig config = unix_config(dir);
  std::string error;
  {
    ControlServer server(clock);
    REQUIRE_MESSAGE(server.start(config, handler, error), error);  // root:root 0660
    const std::string path = config.socket;
    const int code = as_nobody([&] {
      int fd = -1;
      const int e = raw_connect(path.c_str(), fd);
      return e == EACCES ? 0 : e == 0 ? 1 : 2;
    });
    CHECK_MESSAGE(code == 0,
                  "nobody's connect() should fail with EACCES (1: it connected, 2: another error)");
    CHECK(handler.calls().empty());
  }
  const group* nogroup = ::getgrgid(65534);
  if (!nogroup) {
    MESSAGE("no group 65534 here: the socket_group half is skipped");
    return;
  }
  config.socket_group = nogroup->gr_name;
  ControlServer server(clock);
  REQUIRE_MESSAGE(server.start(config, handler, error), error);
  struct stat st {};
  REQUIRE(::lstat(config.socket.c_str(), &st) == 0);
  CHECK(st.st_gid == 65534);
  CHECK((st.st_mode & 0777) == 0660);
  const std::string path = config.socket;
  const int code = as_nobody([&] {
    int fd = -1;
    if (raw_connect(path.c_str(), fd) != 0) return 1;
    const char req[] = "{\"command\":\"status\"}\n";
    if (::write(fd, req, sizeof req - 1) != static_cast<ssize_t>(sizeof req - 1)) return 2;
    char buf[16] = {};
    std::size_t got = 0;
    while (got < 10) {
      const ssize_t n = ::read(fd, buf + got, 10 - got);
      if (n <= 0) return 3;
      got += static_cast<std::size_t>(n);
    }
    return std::memcmp(buf, "{\"ok\":true", 10) == 0 ? 0 : 4;
  });
  CHECK(code == 0);
  const auto calls = handler.calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].peer.uid == 65534);
  CHECK(calls[0].peer.gid == 65534);
  CHECK(calls[0].peer.user == "nobody");
  server.stop();
  CHECK(contains(read_file(config.audit_log), R"("peer":{"uid":65534,"gid":65534,)"));
}

TEST_CASE("control: remote control needs TLS and the right token") {
  if (!have_openssl_cli()) {
    FAIL(
        "the openssl command line tool is needed (Debian package openssl; tools/setup installs "
        "it)");
    return;
  }
  TempDir dir;
  make_certificate(dir, "server");
  make_certificate(dir, "other");
  const std::string token = "0123456789abcdef0123456789abcdef";
  write_token(dir / "token", token);
  SystemClock clock;
  FakeHandler handler;
  ControlConfig config;
  config.socket = "";  // TCP only
  config.audit_log = dir / "audit.jsonl";
  config.tcp.enabled = true;
  config.tcp.listen = "127.0.0.1:0";
  config.tcp.token_file = dir / "token";
  config.tcp.tls_certificate = dir / "server.pem";
  config.tcp.tls_private_key = dir / "server.key";
  config.token_failure_delay_ms = 50;
  config.token_failures_allowed = 3;
  std::string error;

  SUBCASE("refused at start without a token or without TLS") {
    for (auto [key, clear] :
         {std::pair{"control.tcp.token_file", &ControlTcpConfig::token_file},
          std::pair{"control.tcp.tls_certificate", &ControlTcpConfig::tls_certificate},
          std::pair{"control.tcp.tls_private_key", &ControlTcpConfig::tls_private_key}}) {
      ControlConfig c = config;
      c.socket = dir / "control.sock";
      c.tcp.*clear = "";
      ControlServer server(clock);
      CHECK_FALSE(server.start(c, handler, error));
      CHECK(contains(error, std::string(key) + ": required when control.tcp.enabled is true"));
      struct stat st {};
      CHECK(::lstat(c.socket.c_str(), &st) != 0);  // and the Unix socket was not left listening
    }
    ControlServer server(clock);
    write_token(dir / "open-token", token, 0644);
    ControlConfig c = config;
    c.tcp.token_file = dir / "open-token";
    CHECK_FALSE(server.start(c, handler, error));
    CHECK(contains(error, "other users may read it"));
    write_token(dir / "short-token", "hunter2");
    c.tcp.token_file = dir / "short-token";
    CHECK_FALSE(server.start(c, handler, error));
    CHECK(contains(error, "at least 16 characters"));
    c.tcp.token_file = dir / "token";
    c.tcp.tls_private_key = dir / "other.key";
    CHECK_FALSE(server.start(c, handler, error));
    CHECK(contains(error, "control.tcp.tls_private_key"));
  }

  SUBCASE("wrong token: unauthorized and audited; right token: ok; plain TCP: refused") {
    ControlServer server(clock);
    REQUIRE_MESSAGE(server.start(config, handler, error), error);
    REQUIRE(server.tcp_port() > 0);
    const std::string address = "127.0.0.1:" + std::to_string(server.tcp_port());
    ControlConnectError e;

    auto wrong = ControlClient::connect_tcp(address, {dir / "server.pem"},
                                            "not-the-token-not-the-token", e, 5000ms);
    REQUIRE_MESSAGE(wrong, e.message);
    const ControlReply refused = wrong->call(
        request(R"({"command":"lockdown","state":"on","scope":"global","reason":"x"})"));
    CHECK_FALSE(refused.ok);
    CHECK(refused.error_code == "unauthorized");
    CHECK_FALSE(wrong->read_line(5000ms));  // and closed
    CHECK(handler.calls().empty());

    auto none = ControlClient::connect_tcp(address, {dir / "server.pem"}, "", e, 5000ms);
    REQUIRE_MESSAGE(none, e.message);
    CHECK(none->call(request(R"({"command":"status"})")).error_code == "unauthorized");

    auto right = ControlClient::connect_tcp(address, {dir / "server.pem"}, token, e, 5000ms);
    REQUIRE_MESSAGE(right, e.message);
    const ControlReply ok = right->call(
        request(R"({"command":"lockdown","state":"on","scope":"global","reason":"remote"})"));
    CHECK_MESSAGE(ok.ok, ok.error_message);
    CHECK(contains(ok.result_json, R"("by":"operator:remote@127.0.0.1")"));
    const auto calls = handler.calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].peer.uid == ControlPeer::kNoUid);
    CHECK(contains(calls[0].peer.transport, "tcp:127.0.0.1:"));
    // A follower over TLS too.
    REQUIRE(right->call(request(R"({"command":"findings","limit":0,"follow":true})")).ok);
    REQUIRE(eventually([&] { return server.stats().followers == 1; }));
    server.publish(ControlStream::kFindings, finding_json(5));
    CHECK(contains(right->read_line(5000ms).value_or(""), "f-000000000005"));

    // Plain TCP: the request (even with the right token) is never answered.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(static_cast<std::uint16_t>(server.tcp_port()));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0);
    const timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    const std::string plain = R"({"command":"status","token":")" + token + "\"}\n";
    ::write(fd, plain.data(), plain.size());
    std::string answer;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
      answer.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    CHECK_FALSE(contains(answer, "\"ok\""));
    CHECK(handler.calls().size() == 2);

    // A client that cannot verify the server's certificate does not talk to it.
    CHECK_FALSE(ControlClient::connect_tcp(address, {dir / "other.pem"}, token, e, 5000ms));
    CHECK(contains(e.message, "TLS handshake failed"));

    server.stop();
    const std::string audit = read_file(config.audit_log);
    INFO(audit);
    CHECK(contains(
        audit,
        R"("peer":{"uid":null,"gid":null,"pid":0,"user":"remote@127.0.0.1","transport":"tcp:127.0.0.1:)"));
    CHECK(contains(
        audit,
        R"("command":"lockdown","args":{"state":"on","scope":"global","reason":"x"},"outcome":"unauthorized","message":"wrong token"})"));
    CHECK(contains(
        audit,
        R"("command":"status","args":{},"outcome":"unauthorized","message":"a token is required"})"));
    CHECK(contains(
        audit,
        R"("command":"lockdown","args":{"state":"on","scope":"global","reason":"remote"},"outcome":"ok"})"));
    CHECK_FALSE(contains(audit, token));
    CHECK_FALSE(contains(audit, "not-the-token"));
    CHECK(server.stats().token_failures == 2);
  }

  SUBCASE("wrong tokens are rate-limited per address") {
    ControlServer server(clock);
    REQUIRE_MESSAGE(server.start(config, handler, error), error);
    const std::string address = "127.0.0.1:" + std::to_string(server.tcp_port());
    ControlConnectError e;
    for (int i = 0; i < 3; ++i) {
      auto guesser = ControlClient::connect_tcp(
          address, {dir / "server.pem"}, "guess-guess-guess-" + std::to_string(i), e, 5000ms);
      REQUIRE_MESSAGE(guesser, e.message);
      CHECK(guesser->call(request(R"({"command":"status"})")).error_message == "wrong token");
    }
    // Now even the right token waits out the minute.
    auto right = ControlClient::connect_tcp(address, {dir / "server.pem"}, token, e, 5000ms);
    REQUIRE_MESSAGE(right, e.message);
    const ControlReply blocked = right->call(request(R"({"command":"status"})"));
    CHECK(blocked.error_code == "unauthorized");
    CHECK(contains(blocked.error_message, "too many wrong tokens from 127.0.0.1"));
    CHECK(handler.calls().empty());
  }
}

}  // namespace portalwatch

namespace portalwatch {

namespace {

struct CtlRun {
  int code = -1;
  std::string out, err;
};

/// Runs the real portalwatchctl with args (a shell word list, no user input) and NO_COLOR.
CtlRun run_ctl(const TempDir& dir, const std::string& args) {
  const std::string out = dir / "ctl.out", err = dir / "ctl.err";
  const std::string cmd = std::string("NO_COLOR=1 '") + PORTALWATCHCTL_PATH + "' " + args + " > '" +
                          out + "' 2> '" + err + "'";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out), read_file(err)};
}

}  // namespace

TEST_CASE(
    "control: portalwatchctl against the server: human output, --json, exit codes, --follow") {
  TempDir dir;
  SystemClock clock;
  FakeHandler handler;
  ControlServer server(clock);
  const ControlConfig config = unix_config(dir);
  std::string error;
  REQUIRE_MESSAGE(server.start(config, handler, error), error);
  const std::string socket = "--socket '" + config.socket + "' ";

  CtlRun r = run_ctl(dir, socket + "status");
  CHECK(r.code == 0);
  CHECK(contains(r.out, "portalwatchd test, up 5s, health: ok\n"));
  CHECK(contains(r.out, "Recent findings: 1\n  2026-12-23 14:05:00  MEDIUM    brute_force"));

  r = run_ctl(dir, socket + "--json status");
  CHECK(r.code == 0);
  CHECK(contains(r.out, R"({"version":"test","uptime_seconds":5,"health":"ok")"));
  CHECK(is_json_object(r.out.substr(0, r.out.size() - 1)));

  r = run_ctl(dir, "lockdown on --scope app:hsa --reason 'takeovers on hsa' --ttl 2h " + socket);
  CHECK(r.code == 0);
  CHECK(std::regex_search(r.out, std::regex("app:hsa: lockdown on \\(d-[0-9]{20}, by operator:" + my_user_name() +
                                                 "\\), until ")));
  CHECK(contains(r.out, "(in 2h)\n"));
  CHECK(handler.calls().back().request.ttl_seconds == 7200);
  CHECK(handler.calls().back().request.reason == "takeovers on hsa");

  r = run_ctl(dir, socket + "allowlist add 10.1.0.0/16 --comment offices");
  CHECK(r.code == 0);
  CHECK(r.out == "added 10.1.0.0/16 to the allowlist\n");
  r = run_ctl(dir, socket + "allowlist list");
  CHECK(contains(r.out, "NETWORK      ADDED                 BY"));
  r = run_ctl(dir, socket + "silence password_spray --for 30m --reason 'pen test'");
  CHECK(r.code == 0);
  CHECK(contains(r.out, "password_spray: silenced until "));
  r = run_ctl(dir, socket + "silence password_spray --for 0");
  CHECK(r.out == "password_spray: silence lifted\n");
  r = run_ctl(dir, socket + "reload");
  CHECK(r.out == "configuration reloaded\n");
  r = run_ctl(dir, socket + "findings -n 2");
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 2);

  // Refused by the daemon: 1, with its reason.
  r = run_ctl(dir, socket + "silence unknown_detector --for 1h");
  CHECK(r.code == 1);
  CHECK(r.err == "portalwatchctl: silence: failed: no detector named unknown_detector\n");

  // Usage errors: 2, and nothing is sent.
  const std::size_t calls = handler.calls().size();
  for (const char* bad :
       {"lockdown on --scope planet:earth --reason x", "lockdown on --scope global",
        "lockdown maybe --scope global --reason x",
        "lockdown off --scope global --reason x --ttl 1h", "allowlist add 10.1.2.3/16",
        "silence password_spray --for soon", "findings -n 5000", "frobnicate"}) {
    r = run_ctl(dir, socket + bad);
    INFO(bad);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_FALSE(r.err.empty());
  }
  CHECK(run_ctl(dir, socket + "allowlist add 10.1.2.3/16").err ==
        "portalwatchctl: invalid request: \"network\": \"10.1.2.3/16\" has host bits set (the "
        "network would be 10.1.0.0/16)\n");
  CHECK(handler.calls().size() == calls);

  // Cannot connect: 3.
  r = run_ctl(dir, "--socket '" + (dir / "nothing.sock") + "' status");
  CHECK(r.code == 3);
  CHECK(contains(r.err, "cannot connect to the control socket " + (dir / "nothing.sock") +
                            ": No such file or directory"));

  // --config takes the socket from the file.
  std::ofstream(dir / "pw.yaml") << "control:\n  socket: " << config.socket << "\n";
  CHECK(run_ctl(dir, "--config '" + (dir / "pw.yaml") + "' status").code == 0);

  // --follow: the listed items, then new ones (an item already listed is not printed twice), until
  // the daemon goes away (3).
  const std::string cmd = std::string("NO_COLOR=1 '") + PORTALWATCHCTL_PATH + "' " + socket +
                          "findings --follow -n 1 2> '" + (dir / "follow.err") + "'";
  FILE* follow = ::popen(cmd.c_str(), "r");
  REQUIRE(follow);
  REQUIRE(eventually([&] { return server.stats().followers == 1; }));
  server.publish(ControlStream::kFindings, finding_json(1));
  server.publish(ControlStream::kFindings, finding_json(10));
  char line[1024];
  REQUIRE(std::fgets(line, sizeof line, follow));
  CHECK(contains(line, " victim1 "));
  REQUIRE(std::fgets(line, sizeof line, follow));
  CHECK(contains(line, " victim10 "));
  server.stop();
  CHECK_FALSE(std::fgets(line, sizeof line, follow));
  const int status = ::pclose(follow);
  CHECK(WEXITSTATUS(status) == 3);
  CHECK(read_file(dir / "follow.err") == "portalwatchctl: the daemon closed the connection\n");
}

}  // namespace portalwatch
