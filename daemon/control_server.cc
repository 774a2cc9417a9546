#include "daemon/control_server.h"

#include <fcntl.h>
#include <grp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
// clang-format off
#include <utility>  // first: Boost 1.74's Asio uses std::exchange without including it
#include <boost/asio.hpp>
// clang-format on
#include <boost/asio/ssl.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "daemon/control_protocol.h"
#include "daemon/log.h"

namespace portalwatch {

namespace asio = boost::asio;
using boost::system::error_code;
using UnixSocket = asio::local::stream_protocol::socket;
using TlsStream = asio::ssl::stream<asio::ip::tcp::socket>;

namespace {

constexpr std::size_t kLogTransport = 0;
constexpr std::size_t kLogAccept = 1;
constexpr std::size_t kLogAudit = 2;
constexpr std::size_t kLogRefused = 3;
constexpr std::size_t kLogKeys = 4;

/// A shortest token: anything shorter can be guessed over the network.
constexpr std::size_t kMinTokenBytes = 16;

std::string user_name(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::array<char, 4096> scratch{};
  if (::getpwuid_r(uid, &pw, scratch.data(), scratch.size(), &found) == 0 && found &&
      found->pw_name)
    return found->pw_name;
  return std::to_string(uid);
}

using Digest = std::array<unsigned char, 32>;

Digest sha256(std::string_view s) {
  Digest d{};
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

/// The audit log: one JSON line per request, appended with one write(2) each (O_APPEND keeps
/// concurrent records whole) and synced, so what an operator did is on disk before the reply.
class AuditLog {
 public:
  ~AuditLog() { close(); }
  bool open(const std::string& path, std::string& error) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0) {
      error = "control.audit_log: cannot open \"" + path + "\": " + std::strerror(errno);
      return false;
    }
    path_ = path;
    return true;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  /// false when the record could not be written (the caller logs it).
  bool write(std::string record) {
    if (fd_ < 0) return true;
    record.push_back('\n');
    const char* p = record.data();
    std::size_t left = record.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    return ::fdatasync(fd_) == 0;
  }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

/// Wrong tokens per address: a few per minute are answered (late); beyond that the address is
/// refused without comparing anything until the minute is over. Bounded: forgets old addresses.
class TokenFailures {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  bool blocked(const std::string& address, TimePoint now, int allowed) const {
    const auto it = entries_.find(address);
    return it != entries_.end() && now - it->second.window_start < kWindow &&
           it->second.count >= allowed;
  }
  void record(const std::string& address, TimePoint now) {
    if (entries_.size() >= kMaxAddresses) {
      for (auto it = entries_.begin(); it != entries_.end();)
        it = now - it->second.window_start >= kWindow ? entries_.erase(it) : std::next(it);
      if (entries_.size() >= kMaxAddresses)
        entries_.clear();  // a flood from everywhere: start over
    }
    Entry& e = entries_[address];
    if (now - e.window_start >= kWindow) e = Entry{now, 0};
    ++e.count;
  }

 private:
  static constexpr std::chrono::seconds kWindow{60};
  static constexpr std::size_t kMaxAddresses = 4096;
  struct Entry {
    TimePoint window_start{};
    int count = 0;
  };
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace

class Connection;

struct ControlServerImpl {
  explicit ControlServerImpl(const Clock& c) : clock(c), log_limiter(std::chrono::seconds(10)) {}

  bool start(std::string& error);
  bool open_tcp(std::string& error);
  bool open_unix(std::string& error);
  void accept_unix();
  void accept_tcp();
  void retry_accept(bool unix_socket);
  void shutdown_connections();
  void remove_socket_file();

  /// Records one request's outcome in the audit log and the journal. io thread.
  void audit(const ControlPeer& peer, std::string_view command, std::string_view args,
             std::string_view outcome, std::string_view message);
  /// A transport problem that is not a request (a failed handshake): journal only, rate-limited.
  void log_limited(std::size_t key, const std::string& message);
  /// nullopt when the token is right; else why it is refused. io thread.
  std::optional<std::string> check_token(const std::string& address,
                                         const std::optional<std::string>& token);

  void add_follower(const std::shared_ptr<Connection>& c);
  void remove_follower(Connection* c);
  void publish(ControlStream stream, std::string_view json_object);

  // Declared first, destroyed last: every socket and timer below belongs to it.
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread io_thread;
  /// Handler calls run here, one at a time, so a slow handler never holds up the io thread
  /// (followers, timeouts, other clients).
  std::optional<asio::thread_pool> handler_pool;

  const Clock& clock;
  ControlConfig config;
  ControlHandler* handler = nullptr;
  bool running = false;
  bool started_once = false;

  // io thread only
  std::optional<asio::local::stream_protocol::acceptor> unix_acceptor;
  std::optional<asio::ip::tcp::acceptor> tcp_acceptor;
  std::optional<asio::ssl::context> tls;
  std::optional<asio::steady_timer> accept_retry_timer;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;
  bool stopping = false;
  AuditLog audit_log;
  LogLimiter<kLogKeys> log_limiter;
  TokenFailures token_failures;
  Digest token_digest{};
  std::string socket_path;  ///< the file this server created (removed by stop())
  dev_t socket_dev = 0;
  ino_t socket_ino = 0;
  std::atomic<int> tcp_port{0};

  // Followers: shared by publish() (any thread) and the io thread.
  std::mutex follow_mu;
  std::vector<std::shared_ptr<Connection>> followers;  // guarded by follow_mu
  std::atomic<std::size_t> follower_count{0};

  std::atomic<std::uint64_t> requests{0}, refused_connections{0}, followers_cut_off{0},
      token_failure_count{0};
};

namespace {

using IoHandler = std::function<void(const error_code&, std::size_t)>;

}  // namespace

/// One client connection: reads request lines, answers them one at a time, and after a follow
/// request streams published items. Everything here runs on the io thread, except the follow
/// queue (guarded by ControlServerImpl::follow_mu) and the handler call (on the handler thread).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  /// token_address: over TCP, the client's address (its requests need the token and its wrong
  /// tokens are counted under it); empty on the Unix socket.
  Connection(ControlServerImpl& server, ControlPeer peer, std::string token_address)
      : server_(server),
        peer_(std::move(peer)),
        token_address_(std::move(token_address)),
        timer_(server.io) {}
  virtual ~Connection() = default;

  /// TLS handshake (if any), then requests.
  void start() {
    arm_timer(server_.config.handshake_timeout_ms);
    auto self = shared_from_this();
    async_handshake([self](const error_code& ec) {
      self->disarm_timer();
      if (ec) {
        self->server_.log_limited(kLogTransport, "control: " + self->peer_.transport +
                                                     ": TLS handshake failed: " + ec.message());
        self->close();
        return;
      }
      self->read_request();
    });
  }

  /// Idempotent. Drops the follower registration and the socket.
  void close() {
    if (closed_) return;
    closed_ = true;
    disarm_timer();
    if (follow_stream_) server_.remove_follower(this);
    close_transport();
    server_.connections.erase(this);
  }

  /// Writes what publish() queued. Posted by publish(); io thread.
  void flush_follow() {
    bool cut_off = false;
    {
      std::lock_guard lock(server_.follow_mu);
      kick_posted = false;
      if (closed_ || !following_ || writing_) return;
      if (overflowed) {
        cut_off = true;
      } else {
        out_.swap(pending);
        pending.clear();
      }
    }
    if (cut_off) {
      // publish() already dropped this follower; what it took is written, then its last line.
      server_.log_limited(kLogRefused, "control: " + peer_.user + " (" + peer_.transport +
                                           ") followed " + std::string(to_string(*follow_stream_)) +
                                           " too slowly and was disconnected");
      follow_stream_.reset();
      out_ = control_error_line(
                 control_error::kUnavailable,
                 "too slow: more than " + std::to_string(server_.config.follower_buffer_bytes) +
                     " bytes were waiting for this follower; follow again to resume") +
             "\n";
      auto self = shared_from_this();
      write_out([self] { self->close(); });
      return;
    }
    if (out_.empty()) return;
    auto self = shared_from_this();
    write_out([self] { self->flush_follow(); });
  }

  const ControlPeer& peer() const { return peer_; }
  std::optional<ControlStream> follow_stream() const { return follow_stream_; }

  // The follow queue; guarded by ControlServerImpl::follow_mu.
  std::string pending;      ///< streamed lines not yet handed to the socket
  bool overflowed = false;  ///< cut off by publish(); the io thread says so and closes
  bool kick_posted = false;

 protected:
  virtual void async_handshake(std::function<void(const error_code&)> done) { done({}); }
  virtual void async_read_some(asio::mutable_buffer buffer, IoHandler done) = 0;
  virtual void async_write(asio::const_buffer buffer, IoHandler done) = 0;
  virtual void close_transport() = 0;

 private:
  /// Answers the next complete line in the input, or reads more.
  void read_request() {
    if (closed_) return;
    for (;;) {
      const auto newline = in_.find('\n');
      if (newline == std::string::npos) break;
      std::string line = in_.substr(0, newline);
      in_.erase(0, newline + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.size() > kMaxControlLineBytes) return refuse_long_line();
      if (line.find_first_not_of(" \t") == std::string::npos)
        continue;  // blank lines are no requests
      on_line(line);
      return;
    }
    if (in_.size() > kMaxControlLineBytes) return refuse_long_line();
    // One deadline per request, not per read: a client trickling a byte at a time is still cut off.
    if (!awaiting_request_) {
      arm_timer(server_.config.idle_timeout_ms);
      awaiting_request_ = true;
    }
    auto self = shared_from_this();
    async_read_some(asio::buffer(chunk_), [self](const error_code& ec, std::size_t n) {
      if (ec || self->closed_) {
        self->close();
        return;
      }
      self->in_.append(self->chunk_.data(), n);
      self->read_request();
    });
  }

  void refuse_long_line() {
    ++server_.requests;
    const std::string message =
        "request line longer than " + std::to_string(kMaxControlLineBytes) + " bytes";
    server_.audit(peer_, "", "{}", control_error::kBadRequest, message);
    in_.clear();
    send(control_error_line(control_error::kBadRequest, message),
         [self = shared_from_this()] { self->close(); });
  }

  void on_line(const std::string& line) {
    disarm_timer();
    ++server_.requests;
    ControlParseResult parsed = parse_control_request(line);
    const std::string command =
        parsed.command ? std::string(to_string(*parsed.command)) : std::string();
    const std::string args = parsed.request ? control_request_args_json(*parsed.request) : "{}";
    if (!token_address_.empty()) {
      if (auto refused = server_.check_token(token_address_, parsed.token)) {
        ++server_.token_failure_count;
        server_.audit(peer_, command, args, control_error::kUnauthorized, *refused);
        // Answered late and then closed: a guesser gets one try per connection per delay, and
        // a few per minute per address.
        auto self = shared_from_this();
        arm_timer(server_.config.token_failure_delay_ms, [self, refused = *refused] {
          self->send(control_error_line(control_error::kUnauthorized, refused),
                     [self] { self->close(); });
        });
        return;
      }
    }
    if (!parsed.request) {
      server_.audit(peer_, command, args, control_error::kBadRequest, parsed.error);
      send(control_error_line(control_error::kBadRequest, parsed.error),
           [self = shared_from_this()] { self->read_request(); });
      return;
    }
    dispatch(std::move(*parsed.request));
  }

  void dispatch(ControlRequest request) {
    if (request.follow && (request.command == ControlCommand::kFindings ||
                           request.command == ControlCommand::kDecisions)) {
      // Registered before the handler runs, so nothing published meanwhile is missed; it waits
      // in the queue until the reply is written.
      follow_stream_ = request.command == ControlCommand::kFindings ? ControlStream::kFindings
                                                                    : ControlStream::kDecisions;
      server_.add_follower(shared_from_this());
    }
    auto self = shared_from_this();
    asio::post(*server_.handler_pool, [self, request = std::move(request)]() mutable {
      ControlReply reply;
      try {
        reply = self->server_.handler->handle(self->peer_, request);
      } catch (const std::exception& e) {
        spdlog::error("control: the handler threw on {}: {}", to_string(request.command), e.what());
        reply = ControlReply::failure(control_error::kFailed, "internal error");
      } catch (...) {
        spdlog::error("control: the handler threw on {}", to_string(request.command));
        reply = ControlReply::failure(control_error::kFailed, "internal error");
      }
      asio::post(self->server_.io,
                 [self, request = std::move(request), reply = std::move(reply)]() mutable {
                   self->on_reply(request, std::move(reply));
                 });
    });
  }

  void on_reply(const ControlRequest& request, ControlReply reply) {
    // A handler's mistake must not break the line protocol for the client.
    if (reply.ok && !is_json_object(reply.result_json)) {
      spdlog::error("control: the handler's result for {} is not one JSON object on one line",
                    to_string(request.command));
      reply = ControlReply::failure(control_error::kFailed,
                                    "internal error: the daemon produced an invalid result");
    }
    if (!reply.ok && !control_error::known(reply.error_code))
      reply.error_code = std::string(control_error::kFailed);
    server_.audit(peer_, to_string(request.command), control_request_args_json(request),
                  reply.ok ? std::string_view("ok") : std::string_view(reply.error_code),
                  reply.ok ? std::string_view() : std::string_view(reply.error_message));
    if (closed_) return;
    const bool follow = follow_stream_.has_value() && reply.ok;
    if (follow_stream_ && !reply.ok) {
      server_.remove_follower(this);
      follow_stream_.reset();
    }
    std::string line = reply.ok ? control_ok_line(reply.result_json)
                                : control_error_line(reply.error_code, reply.error_message);
    auto self = shared_from_this();
    send(std::move(line), [self, follow] {
      if (follow) {
        self->begin_following();
      } else {
        self->read_request();
      }
    });
  }

  void begin_following() {
    following_ = true;
    flush_follow();
    watch_for_departure();
  }

  /// Followers send nothing more: what they send is read and dropped, only to notice when they
  /// leave.
  void watch_for_departure() {
    auto self = shared_from_this();
    async_read_some(asio::buffer(chunk_), [self](const error_code& ec, std::size_t) {
      if (ec || self->closed_) {
        self->close();
        return;
      }
      self->watch_for_departure();
    });
  }

  void send(std::string line, std::function<void()> then) {
    out_ = std::move(line);
    out_.push_back('\n');
    write_out(std::move(then));
  }

  /// Writes out_ within the write timeout (a client that does not read is closed), then then().
  void write_out(std::function<void()> then) {
    if (closed_) return;
    writing_ = true;
    arm_timer(server_.config.write_timeout_ms);
    auto self = shared_from_this();
    async_write(asio::buffer(out_),
                [self, then = std::move(then)](const error_code& ec, std::size_t) {
                  self->writing_ = false;
                  self->disarm_timer();
                  if (ec || self->closed_) {
                    self->close();
                    return;
                  }
                  self->out_.clear();
                  then();
                });
  }

  /// One timer per connection: the idle, handshake, write or token-delay deadline, whichever is
  /// current. The generation ignores a wait that completed just as it was replaced.
  void arm_timer(int ms, std::function<void()> on_expiry = {}) {
    awaiting_request_ = false;
    const std::uint64_t generation = ++timer_generation_;
    timer_.expires_after(std::chrono::milliseconds(ms));
    timer_.async_wait([self = shared_from_this(), generation,
                       on_expiry = std::move(on_expiry)](const error_code& ec) {
      if (ec || generation != self->timer_generation_ || self->closed_) return;
      if (on_expiry) {
        on_expiry();
      } else {
        self->close();
      }
    });
  }
  void disarm_timer() {
    awaiting_request_ = false;
    ++timer_generation_;
    timer_.cancel();
  }

  ControlServerImpl& server_;
  const ControlPeer peer_;
  const std::string token_address_;
  asio::steady_timer timer_;
  std::uint64_t timer_generation_ = 0;
  bool awaiting_request_ = false;  ///< the timer is the idle deadline for the next request
  std::array<char, 4096> chunk_{};
  std::string in_;
  std::string out_;
  bool writing_ = false;
  bool closed_ = false;
  bool following_ = false;
  std::optional<ControlStream> follow_stream_;
};

namespace {

class UnixConnection final : public Connection {
 public:
  UnixConnection(ControlServerImpl& server, ControlPeer peer, UnixSocket socket)
      : Connection(server, std::move(peer), std::string()), socket_(std::move(socket)) {}

 private:
  void async_read_some(asio::mutable_buffer buffer, IoHandler done) override {
    socket_.async_read_some(buffer, std::move(done));
  }
  void async_write(asio::const_buffer buffer, IoHandler done) override {
    asio::async_write(socket_, buffer, std::move(done));
  }
  void close_transport() override {
    error_code ec;
    socket_.shutdown(UnixSocket::shutdown_both, ec);
    socket_.close(ec);
  }
  UnixSocket socket_;
};

class TlsConnection final : public Connection {
 public:
  TlsConnection(ControlServerImpl& server, ControlPeer peer, std::string address,
                asio::ip::tcp::socket socket, asio::ssl::context& tls)
      : Connection(server, std::move(peer), std::move(address)), stream_(std::move(socket), tls) {}

 private:
  void async_handshake(std::function<void(const error_code&)> done) override {
    stream_.async_handshake(asio::ssl::stream_base::server, std::move(done));
  }
  void async_read_some(asio::mutable_buffer buffer, IoHandler done) override {
    stream_.async_read_some(buffer, std::move(done));
  }
  void async_write(asio::const_buffer buffer, IoHandler done) override {
    asio::async_write(stream_, buffer, std::move(done));
  }
  void close_transport() override {
    error_code ec;
    stream_.lowest_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    stream_.lowest_layer().close(ec);
  }
  TlsStream stream_;
};

// Whether a process is listening on the socket file at path (then it is not stale).
bool socket_in_use(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const bool in_use =
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 || errno == EAGAIN;
  ::close(fd);
  return in_use;
}

std::optional<gid_t> group_id(const std::string& name) {
  group gr{};
  group* found = nullptr;
  std::vector<char> scratch(16384);
  if (::getgrnam_r(name.c_str(), &gr, scratch.data(), scratch.size(), &found) != 0 || !found)
    return std::nullopt;
  return found->gr_gid;
}

// Reads the token file: one line (trailing white space dropped), not readable by other users,
// long enough not to be guessed.
bool read_token(const std::string& path, std::string& token, std::string& error) {
  const std::string key = "control.tcp.token_file: \"" + path + "\"";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = key + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = key + ": not a regular file";
    return false;
  }
  if (st.st_mode & (S_IROTH | S_IWOTH)) {
    ::close(fd);
    error = key + ": other users may read it (chmod 600 or 640 it)";
    return false;
  }
  std::array<char, 4096> buf{};
  std::size_t used = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data() + used, buf.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<std::size_t>(n);
    if (used == buf.size()) break;
  }
  ::close(fd);
  token.assign(buf.data(), used);
  explicit_bzero(buf.data(), buf.size());
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (used == buf.size() || token.size() > kMaxControlTokenBytes) {
    error = key + ": longer than " + std::to_string(kMaxControlTokenBytes) + " bytes";
    return false;
  }
  if (token.size() < kMinTokenBytes || token.find('\n') != std::string::npos) {
    error = key + ": expected one line of at least " + std::to_string(kMinTokenBytes) +
            " characters (e.g. openssl rand -hex 32)";
    return false;
  }
  return true;
}

}  // namespace

// ---- start and stop --------------------------------------------------------------------------

bool ControlServerImpl::start(std::string& error) {
  if (!config.audit_log.empty() && !audit_log.open(config.audit_log, error)) return false;
  if (config.tcp.enabled && !open_tcp(error)) return false;
  if (!config.socket.empty() && !open_unix(error)) {
    tcp_acceptor.reset();
    return false;
  }
  if (!unix_acceptor && !tcp_acceptor) {
    spdlog::info("control: no control.socket and no control.tcp: operator control is off");
    return true;
  }
  accept_retry_timer.emplace(io);
  if (unix_acceptor) accept_unix();
  if (tcp_acceptor) accept_tcp();
  handler_pool.emplace(1);
  work.emplace(io.get_executor());
  io_thread = std::thread([this] {
    // A handler that throws (std::bad_alloc) costs its connection, never the daemon: Asio lets
    // run() resume after an exception.
    for (;;) {
      try {
        io.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("control: {}", e.what());
      }
    }
  });
  running = true;
  if (unix_acceptor)
    spdlog::info("control: listening on {} (mode {:04o}{}{})", config.socket,
                 static_cast<unsigned>(config.socket_mode),
                 config.socket_group.empty() ? "" : ", group ", config.socket_group);
  if (tcp_acceptor) {
    error_code ignored;
    spdlog::info("control: listening on TCP {}:{} with TLS and a token",
                 tcp_acceptor->local_endpoint(ignored).address().to_string(), tcp_port.load());
  }
  if (!config.audit_log.empty()) spdlog::info("control: audit log {}", config.audit_log);
  return true;
}

bool ControlServerImpl::open_tcp(std::string& error) {
  const ControlTcpConfig& t = config.tcp;
  for (const auto& [key, value] :
       {std::pair{"token_file", &t.token_file}, std::pair{"tls_certificate", &t.tls_certificate},
        std::pair{"tls_private_key", &t.tls_private_key}}) {
    if (value->empty()) {
      error = std::string("control.tcp.") + key +
              ": required when control.tcp.enabled is true (remote control needs a token and TLS)";
      return false;
    }
  }
  std::string address;
  unsigned short port = 0;
  if (!parse_listen_address(t.listen, address, port)) {
    error = "control.tcp.listen: \"" + t.listen + "\": expected ADDRESS:PORT";
    return false;
  }
  std::string token;
  if (!read_token(t.token_file, token, error)) {
    explicit_bzero(token.data(), token.size());
    return false;
  }
  // Only the digest is kept: compared in constant time with the digest of what a client sends,
  // so neither a token's length nor its first wrong byte shows in the time taken.
  token_digest = sha256(token);
  explicit_bzero(token.data(), token.size());

  tls.emplace(asio::ssl::context::tls_server);
  tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::no_compression |
                   asio::ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION);
  error_code ec;
  tls->use_certificate_chain_file(t.tls_certificate, ec);
  if (ec) {
    error =
        "control.tcp.tls_certificate: cannot load \"" + t.tls_certificate + "\": " + ec.message();
    return false;
  }
  tls->use_private_key_file(t.tls_private_key, asio::ssl::context::pem, ec);
  if (ec) {
    error =
        "control.tcp.tls_private_key: cannot load \"" + t.tls_private_key + "\": " + ec.message();
    return false;
  }
  if (SSL_CTX_check_private_key(tls->native_handle()) != 1) {
    error = "control.tcp.tls_private_key: \"" + t.tls_private_key +
            "\" does not match control.tcp.tls_certificate";
    return false;
  }

  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(address, ec), port);
  tcp_acceptor.emplace(io);
  if (!ec) {
    // Non-blocking: accept4() after readiness never blocks on a client that already left.
    const int fd =
        ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      ec.assign(errno, boost::system::system_category());
    } else {
      tcp_acceptor->assign(endpoint.protocol(), fd, ec);
      if (ec) ::close(fd);
    }
  }
  if (!ec) tcp_acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) tcp_acceptor->bind(endpoint, ec);
  if (!ec) tcp_acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    tcp_acceptor.reset();
    error = "control.tcp.listen: cannot listen on " + t.listen + ": " + ec.message();
    return false;
  }
  tcp_port = tcp_acceptor->local_endpoint(ec).port();
  return true;
}

bool ControlServerImpl::open_unix(std::string& error) {
  const std::string& path = config.socket;
  const std::string key = "control.socket: \"" + path + "\"";
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    error = key + ": longer than " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes";
    return false;
  }
  std::optional<gid_t> gid;
  if (!config.socket_group.empty()) {
    gid = group_id(config.socket_group);
    if (!gid) {
      error = "control.socket_group: no group named \"" + config.socket_group + "\"";
      return false;
    }
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    // Only a socket is ever removed, and only one nobody listens on any more.
    if (!S_ISSOCK(st.st_mode)) {
      error = key + ": exists and is not a socket (not removing it)";
      return false;
    }
    if (socket_in_use(path)) {
      error = key + ": another process is listening on it (is portalwatchd already running?)";
      return false;
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      error = key + ": cannot remove the stale socket: " + std::strerror(errno);
      return false;
    }
  } else if (errno != ENOENT) {
    error = key + ": " + std::strerror(errno);
    return false;
  }

  // Non-blocking: accept4() after readiness never blocks on a client that already left.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = key + ": cannot create a socket: " + std::strerror(errno);
    return false;
  }
  const auto fail = [&](std::string message) {
    ::close(fd);
    error = std::move(message);
    return false;
  };
  // On Linux the socket file takes its mode from the socket's inode (less the umask), so it is
  // never wider than configured, not even between bind() and chmod().
  ::fchmod(fd, config.socket_mode);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int e = errno;
    return fail(key + ": cannot create it: " + std::strerror(e) +
                (e == ENOENT
                     ? " (create its directory; the packaged service's RuntimeDirectory does)"
                     : ""));
  }
  // Not listening yet: nobody can connect while the exact mode and the group are set. lstat
  // first, so a symbolic link put in its place is never followed.
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    return fail(key + ": replaced while it was being created");
  }
  socket_path = path;
  socket_dev = st.st_dev;
  socket_ino = st.st_ino;
  if (::chmod(path.c_str(), config.socket_mode) != 0) {
    remove_socket_file();
    return fail(key + ": cannot set its mode: " + std::strerror(errno));
  }
  if (gid && ::lchown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
    const int e = errno;
    remove_socket_file();
    return fail("control.socket_group: cannot give \"" + path + "\" to group \"" +
                config.socket_group + "\": " + std::strerror(e));
  }
  if (::listen(fd, 64) != 0) {
    remove_socket_file();
    return fail(key + ": cannot listen: " + std::strerror(errno));
  }
  unix_acceptor.emplace(io);
  error_code ec;
  unix_acceptor->assign(asio::local::stream_protocol(), fd, ec);
  if (ec) {
    unix_acceptor.reset();
    remove_socket_file();
    return fail(key + ": " + ec.message());
  }
  return true;
}

void ControlServerImpl::remove_socket_file() {
  if (socket_path.empty()) return;
  // Only the file this server made: a daemon started since may have replaced it.
  struct stat st {};
  if (::lstat(socket_path.c_str(), &st) == 0 && st.st_dev == socket_dev && st.st_ino == socket_ino)
    ::unlink(socket_path.c_str());
  socket_path.clear();
}

void ControlServerImpl::shutdown_connections() {
  stopping = true;
  error_code ec;
  if (unix_acceptor) unix_acceptor->close(ec);
  if (tcp_acceptor) tcp_acceptor->close(ec);
  if (accept_retry_timer) accept_retry_timer->cancel();
  std::vector<std::shared_ptr<Connection>> open;
  for (auto& [ptr, weak] : connections)
    if (auto c = weak.lock()) open.push_back(std::move(c));
  for (auto& c : open) c->close();
  connections.clear();
}

// ---- accepting -------------------------------------------------------------------------------

void ControlServerImpl::retry_accept(bool unix_socket) {
  // EMFILE and friends: try again shortly rather than spin.
  accept_retry_timer->expires_after(std::chrono::milliseconds(100));
  accept_retry_timer->async_wait([this, unix_socket](const error_code& ec) {
    if (ec || stopping) return;
    if (unix_socket) {
      accept_unix();
    } else {
      accept_tcp();
    }
  });
}

namespace {

// accept4 with SOCK_CLOEXEC: Boost 1.74's acceptors use accept(), and the daemon runs hooks, which
// must never inherit an operator's connection. -1 with errno when nothing could be accepted.
int accept_cloexec(int listening_fd) {
  for (;;) {
    const int fd = ::accept4(listening_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0 || errno != EINTR) return fd;
  }
}

// Errors of accept() that concern only the connection being accepted.
bool transient_accept_error(int e) {
  return e == EAGAIN || e == EWOULDBLOCK || e == ECONNABORTED || e == EPROTO || e == EPERM;
}

}  // namespace

void ControlServerImpl::accept_unix() {
  unix_acceptor->async_wait(asio::socket_base::wait_read, [this](const error_code& ec) {
    if (stopping || ec == asio::error::operation_aborted) return;
    const int fd = ec ? -1 : accept_cloexec(unix_acceptor->native_handle());
    if (fd < 0) {
      const int e = errno;
      if (!ec && transient_accept_error(e)) return accept_unix();
      log_limited(kLogAccept, "control: accept on " + config.socket + ": " +
                                  (ec ? ec.message() : std::strerror(e)));
      retry_accept(true);
      return;
    }
    UnixSocket socket(io);
    error_code assign_error;
    socket.assign(asio::local::stream_protocol(), fd, assign_error);
    if (assign_error) {
      ::close(fd);
      accept_unix();
      return;
    }
    ControlPeer peer;
    peer.transport = "unix";
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      // No identity, no control.
      log_limited(kLogAccept, std::string("control: SO_PEERCRED failed: ") + std::strerror(errno));
      accept_unix();
      return;
    }
    peer.uid = cred.uid;
    peer.gid = cred.gid;
    peer.pid = cred.pid;
    peer.user = user_name(cred.uid);
    if (connections.size() >= config.max_connections) {
      ++refused_connections;
      const std::string message = "too many control connections (" +
                                  std::to_string(config.max_connections) + "); try again later";
      audit(peer, "", "{}", control_error::kUnavailable, message);
      // A fresh socket's buffer is empty: this small write does not block.
      const std::string line = control_error_line(control_error::kUnavailable, message) + "\n";
      error_code ignored;
      socket.non_blocking(true, ignored);
      socket.write_some(asio::buffer(line), ignored);
      socket.close(ignored);
    } else {
      auto c = std::make_shared<UnixConnection>(*this, std::move(peer), std::move(socket));
      connections.emplace(c.get(), c);
      c->start();
    }
    accept_unix();
  });
}

void ControlServerImpl::accept_tcp() {
  tcp_acceptor->async_wait(asio::socket_base::wait_read, [this](const error_code& ec) {
    if (stopping || ec == asio::error::operation_aborted) return;
    const int fd = ec ? -1 : accept_cloexec(tcp_acceptor->native_handle());
    if (fd < 0) {
      const int e = errno;
      if (!ec && transient_accept_error(e)) return accept_tcp();
      log_limited(kLogAccept, "control: accept on TCP " + config.tcp.listen + ": " +
                                  (ec ? ec.message() : std::strerror(e)));
      retry_accept(false);
      return;
    }
    asio::ip::tcp::socket socket(io);
    error_code ignored;
    socket.assign(tcp_acceptor->local_endpoint(ignored).protocol(), fd, ignored);
    if (ignored) {
      ::close(fd);
      accept_tcp();
      return;
    }
    const auto remote = socket.remote_endpoint(ignored);
    const std::string address = remote.address().to_string();
    ControlPeer peer;
    peer.transport = "tcp:" + (remote.address().is_v6() ? "[" + address + "]" : address) + ":" +
                     std::to_string(remote.port());
    peer.user = "remote@" + address;
    if (connections.size() >= config.max_connections) {
      ++refused_connections;
      log_limited(kLogRefused,
                  "control: refused " + peer.transport + ": too many control connections");
      socket.close(ignored);
    } else {
      auto c =
          std::make_shared<TlsConnection>(*this, std::move(peer), address, std::move(socket), *tls);
      connections.emplace(c.get(), c);
      c->start();
    }
    accept_tcp();
  });
}

// ---- audit, tokens, followers ----------------------------------------------------------------

void ControlServerImpl::audit(const ControlPeer& peer, std::string_view command,
                              std::string_view args, std::string_view outcome,
                              std::string_view message) {
  std::string record = control_audit_record(clock.now(), peer, command, args, outcome, message);
  if (!audit_log.write(record))
    log_limited(kLogAudit, "control: cannot write the audit log " + audit_log.path() + ": " +
                               std::strerror(errno));
  std::string who = peer.user + " (";
  if (peer.uid != ControlPeer::kNoUid)
    who += "uid " + std::to_string(peer.uid) + ", pid " + std::to_string(peer.pid) + ", ";
  who += peer.transport + ")";
  spdlog::info("control: {} {} {}: {}{}{}", who, command.empty() ? std::string_view("-") : command,
               args, outcome, message.empty() ? "" : ": ", message);
}

void ControlServerImpl::log_limited(std::size_t key, const std::string& message) {
  std::uint64_t suppressed = 0;
  if (log_limiter.allow(key, suppressed))
    spdlog::warn("{}{}", message,
                 suppressed ? fmt::format(" [{} similar suppressed]", suppressed) : std::string());
}

std::optional<std::string> ControlServerImpl::check_token(const std::string& address,
                                                          const std::optional<std::string>& token) {
  const auto now = std::chrono::steady_clock::now();
  if (token_failures.blocked(address, now, config.token_failures_allowed))
    return "too many wrong tokens from " + address + "; try again in a minute";
  const Digest presented = sha256(token ? *token : std::string_view());
  if (token && CRYPTO_memcmp(presented.data(), token_digest.data(), presented.size()) == 0)
    return std::nullopt;
  token_failures.record(address, now);
  return token ? "wrong token" : "a token is required";
}

void ControlServerImpl::add_follower(const std::shared_ptr<Connection>& c) {
  std::lock_guard lock(follow_mu);
  c->pending.clear();
  c->overflowed = false;
  followers.push_back(c);
  follower_count.store(followers.size(), std::memory_order_release);
}

void ControlServerImpl::remove_follower(Connection* c) {
  std::shared_ptr<Connection> keep;  // released after the lock
  std::lock_guard lock(follow_mu);
  for (auto it = followers.begin(); it != followers.end(); ++it) {
    if (it->get() != c) continue;
    keep = std::move(*it);
    followers.erase(it);
    break;
  }
  follower_count.store(followers.size(), std::memory_order_release);
}

void ControlServerImpl::publish(ControlStream stream, std::string_view json_object) {
  if (follower_count.load(std::memory_order_acquire) == 0) return;
  if (json_object.empty() || json_object.find('\n') != std::string_view::npos) return;
  const std::string line = control_stream_line(stream, json_object) + "\n";
  std::lock_guard lock(follow_mu);
  bool cut_off = false;
  for (const auto& c : followers) {
    if (c->follow_stream() != stream) continue;
    if (c->pending.size() + line.size() > config.follower_buffer_bytes) {
      // Cut off here rather than wait: the daemon never blocks on an operator's terminal. The io
      // thread tells the client once what it already took is written (or the write times out).
      c->overflowed = true;
      std::string().swap(c->pending);
      ++followers_cut_off;
      cut_off = true;
    } else {
      c->pending += line;
    }
    if (!c->kick_posted) {
      c->kick_posted = true;
      asio::post(io, [c] { c->flush_follow(); });
    }
  }
  if (cut_off) {
    std::erase_if(followers, [](const std::shared_ptr<Connection>& c) { return c->overflowed; });
    follower_count.store(followers.size(), std::memory_order_release);
  }
}

// ---- ControlServer -----------------------------------------------------------------------------

ControlServer::ControlServer(const Clock& clock)
    : impl_(std::make_unique<ControlServerImpl>(clock)) {}

ControlServer::~ControlServer() { stop(); }

bool ControlServer::start(const ControlConfig& config, ControlHandler& handler,
                          std::string& error) {
  if (impl_->running) {
    error = "control: already started";
    return false;
  }
  // Every start gets fresh state (a stopped io_context, a joined pool); the old stats go with it.
  if (impl_->started_once) impl_ = std::make_unique<ControlServerImpl>(impl_->clock);
  impl_->started_once = true;
  impl_->config = config;
  impl_->handler = &handler;
  if (!impl_->start(error)) {
    // Nothing may be left half-open: the socket file goes, the acceptors with the next start.
    impl_->remove_socket_file();
    impl_->unix_acceptor.reset();
    impl_->tcp_acceptor.reset();
    return false;
  }
  return true;
}

void ControlServer::stop() {
  if (!impl_ || !impl_->running) return;
  ControlServerImpl& s = *impl_;
  asio::post(s.io, [&s] { s.shutdown_connections(); });
  // Requests still queued are dropped unexecuted; a handler call in progress finishes (its
  // outcome is audited; the reply goes nowhere).
  s.handler_pool->stop();
  s.handler_pool->join();
  asio::post(s.io, [&s] { s.shutdown_connections(); });
  s.work.reset();
  s.io_thread.join();
  s.remove_socket_file();
  s.audit_log.close();
  s.running = false;
  {
    std::lock_guard lock(s.follow_mu);
    s.followers.clear();
    s.follower_count.store(0);
  }
}

void ControlServer::publish(ControlStream stream, std::string_view json_object) {
  if (impl_) impl_->publish(stream, json_object);
}

int ControlServer::tcp_port() const { return impl_->tcp_port.load(); }

ControlServer::Stats ControlServer::stats() const {
  Stats s;
  s.requests = impl_->requests.load();
  s.refused_connections = impl_->refused_connections.load();
  s.followers_cut_off = impl_->followers_cut_off.load();
  s.token_failures = impl_->token_failure_count.load();
  s.followers = impl_->follower_count.load();
  return s;
}

}  // namespace portalwatch
