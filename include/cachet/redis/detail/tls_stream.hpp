#pragma once
// TLS over a connected socket stream, through OpenSSL's libssl. The socket is
// non-blocking: the handshake, each read and each write wait in poll() for
// what OpenSSL asks for (WANT_READ / WANT_WRITE), up to the caller's deadline.

#include <cachet/redis/detail/stream.hpp>
#include <cachet/redis/detail/tls_context.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

namespace cachet::detail {

inline bool is_ip_literal(const std::string& host) {
  unsigned char addr[16];
  return ::inet_pton(AF_INET, host.c_str(), addr) == 1 || ::inet_pton(AF_INET6, host.c_str(), addr) == 1;
}

class TlsStream final : public Stream {
 public:
  // Takes over `socket` (connected) and completes the handshake by `deadline`;
  // throws a TlsError (or TlsHandshakeTimeoutError, ConfigError) naming the server.
  TlsStream(std::unique_ptr<Stream> socket, const ConnectionOptions& options, Deadline deadline) try
      : socket_(std::move(socket)), endpoint_(options.endpoint()), ctx_(TlsContextCache::get(options.tls)) {
    ssl_.reset(SSL_new(ctx_.get()));
    if (!ssl_) throw TlsError(message("cannot start TLS", take_openssl_error()));
    const int fd = socket_->fd();
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    SSL_set_fd(ssl_.get(), fd);
    name_server(options);
    handshake(deadline);
  } catch (...) {
    ERR_clear_error();  // the destructor does not run: leave this thread's error queue clean for its next SSL call
  }  // (rethrown)
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // close_notify, without waiting for the server's: the socket closes next.
  ~TlsStream() override {
    if (!broken_) SSL_shutdown(ssl_.get());
    ERR_clear_error();
  }

  IoResult write_all(const char* data, std::size_t size, Deadline deadline) override {
    while (size > 0) {
      std::size_t written = 0;
      clear_errors();
      const int rc = SSL_write_ex(ssl_.get(), data, size, &written);
      if (rc == 1) {
        data += written;
        size -= written;
        continue;
      }
      if (IoResult r = wait_or_fail(rc, deadline); r.status != IoStatus::done) {
        if (r.status != IoStatus::timeout) read_alert();
        return r;
      }
    }
    return {};
  }

  IoResult read_some(char* buffer, std::size_t capacity, Deadline deadline) override {
    for (;;) {
      std::size_t got = 0;
      clear_errors();
      const int rc = SSL_read_ex(ssl_.get(), buffer, capacity, &got);
      if (rc == 1) return {.status = IoStatus::done, .bytes = got};
      if (IoResult r = wait_or_fail(rc, deadline); r.status != IoStatus::done) return r;
    }
  }

  int fd() const noexcept override { return socket_->fd(); }
  bool has_buffered_input() const noexcept override {
    return SSL_pending(ssl_.get()) > 0 || SSL_has_pending(ssl_.get()) == 1;
  }

 private:
  struct SslFree {
    void operator()(SSL* s) const noexcept { SSL_free(s); }
  };

  // SSL_get_error reads this thread's error queue and errno: start both clean.
  static void clear_errors() noexcept {
    ERR_clear_error();
    errno = 0;
  }

  std::string message(const char* what, const std::string& detail) const {
    return fmt::format("redis at {}: {}{}{}", endpoint_, what, detail.empty() ? "" : ": ", detail);
  }

  // SNI for a name (never for an IP literal), and the name or IP the certificate must carry.
  void name_server(const ConnectionOptions& options) {
    const std::string& name = options.tls.server_name.empty() ? options.host : options.tls.server_name;
    const bool ip = is_ip_literal(name);
    if (!ip) SSL_set_tlsext_host_name(ssl_.get(), name.c_str());
    if (!options.tls.verify_hostname || options.tls.dangerously_skip_verification) return;
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                      : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1) throw ConfigError(message("TlsOptions::server_name cannot be used", name));
  }

  void handshake(Deadline deadline) {
    for (;;) {
      clear_errors();
      const int rc = SSL_connect(ssl_.get());
      if (rc == 1) return;
      const int err = SSL_get_error(ssl_.get(), rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        const IoStatus s = poll_until(fd(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
        if (s == IoStatus::timeout) {
          broken_ = true;
          throw TlsHandshakeTimeoutError(message("the TLS handshake did not finish within connect_timeout", ""));
        }
        if (s == IoStatus::done) continue;
      }
      broken_ = true;
      throw_handshake_failure(err);
    }
  }

  [[noreturn]] void throw_handshake_failure(int err) {
    const long verify = SSL_get_verify_result(ssl_.get());
    if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      ERR_clear_error();
      throw TlsHostnameError(message("the server's TLS certificate is not for this host (check ConnectionOptions::host "
                                     "or TlsOptions::server_name)", X509_verify_cert_error_string(verify)));
    }
    if (verify != X509_V_OK) {
      ERR_clear_error();
      throw TlsCertificateError(message("the server's TLS certificate is not trusted (check TlsOptions::ca_file, "
                                        "ca_dir)", X509_verify_cert_error_string(verify)));
    }
    throw_if_client_certificate_refused();
    const std::string why = err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN
                                ? std::string("the server closed the connection (does it serve TLS on this port?)")
                                : take_openssl_error();
    throw TlsError(message("TLS handshake failed", why));
  }

  // The server refused us for want of a client certificate: during the handshake
  // (TLS 1.2), or with an alert on the first read after it (TLS 1.3).
  void throw_if_client_certificate_refused() {
    const int reason = ERR_GET_REASON(ERR_peek_last_error());
    const bool asked = SSL_get_ex_data(ssl_.get(), tls_client_cert_requested_index()) != nullptr;
    const bool alert = reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
                       reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
                       reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
                       (asked && reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE);
    if (!alert) return;
    const std::string why = take_openssl_error();
    throw TlsClientCertificateError(message(
        "the server requires a trusted client certificate (set TlsOptions::cert_file and key_file)", why));
  }

  // A write failed: the server may have said why (TLS 1.3's certificate_required
  // comes after the handshake) before closing. Read it, without waiting.
  void read_alert() {
    char byte;
    std::size_t got = 0;
    clear_errors();
    if (SSL_read_ex(ssl_.get(), &byte, 1, &got) != 1 && SSL_get_error(ssl_.get(), 0) == SSL_ERROR_SSL)
      throw_if_client_certificate_refused();
    ERR_clear_error();
  }

  // After an SSL_read/SSL_write that did not succeed: waits for what OpenSSL
  // needs (done: try again), or says why the stream cannot go on.
  IoResult wait_or_fail(int rc, Deadline deadline) {
    const int err = SSL_get_error(ssl_.get(), rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      const IoStatus s = poll_until(fd(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
      if (s == IoStatus::failed) broken_ = true;
      return {.status = s, .reason = s == IoStatus::failed ? std::string(std::strerror(errno)) : std::string()};
    }
    broken_ = true;
    if (err == SSL_ERROR_ZERO_RETURN) return {.status = IoStatus::closed, .reason = "the server ended the TLS session"};
    if (err == SSL_ERROR_SYSCALL) {
      const int os_error = errno;
      ERR_clear_error();
      return {.status = os_error == 0 ? IoStatus::closed : IoStatus::failed,
              .reason = os_error == 0 ? "connection closed" : std::strerror(os_error)};
    }
    throw_if_client_certificate_refused();
    return {.status = IoStatus::failed, .reason = "TLS: " + take_openssl_error()};
  }

  std::unique_ptr<Stream> socket_;  // outlives ssl_ (declared first): SSL_shutdown writes to it
  std::string endpoint_;
  TlsContextCache::Ptr ctx_;
  std::unique_ptr<SSL, SslFree> ssl_;
  bool broken_ = false;  // after a fatal error OpenSSL must not send close_notify
};

}  // namespace cachet::detail
