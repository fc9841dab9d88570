// TLS through OpenSSL: the stream itself (handshake, verification, errors) against
// a real TLS redis-server with throwaway certificates.

#include <cachet/redis/detail/tls_stream.hpp>
#include <cachet/testing/redis_server.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

using namespace std::chrono_literals;
using cachet::ConnectionOptions;
using cachet::detail::Deadline;
using cachet::detail::IoStatus;
using cachet::testing::RedisServer;
using cachet::testing::TlsClientAuth;

namespace {

RedisServer& tls_server() {
  static RedisServer s({.tls = true});
  return s;
}

// A bare TCP socket to 127.0.0.1:port, standing in for the socket stream TLS wraps.
class TcpSocket final : public cachet::detail::Stream {
 public:
  explicit TcpSocket(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~TcpSocket() override { ::close(fd_); }
  cachet::detail::IoResult write_all(const char*, std::size_t, Deadline) override { return {}; }
  cachet::detail::IoResult read_some(char*, std::size_t, Deadline) override { return {}; }
  int fd() const noexcept override { return fd_; }

 private:
  int fd_;
};

Deadline in(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

std::unique_ptr<cachet::detail::TlsStream> open_tls(const ConnectionOptions& o, std::chrono::milliseconds limit = 5s) {
  return std::make_unique<cachet::detail::TlsStream>(std::make_unique<TcpSocket>(o.port), o, in(limit));
}

// Sends `command` (inline RESP) and returns the first reply bytes.
std::string ask(cachet::detail::TlsStream& s, const std::string& command) {
  const std::string line = command + "\r\n";
  const auto w = s.write_all(line.data(), line.size(), in(5s));
  INFO(w.reason);
  REQUIRE(w.status == IoStatus::done);
  char buf[256];
  const auto r = s.read_some(buf, sizeof buf, in(5s));
  INFO(r.reason);
  REQUIRE(r.status == IoStatus::done);
  return std::string(buf, r.bytes);
}

}  // namespace

TEST_CASE("a TLS stream verifies the test CA's server certificate and carries commands") {
  auto o = tls_server().tls_connection_options();
  auto s = open_tls(o);
  CHECK(ask(*s, "PING") == "+PONG\r\n");
  CHECK_FALSE(s->has_buffered_input());
}

TEST_CASE("a TLS stream verifies the name: localhost, and the IP the certificate names") {
  auto o = tls_server().tls_connection_options();
  o.tls.server_name = "localhost";
  CHECK(ask(*open_tls(o), "PING") == "+PONG\r\n");
  o.tls.server_name = "127.0.0.1";
  CHECK(ask(*open_tls(o), "PING") == "+PONG\r\n");
}

TEST_CASE("a server certificate from another CA is a TlsCertificateError naming the server and the reason") {
  auto o = tls_server().tls_connection_options();
  o.tls.ca_file = tls_server().tls_files().other_ca_cert;
  try {
    open_tls(o);
    FAIL("connected");
  } catch (const cachet::TlsCertificateError& e) {
    const std::string what = e.what();
    CHECK(what.find(o.endpoint()) != std::string::npos);
    INFO(what);
    CHECK(what.find("not trusted") != std::string::npos);
    CHECK(what.find("certificate") != std::string::npos);
  }
}

TEST_CASE("dangerously_skip_verification connects despite a wrong CA and a wrong name") {
  auto o = tls_server().tls_connection_options();
  o.tls.ca_file = tls_server().tls_files().other_ca_cert;
  o.tls.server_name = "wrong.example";
  o.tls.dangerously_skip_verification = true;
  CHECK(ask(*open_tls(o), "PING") == "+PONG\r\n");
}

TEST_CASE("a certificate not for the name or IP connected to is a TlsHostnameError") {
  auto o = tls_server().tls_connection_options();
  o.tls.server_name = "wrong.example";
  CHECK_THROWS_AS(open_tls(o), cachet::TlsHostnameError);
  o.tls.server_name = "127.0.0.2";
  CHECK_THROWS_AS(open_tls(o), cachet::TlsHostnameError);
  o.tls.verify_hostname = false;  // the chain is still checked, the name not
  CHECK(ask(*open_tls(o), "PING") == "+PONG\r\n");
}

TEST_CASE("a server that requires a client certificate: refused without one, served with one") {
  RedisServer server({.tls = true, .tls_auth_clients = TlsClientAuth::yes});
  auto o = server.tls_connection_options();
  REQUIRE_FALSE(o.tls.cert_file.empty());
  CHECK(ask(*open_tls(o), "PING") == "+PONG\r\n");

  o.tls.cert_file.clear();
  o.tls.key_file.clear();
  for (auto version : {cachet::TlsVersion::v1_2, cachet::TlsVersion::v1_3}) {
    o.tls.min_version = version;
    CHECK_THROWS_AS(ask(*open_tls(o), "PING"), cachet::TlsClientCertificateError);  // TLS 1.3: on the read
  }
}

TEST_CASE("TLS 1.2 only when asked: the minimum version is honoured") {
  auto o = tls_server().tls_connection_options();
  o.tls.min_version = cachet::TlsVersion::v1_3;
  CHECK(ask(*open_tls(o), "PING") == "+PONG\r\n");
}

TEST_CASE("a listener that never speaks TLS is a TlsHandshakeTimeoutError within the deadline") {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 4) == 0);  // the kernel accepts; nobody ever answers
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  auto o = tls_server().tls_connection_options();
  o.port = ntohs(addr.sin_port);
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(open_tls(o, 300ms), cachet::TlsHandshakeTimeoutError);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 290ms);
  CHECK(took < 5s);
  ::close(fd);
}

TEST_CASE("TLS files that cannot be used are ConfigErrors naming the option, never a key's content") {
  auto o = tls_server().tls_connection_options();
  const auto& files = tls_server().tls_files();
  SECTION("an unreadable CA file") {
    o.tls.ca_file = files.ca_cert + ".missing";
    CHECK_THROWS_WITH(open_tls(o), Catch::Contains("TlsOptions::ca_file"));
  }
  SECTION("a key that is not the certificate's") {
    o.tls.cert_file = files.client_cert;
    o.tls.key_file = files.server_key;
    try {
      open_tls(o);
      FAIL("connected");
    } catch (const cachet::ConfigError& e) {
      const std::string what = e.what();
      CHECK(what.find("TlsOptions::key_file") != std::string::npos);
      CHECK(what.find("PRIVATE KEY") == std::string::npos);
    }
  }
  SECTION("a certificate without its key") {
    o.tls.cert_file = files.client_cert;
    CHECK_THROWS_AS(open_tls(o), cachet::ConfigError);
  }
}

TEST_CASE("connections with the same TLS options share one OpenSSL context") {
  auto o = tls_server().tls_connection_options();
  auto first = open_tls(o);
  const int builds = cachet::detail::TlsContextCache::builds();
  for (int i = 0; i < 8; ++i) ask(*open_tls(o), "PING");
  CHECK(cachet::detail::TlsContextCache::builds() == builds);
}
