// Test support for the hooks: a temporary directory, scripts, decisions, a result collector, and a
// small HTTP(S) server (Boost.Beast on its own thread) that records what it receives and answers
// with a fixed status, or never answers.
#pragma once

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/hooks.h"
#include "detectors/time.h"

namespace portalwatch::test {

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/portalwatch-hooks-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline void write_file(const std::string& path, const std::string& content, unsigned mode = 0600) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    REQUIRE(out);
    out << content;
  }
  ::chmod(path.c_str(), mode);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

/// An executable script (its #! line says what runs it; portalwatch itself never uses a shell).
inline std::string write_script(const TempDir& dir, const std::string& name,
                                const std::string& body) {
  const std::string path = dir / name;
  write_file(path, body, 0700);
  return path;
}

/// Whether process pid has ended: gone, or a zombie nobody reaped yet (our own reaper, PID 1, may
/// not be a real init in a container).
inline bool process_gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

/// Runs a program (no shell) and waits for it; its exit status.
inline int run_program(std::vector<std::string> argv) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline Decision make_decision(ScopeType type, std::string value, bool on = true,
                              std::uint64_t id = 7,
                              DecisionAction action = DecisionAction::kLockdown) {
  Decision d;
  d.seq = id;
  d.action = action;
  d.on = on;
  d.scope.type = type;
  d.scope.value = std::move(value);
  d.at = *parse_rfc3339("2026-12-23T14:06:02.000Z");
  d.by = "policy:savings-accounts-under-attack";
  d.reason = "account_takeover x3 on hsa in 10m";
  d.findings = {"f-000000000040", "f-000000000042"};
  return d;
}

inline HookConfig exec_hook(std::string name, std::vector<std::string> argv,
                            std::vector<std::pair<std::string, std::string>> env = {}) {
  HookConfig h;
  h.name = std::move(name);
  h.type = HookType::kExec;
  h.exec.argv = std::move(argv);
  h.exec.env = std::move(env);
  h.exec.kill_grace = std::chrono::milliseconds(300);
  h.timeout = std::chrono::seconds(5);
  h.retries = 0;
  h.backoff_initial = std::chrono::milliseconds(10);
  h.backoff_max = std::chrono::milliseconds(100);
  return h;
}

/// Collects HookResults from the runner's threads.
class Results {
 public:
  HookResultCallback callback() {
    return [this](const HookResult& r) {
      std::lock_guard lock(mu_);
      Copy c{r.hook ? r.hook->name : "",
             r.decision,
             r.outcome,
             r.attempts,
             r.duration,
             r.start_latency,
             r.detail};
      all_.push_back(std::move(c));
      cv_.notify_all();
    };
  }
  /// A copy that outlives the runner (HookResult points at the runner's configuration).
  struct Copy {
    std::string hook;
    std::shared_ptr<const Decision> decision;
    HookOutcome outcome;
    int attempts;
    std::chrono::duration<double> duration;
    std::chrono::duration<double> start_latency;
    std::string detail;
  };
  /// Waits (up to timeout) for n results; all of them so far.
  std::vector<Copy> wait(std::size_t n,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return all_.size() >= n; });
    return all_;
  }
  std::size_t size() {
    std::lock_guard lock(mu_);
    return all_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Copy> all_;
};

inline double counter(const HookRunner& runner, std::size_t hook, HookOutcome o) {
  return runner.metrics().hooks[hook].runs[static_cast<std::size_t>(o)]->Value();
}

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

/// An HTTP or HTTPS server on 127.0.0.1 (an ephemeral port) answering every request with one
/// status, or (hang) reading requests and never answering.
class TestHttpServer {
 public:
  struct Options {
    unsigned status = 200;
    bool hang = false;
    net::ssl::context* tls = nullptr;
  };

  explicit TestHttpServer(Options options)
      : options_(options), acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~TestHttpServer() {
    ioc_.stop();
    thread_.join();
  }

  unsigned short port() const { return port_; }
  std::vector<ReceivedRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  int connections() const { return connections_.load(); }

 private:
  template <class Stream>
  struct Session : std::enable_shared_from_this<Session<Stream>> {
    TestHttpServer* server;
    Stream stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::response<http::string_body> response;

    template <class... Args>
    explicit Session(TestHttpServer* s, Args&&... args)
        : server(s), stream(std::forward<Args>(args)...) {}

    void start() {
      auto self = this->shared_from_this();
      if constexpr (std::is_same_v<Stream, net::ip::tcp::socket>) {
        read();
      } else {
        stream.async_handshake(net::ssl::stream_base::server,
                               [self](const boost::system::error_code& ec) {
                                 if (!ec) self->read();
                               });
      }
    }
    void read() {
      auto self = this->shared_from_this();
      http::async_read(stream, buffer, request,
                       [self](const boost::system::error_code& ec, std::size_t) {
                         if (ec) return;
                         self->server->record(self->request);
                         if (self->server->options_.hang) {
                           self->server->held_.push_back(self);  // open, never answered
                           return;
                         }
                         self->response.result(self->server->options_.status);
                         self->response.set(http::field::content_type, "text/plain");
                         self->response.body() = "test server says hello\n";
                         self->response.keep_alive(false);
                         self->response.prepare_payload();
                         http::async_write(self->stream, self->response,
                                           [self](const boost::system::error_code&, std::size_t) {
                                             boost::system::error_code ignored;
                                             beast::get_lowest_layer(self->stream).close(ignored);
                                           });
                       });
    }
  };

  void accept() {
    acceptor_.async_accept(
        [this](const boost::system::error_code& ec, net::ip::tcp::socket socket) {
          if (ec) return;
          ++connections_;
          if (options_.tls)
            std::make_shared<Session<net::ssl::stream<net::ip::tcp::socket>>>(
                this, std::move(socket), *options_.tls)
                ->start();
          else
            std::make_shared<Session<net::ip::tcp::socket>>(this, std::move(socket))->start();
          accept();
        });
  }

  void record(const http::request<http::string_body>& r) {
    ReceivedRequest rr;
    rr.method = std::string(r.method_string());
    rr.target = std::string(r.target());
    for (const auto& field : r) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      rr.headers[name] = std::string(field.value());
    }
    rr.body = r.body();
    std::lock_guard lock(mu_);
    requests_.push_back(std::move(rr));
  }

  Options options_;
  net::io_context ioc_;
  net::ip::tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<void>> held_;  // the io thread's only
  unsigned short port_ = 0;
  std::mutex mu_;
  std::vector<ReceivedRequest> requests_;
  std::atomic<int> connections_{0};
  std::thread thread_;
};

/// A port nothing listens on (bound, then closed).
inline unsigned short closed_port() {
  net::io_context ioc;
  net::ip::tcp::acceptor a(ioc, {net::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

}  // namespace portalwatch::test
