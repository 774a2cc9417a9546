#include "daemon/control_client.h"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <sys/un.h>

#include <array>
// clang-format off
#include <utility>  // first: Boost 1.74's Asio uses std::exchange without including it
#include <boost/asio.hpp>
// clang-format on
#include <boost/asio/ssl.hpp>
#include <cerrno>

#include "daemon/control_protocol.h"

namespace portalwatch {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

using IoHandler = std::function<void(const error_code&, std::size_t)>;
using SteadyClock = std::chrono::steady_clock;

/// Replies carry at most a thousand findings; anything far beyond is not the daemon talking.
constexpr std::size_t kMaxReplyBytes = 64 << 20;

}  // namespace

/// A connection: the io_context, the transport, and what was read but not yet returned. Every
/// operation is asynchronous and run here until it completes or its deadline passes.
struct ControlClientImpl {
  virtual ~ControlClientImpl() = default;
  virtual void async_read_some(asio::mutable_buffer buffer, IoHandler done) = 0;
  virtual void async_write(asio::const_buffer buffer, IoHandler done) = 0;
  virtual void close() = 0;

  /// Runs until done or the deadline; on the deadline the transport is closed (the pending
  /// operation then completes as aborted) and false is returned.
  bool run_until(const bool& done, std::optional<SteadyClock::time_point> deadline) {
    io.restart();
    while (!done) {
      const std::size_t ran = deadline ? io.run_one_until(*deadline) : io.run_one();
      if (ran == 0) break;
    }
    if (done) return true;
    close();
    broken = true;
    io.restart();
    io.run();
    return false;
  }

  bool write_all(std::string_view bytes, std::optional<SteadyClock::time_point> deadline) {
    if (broken) return false;
    bool done = false;
    error_code result;
    async_write(asio::buffer(bytes.data(), bytes.size()), [&](const error_code& ec, std::size_t) {
      result = ec;
      done = true;
    });
    if (!run_until(done, deadline) || result) {
      broken = true;
      return false;
    }
    return true;
  }

  std::optional<std::string> read_line(std::optional<SteadyClock::time_point> deadline) {
    for (;;) {
      const auto newline = in.find('\n');
      if (newline != std::string::npos) {
        std::string line = in.substr(0, newline);
        in.erase(0, newline + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (broken || in.size() > kMaxReplyBytes) return std::nullopt;
      bool done = false;
      error_code result;
      std::size_t got = 0;
      async_read_some(asio::buffer(chunk), [&](const error_code& ec, std::size_t n) {
        result = ec;
        got = n;
        done = true;
      });
      if (!run_until(done, deadline)) return std::nullopt;
      in.append(chunk.data(), got);
      if (result) broken = true;  // end of stream (a TLS peer that just closes is "truncated")
    }
  }

  asio::io_context io;
  std::string token;
  std::string in;
  std::array<char, 64 * 1024> chunk{};
  bool broken = false;
};

namespace {

std::optional<SteadyClock::time_point> deadline_after(
    std::optional<ControlClient::Timeout> timeout) {
  if (!timeout) return std::nullopt;
  return SteadyClock::now() + *timeout;
}

struct UnixClient final : ControlClientImpl {
  UnixClient() : socket(io) {}
  ~UnixClient() override { close(); }
  void async_read_some(asio::mutable_buffer buffer, IoHandler done) override {
    socket.async_read_some(buffer, std::move(done));
  }
  void async_write(asio::const_buffer buffer, IoHandler done) override {
    asio::async_write(socket, buffer, std::move(done));
  }
  void close() override {
    error_code ec;
    socket.close(ec);
  }
  asio::local::stream_protocol::socket socket;
};

struct TlsClient final : ControlClientImpl {
  TlsClient() : context(asio::ssl::context::tls_client) {}
  ~TlsClient() override { close(); }
  void async_read_some(asio::mutable_buffer buffer, IoHandler done) override {
    stream->async_read_some(buffer, std::move(done));
  }
  void async_write(asio::const_buffer buffer, IoHandler done) override {
    asio::async_write(*stream, buffer, std::move(done));
  }
  void close() override {
    error_code ec;
    if (stream) stream->lowest_layer().close(ec);
  }
  asio::ssl::context context;
  /// Made once the context is complete: OpenSSL copies the verify mode and protocol versions
  /// into each connection when it is created.
  std::optional<asio::ssl::stream<asio::ip::tcp::socket>> stream;
};

// Boost 1.74's Asio opens sockets without close-on-exec; a program using this client that starts
// others should not hand them its connection to the daemon.
void set_cloexec(int fd) {
  if (fd >= 0) ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
}

std::string unix_hint(int e) {
  switch (e) {
    case ENOENT:
      return " (is portalwatchd running, with control.socket set to this path? --socket or "
             "--config chooses another)";
    case EACCES:
    case EPERM:
      return " (only the daemon's user and members of the socket's group, control.socket_group, "
             "may connect: "
             "check ls -l on the socket and your groups; a new group membership needs a new login)";
    case ECONNREFUSED:
      return " (nothing is listening: portalwatchd is not running, or this socket was left behind "
             "by one that "
             "stopped)";
    case ENOTDIR:
      return " (a part of the path is not a directory)";
    default:
      return "";
  }
}

}  // namespace

ControlClient::ControlClient(std::unique_ptr<ControlClientImpl> impl) : impl_(std::move(impl)) {}
ControlClient::~ControlClient() = default;

std::unique_ptr<ControlClient> ControlClient::connect_unix(const std::string& path,
                                                           ControlConnectError& error,
                                                           Timeout timeout) {
  const std::string where = "cannot connect to the control socket " + path;
  if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    error = {ENAMETOOLONG, where + ": the path is empty or longer than 107 bytes"};
    return nullptr;
  }
  auto impl = std::make_unique<UnixClient>();
  bool done = false;
  error_code result;
  impl->socket.open(asio::local::stream_protocol(), result);
  if (result) {
    error = {result.value(), where + ": " + result.message()};
    return nullptr;
  }
  set_cloexec(impl->socket.native_handle());
  impl->socket.async_connect(asio::local::stream_protocol::endpoint(path),
                             [&](const error_code& ec) {
                               result = ec;
                               done = true;
                             });
  if (!impl->run_until(done, SteadyClock::now() + timeout)) {
    error = {ETIMEDOUT, where + ": no answer within " + std::to_string(timeout.count() / 1000) +
                            " s (the daemon's control server is stuck or overloaded)"};
    return nullptr;
  }
  if (result) {
    const int e = result.value();
    error = {e, where + ": " + result.message() + unix_hint(e)};
    return nullptr;
  }
  return std::unique_ptr<ControlClient>(new ControlClient(std::move(impl)));
}

std::unique_ptr<ControlClient> ControlClient::connect_tcp(const std::string& host_port,
                                                          const ControlTlsOptions& tls,
                                                          std::string token,
                                                          ControlConnectError& error,
                                                          Timeout timeout) {
  const std::string where = "cannot connect to " + host_port;
  const auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == host_port.size()) {
    error = {0, where + ": expected HOST:PORT"};
    return nullptr;
  }
  std::string host = host_port.substr(0, colon);
  const std::string port = host_port.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const auto deadline = SteadyClock::now() + timeout;

  auto impl = std::make_unique<TlsClient>();
  impl->token = std::move(token);
  error_code ec;
  SSL_CTX_set_min_proto_version(impl->context.native_handle(), TLS1_2_VERSION);
  impl->context.set_verify_mode(asio::ssl::verify_peer);
  if (tls.ca_file.empty()) {
    impl->context.set_default_verify_paths(ec);
  } else {
    impl->context.load_verify_file(tls.ca_file, ec);
  }
  if (ec) {
    error = {0, "cannot read the CA certificates " +
                    (tls.ca_file.empty() ? std::string("of the system") : tls.ca_file) + ": " +
                    ec.message()};
    return nullptr;
  }
  impl->stream.emplace(impl->io, impl->context);
  // The certificate must name the host dialled (a DNS name or an IP address in subjectAltName).
  impl->stream->set_verify_callback(asio::ssl::host_name_verification(host));
  error_code not_an_address;
  asio::ip::make_address(host, not_an_address);
  if (not_an_address) SSL_set_tlsext_host_name(impl->stream->native_handle(), host.c_str());

  asio::ip::tcp::resolver resolver(impl->io);
  asio::ip::tcp::resolver::results_type endpoints;
  bool done = false;
  error_code result;
  resolver.async_resolve(host, port,
                         [&](const error_code& e, asio::ip::tcp::resolver::results_type r) {
                           result = e;
                           endpoints = std::move(r);
                           done = true;
                         });
  if (!impl->run_until(done, deadline) || result) {
    error = {0, where + ": cannot resolve " + host + ": " +
                    (result ? result.message() : std::string("timed out"))};
    return nullptr;
  }
  done = false;
  asio::async_connect(impl->stream->lowest_layer(), endpoints,
                      [&](const error_code& e, const asio::ip::tcp::endpoint&) {
                        result = e;
                        done = true;
                      });
  if (!impl->run_until(done, deadline) || result) {
    const int e = result ? result.value() : ETIMEDOUT;
    error = {e, where + ": " + (result ? result.message() : std::string("timed out")) +
                    (e == ECONNREFUSED ? " (is control.tcp enabled in the daemon's configuration?)"
                                       : "")};
    return nullptr;
  }
  set_cloexec(impl->stream->lowest_layer().native_handle());
  done = false;
  impl->stream->async_handshake(asio::ssl::stream_base::client, [&](const error_code& e) {
    result = e;
    done = true;
  });
  if (!impl->run_until(done, deadline) || result) {
    error = {0, where + ": TLS handshake failed: " +
                    (result ? result.message() : std::string("timed out")) +
                    " (is --ca-file the certificate, or the CA of the certificate, in "
                    "control.tcp.tls_certificate, "
                    "and does it name " +
                    host + "?)"};
    return nullptr;
  }
  return std::unique_ptr<ControlClient>(new ControlClient(std::move(impl)));
}

std::string ControlClient::request_line(const ControlRequest& request) const {
  return control_request_json(request, impl_->token);
}

ControlReply ControlClient::call(const ControlRequest& request, Timeout timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  if (!impl_->write_all(request_line(request) + "\n", deadline))
    return ControlReply::failure(kControlDisconnected, "the daemon closed the connection");
  auto line = impl_->read_line(deadline);
  if (!line) {
    return ControlReply::failure(
        kControlDisconnected,
        SteadyClock::now() >= deadline
            ? "no reply within " + std::to_string(timeout.count() / 1000) + " s"
            : std::string("the daemon closed the connection without a reply"));
  }
  return parse_control_reply(*line);
}

bool ControlClient::send_raw(std::string_view bytes, Timeout timeout) {
  return impl_->write_all(bytes, SteadyClock::now() + timeout);
}

std::optional<std::string> ControlClient::read_line(std::optional<Timeout> timeout) {
  return impl_->read_line(deadline_after(timeout));
}

}  // namespace portalwatch
