// The webhook hook: one HTTP(S) POST per attempt with Boost.Beast, on an io_context of its own run
// by the calling worker thread. A watchdog timer ends the attempt at its timeout or when the runner
// aborts. Its own file because Beast and Asio's TLS are slow to compile.
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <optional>

#include "daemon/hook_actions.h"
#include "portalwatch_version.h"

namespace portalwatch {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using Status = HookAttemptResult::Status;

constexpr std::size_t kResponseBodyLimit = std::size_t{64} * 1024;
constexpr std::size_t kBodyInDetail = 200;

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

// What OpenSSL says about a failed handshake: the certificate check's verdict when that failed.
std::string tls_error(SSL* ssl, const boost::system::error_code& ec) {
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK)
    return std::string("certificate rejected: ") + X509_verify_cert_error_string(verify);
  return ec.message();
}

// One request and its response, over a plain or a TLS stream.
template <class Stream>
class Exchange {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  template <class... StreamArgs>
  Exchange(net::io_context& ioc, const WebhookConfig& w, http::request<http::string_body> request,
           HookAttemptResult& result, std::function<void()> done, StreamArgs&&... stream_args)
      : stream_(std::forward<StreamArgs>(stream_args)...),
        resolver_(ioc),
        w_(w),
        request_(std::move(request)),
        result_(result),
        done_(std::move(done)) {
    parser_.body_limit(kResponseBodyLimit);
  }

  Stream& stream() { return stream_; }
  const char* phase() const { return phase_; }

  void start() {
    phase_ = "resolving the host";
    resolver_.async_resolve(
        w_.host, w_.port,
        [this](const boost::system::error_code& ec, tcp::resolver::results_type r) {
          if (ec) return finish(fmt::format("cannot resolve {}: {}", w_.host, ec.message()));
          phase_ = "connecting";
          beast::get_lowest_layer(stream_).async_connect(
              r, [this](const boost::system::error_code& ec, const tcp::endpoint&) {
                if (ec)
                  return finish(
                      fmt::format("cannot connect to {}:{}: {}", w_.host, w_.port, ec.message()));
                if constexpr (kTls) {
                  phase_ = "in the TLS handshake";
                  stream_.async_handshake(
                      ssl::stream_base::client, [this](const boost::system::error_code& ec) {
                        if (ec)
                          return finish(fmt::format("TLS with {}:{} failed: {}", w_.host, w_.port,
                                                    tls_error(stream_.native_handle(), ec)));
                        send();
                      });
                } else {
                  send();
                }
              });
        });
  }

  // From the watchdog: ends whatever is pending (its handler then runs with operation_aborted).
  void cancel() {
    resolver_.cancel();
    beast::get_lowest_layer(stream_).close();
  }

 private:
  void send() {
    phase_ = "sending the request";
    http::async_write(stream_, request_, [this](const boost::system::error_code& ec, std::size_t) {
      if (ec)
        return finish(fmt::format("cannot send to {}:{}: {}", w_.host, w_.port, ec.message()));
      phase_ = "waiting for the response";
      http::async_read(
          stream_, buffer_, parser_, [this](const boost::system::error_code& ec, std::size_t) {
            // A body past the limit does not matter once the status line is in.
            if (ec && !(ec == http::error::body_limit && parser_.is_header_done()))
              return finish(
                  fmt::format("no response from {}:{}: {}", w_.host, w_.port, ec.message()));
            const auto& response = parser_.get();
            const unsigned status = response.result_int();
            std::string detail = fmt::format("HTTP {} {}", status, std::string(response.reason()));
            if (status >= 200 && status < 300) {
              result_.status = Status::kSuccess;
            } else if (!response.body().empty()) {
              detail +=
                  ": " + escape_for_log(std::string_view(response.body()).substr(0, kBodyInDetail));
            }
            finish(std::move(detail));
          });
    });
  }

  void finish(std::string detail) {
    if (finished_) return;
    finished_ = true;
    result_.detail = std::move(detail);
    boost::system::error_code ignored;
    beast::get_lowest_layer(stream_).socket().close(
        ignored);  // Connection: close; no TLS close_notify wait
    done_();
  }

  Stream stream_;
  tcp::resolver resolver_;
  const WebhookConfig& w_;
  http::request<http::string_body> request_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  HookAttemptResult& result_;
  std::function<void()> done_;
  const char* phase_ = "starting";
  bool finished_ = false;
};

http::request<http::string_body> make_request(const HookConfig& h, const std::string& json) {
  const WebhookConfig& w = h.webhook;
  http::request<http::string_body> req{http::verb::post, w.target, 11};
  std::string host = w.host.find(':') != std::string::npos ? "[" + w.host + "]" : w.host;
  if (w.port != (w.tls ? "443" : "80")) host += ":" + w.port;
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "portalwatch/" PORTALWATCH_VERSION);
  req.set(http::field::content_type, "application/json");
  req.set(http::field::connection, "close");
  for (const auto& [name, value] : w.headers) req.set(name, value);
  if (!w.hmac_secret.empty()) req.set(w.signature_header, webhook_signature(w.hmac_secret, json));
  req.body() = json;
  req.prepare_payload();
  return req;
}

// Runs one exchange to its end, its timeout or the runner's abort.
template <class Stream>
void drive(net::io_context& ioc, Exchange<Stream>& exchange, bool& done, const HookConfig& h,
           const HookAttemptContext& ctx, HookAttemptResult& result) {
  const auto deadline = SteadyClock::now() + h.timeout;
  net::steady_timer watchdog(ioc);
  std::function<void()> arm = [&] {
    const auto left = deadline - SteadyClock::now();
    watchdog.expires_after(std::min<SteadyClock::duration>(left, std::chrono::milliseconds(50)));
    watchdog.async_wait([&](const boost::system::error_code& ec) {
      if (ec || done) return;
      if (SteadyClock::now() >= deadline) {
        result.status = Status::kTimeout;
        result.detail =
            fmt::format("timed out after {} ms {}", h.timeout.count(), exchange.phase());
        done = true;
        exchange.cancel();
        ioc.stop();
      } else if (ctx.aborted()) {
        result.detail = "abandoned: portalwatch is stopping";
        done = true;
        exchange.cancel();
        ioc.stop();
      } else {
        arm();
      }
    });
  };
  exchange.start();
  arm();
  ioc.run();
}

}  // namespace

std::string webhook_signature(std::string_view key, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256=";
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 0xf]);
  }
  return out;
}

HookAttemptResult run_webhook_hook(const HookConfig& h, const std::string& json,
                                   const HookAttemptContext& ctx) {
  HookAttemptResult result;
  const WebhookConfig& w = h.webhook;
  net::io_context ioc(1);
  auto request = make_request(h, json);
  bool done = false;
  // After a timeout or an abort the exchange's own handler must not overwrite the verdict. Once
  // there is one, the io_context stops: what is still pending (the watchdog) is dropped with it.
  HookAttemptResult exchange_result;
  const auto on_done = [&] {
    if (done) return;
    done = true;
    result = std::move(exchange_result);
    ioc.stop();
  };
  if (ctx.started) ctx.started();
  if (!w.tls) {
    Exchange<beast::tcp_stream> exchange(ioc, w, std::move(request), exchange_result, on_done, ioc);
    drive(ioc, exchange, done, h, ctx, result);
    return result;
  }

  ssl::context tls(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
  tls.set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  if (!w.ca_file.empty())
    tls.load_verify_file(w.ca_file, ec);
  else
    tls.set_default_verify_paths(ec);
  if (ec) {
    result.detail = fmt::format("cannot load the CA certificates {}: {}",
                                w.ca_file.empty() ? "of the system" : w.ca_file, ec.message());
    return result;
  }
  Exchange<beast::ssl_stream<beast::tcp_stream>> exchange(ioc, w, std::move(request),
                                                          exchange_result, on_done, ioc, tls);
  SSL* ssl = exchange.stream().native_handle();
  // The certificate must name the host of the URL: a DNS name (also sent as SNI) or an address.
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (is_ip_literal(w.host)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, w.host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, w.host.c_str(), w.host.size());
    SSL_set_tlsext_host_name(ssl, w.host.c_str());
  }
  drive(ioc, exchange, done, h, ctx, result);
  return result;
}

}  // namespace portalwatch
