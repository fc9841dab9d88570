#pragma once
// Errors of the Redis layer. The hierarchy tells an I/O failure from a timeout
// from a server's refusal, so callers (and the degradation logic) can react to each.
//
//   Error
//   ├── ConnectionError        cannot connect, connection lost, server closed it
//   │   ├── TimeoutError       connect or command timeout
//   │   │   └── TlsHandshakeTimeoutError  the TLS handshake did not finish within connect_timeout
//   │   ├── HandshakeError     a pooled connection's AUTH/SELECT was refused
//   │   └── TlsError           the TLS layer failed (see docs/tls.md)
//   │       ├── TlsCertificateError        the server's certificate is not trusted
//   │       ├── TlsHostnameError           ... or is not for the name/IP connected to
//   │       └── TlsClientCertificateError  the server requires a client certificate
//   ├── ConfigError            the Pool's constructor found the configuration cannot work
//   ├── ReplyError             the server answered with an error (WRONGTYPE, NOSCRIPT, OOM, ...)
//   │   └── ClusterRedirectError  a cluster redirected a command more than ClusterOptions::max_redirects times
//   ├── ProtocolError          the peer does not speak RESP
//   ├── ReplyTypeError         a reply accessed as a type it is not
//   └── PoolTimeoutError       no pooled connection became free in time

#include <cachet/error.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace cachet {

class ConnectionError : public Error {
 public:
  using Error::Error;
};

class TimeoutError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

// The server refused a new connection's set-up (AUTH, SELECT): WRONGPASS after a
// password rotation, say. Thrown by the Pool, which cannot open connections
// until that is fixed, so it counts as an outage.
class HandshakeError : public ConnectionError {
 public:
  explicit HandshakeError(const std::string& server_message)
      : ConnectionError("redis refused the connection set-up: " + server_message), message_(server_message) {}
  const std::string& server_message() const noexcept { return message_; }

 private:
  std::string message_;
};

// TLS failed: the handshake, or a record later (a corrupt record, an alert).
// Every message names the server; none carries a key or a password.
class TlsError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

// The server's certificate chain does not verify against the trusted CAs
// (TlsOptions::ca_file/ca_dir, or the system store); the message carries
// OpenSSL's reason ("unable to get local issuer certificate", "certificate has expired").
class TlsCertificateError : public TlsError {
 public:
  using TlsError::TlsError;
};

// The certificate is trusted but names neither TlsOptions::server_name (default:
// ConnectionOptions::host) nor, for an IP address, that IP.
class TlsHostnameError : public TlsError {
 public:
  using TlsError::TlsError;
};

// The server requires a client certificate (mutual TLS, redis' tls-auth-clients)
// and none was sent, or the one sent was refused. Over TLS 1.3 the server's alert
// arrives after the handshake, on the first read: it is mapped there too.
class TlsClientCertificateError : public TlsError {
 public:
  using TlsError::TlsError;
};

// The TLS handshake did not finish within ConnectionOptions::connect_timeout
// (which covers the TCP connect and the handshake): a listener that is not a TLS
// server, or one too loaded to answer. A TimeoutError, like any other expired
// deadline (so it is *not* a TlsError: C++ cannot derive from both without two
// ConnectionError bases).
class TlsHandshakeTimeoutError : public TimeoutError {
 public:
  using TimeoutError::TimeoutError;
};

// The configuration cannot work: the server refused AUTH/SELECT/CLIENT SETNAME
// (WRONGPASS, NOAUTH, NOPERM, ERR DB index out of range), the peer does not
// speak RESP (a wrong port), the unix socket path has no socket, or a TLS file
// (TlsOptions::ca_file, cert_file, key_file, ...) cannot be used (that one from
// any connection's set-up). Thrown by the Pool's constructor, which opens one
// connection to check, so a misconfiguration reaches the application at start-up
// instead of looking like an outage (an unreachable server is tolerated there).
class ConfigError : public Error {
 public:
  using Error::Error;
};

class ReplyError : public Error {
 public:
  explicit ReplyError(std::string server_message)
      : Error("redis: " + server_message), message_(std::move(server_message)) {}

  // The server's full message, e.g. "WRONGTYPE Operation against a key holding ...".
  const std::string& server_message() const noexcept { return message_; }

  // The error code: the message's first word ("WRONGTYPE", "NOSCRIPT", "OOM", "ERR").
  std::string_view code() const noexcept {
    std::string_view m = message_;
    return m.substr(0, m.find(' '));
  }

  bool is(std::string_view code_word) const noexcept { return code() == code_word; }

 protected:
  ReplyError(const std::string& what, std::string server_message)
      : Error(what), message_(std::move(server_message)) {}

 private:
  std::string message_;
};

// A Redis Cluster kept redirecting a command (MOVED, ASK) past
// ClusterOptions::max_redirects; server_message() is the last redirection.
class ClusterRedirectError : public ReplyError {
 public:
  ClusterRedirectError(int slot, int max_redirects, std::string last_redirect)
      : ReplyError("redis cluster: slot " + std::to_string(slot) + " still redirected after " +
                       std::to_string(max_redirects) + " redirection(s) (ClusterOptions::max_redirects); last: " +
                       last_redirect,
                   std::move(last_redirect)) {}
};

class ProtocolError : public Error {
 public:
  using Error::Error;
};

class ReplyTypeError : public Error {
 public:
  using Error::Error;
};

class PoolTimeoutError : public Error {
 public:
  using Error::Error;
};

}  // namespace cachet
