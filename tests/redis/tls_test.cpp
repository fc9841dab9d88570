// TLS through OpenSSL against a real TLS redis-server with throwaway certificates:
// the stream itself (handshake, verification, errors), then everything that runs
// over a connection (pool, caches, pipelines, scripts, pub/sub, streams).

#include <cachet/cachet.hpp>
#include <cachet/codec/string.hpp>
#include <cachet/redis/detail/socket_stream.hpp>
#include <cachet/redis/detail/tls_stream.hpp>
#include <cachet/testing/redis_server.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/fake_peer.hpp>
#include <support/guard_fixtures.hpp>
#include <support/server.hpp>
#include <support/tier_fixtures.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

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

// A port on 127.0.0.1 where the kernel accepts connections and nobody ever answers.
struct SilentListener : cachet::test::FakePeer {
  SilentListener() : FakePeer("", FakePeer::silent) {}
};

Deadline in(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

std::unique_ptr<cachet::detail::TlsStream> open_tls(const ConnectionOptions& o, std::chrono::milliseconds limit = 5s) {
  const Deadline deadline = in(limit);
  return std::make_unique<cachet::detail::TlsStream>(cachet::detail::SocketStream::connect(o, deadline), o, deadline);
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
  const std::vector<std::string> tls_1_2_only{"tls-protocols \"TLSv1.2\""};
  for (const bool tls_1_3 : {true, false}) {  // 1.3: the refusal comes on the first read; 1.2: in the handshake
    INFO("TLS 1.3: " << tls_1_3);
    RedisServer server({.tls = true,
                        .tls_auth_clients = TlsClientAuth::yes,
                        .config = tls_1_3 ? std::vector<std::string>{} : tls_1_2_only});
    auto o = server.tls_connection_options();
    REQUIRE_FALSE(o.tls.cert_file.empty());
    CHECK(ask(*open_tls(o), "PING") == "+PONG\r\n");
    o.tls.cert_file.clear();
    o.tls.key_file.clear();
    CHECK_THROWS_AS(ask(*open_tls(o), "PING"), cachet::TlsClientCertificateError);
  }
}

TEST_CASE("min_version: 1.3 against a server that speaks 1.2 only is a TlsError, 1.2 connects") {
  RedisServer server({.tls = true, .config = {"tls-protocols \"TLSv1.2\""}});
  auto o = server.tls_connection_options();
  CHECK(ask(*open_tls(o), "PING") == "+PONG\r\n");
  o.tls.min_version = cachet::TlsVersion::v1_3;
  CHECK_THROWS_AS(open_tls(o), cachet::TlsError);
}

TEST_CASE("a listener that never speaks TLS is a TlsHandshakeTimeoutError within the deadline") {
  SilentListener silent;
  auto o = tls_server().tls_connection_options();
  o.port = silent.port();
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(open_tls(o, 300ms), cachet::TlsHandshakeTimeoutError);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 290ms);
  CHECK(took < 5s);
}

TEST_CASE("a failed handshake leaves this thread's OpenSSL error queue clean") {
  SilentListener closing;  // accepts, reads the ClientHello, closes: the SYSCALL / ZERO_RETURN path
  std::thread peer([&] {
    const int c = ::accept(closing.fd(), nullptr, nullptr);
    char buf[512];
    if (c >= 0) (void)!::read(c, buf, sizeof buf);
    ::close(c);
  });
  auto o = tls_server().tls_connection_options();
  o.port = closing.port();
  ERR_clear_error();
  std::string what;
  try {
    open_tls(o);
  } catch (const cachet::TlsError& e) {
    what = e.what();
  }
  peer.join();
  CHECK(what.find("the server closed the connection") != std::string::npos);
  CHECK(ERR_peek_error() == 0);
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

TEST_CASE("a CA file rotated on disk is read again for new connections, while one is still open") {
  auto o = tls_server().tls_connection_options();
  const auto copy = std::filesystem::temp_directory_path() / ("cachet-rotated-ca-" + std::to_string(::getpid()) + ".pem");
  std::filesystem::copy_file(o.tls.ca_file, copy, std::filesystem::copy_options::overwrite_existing);
  o.tls.ca_file = copy.string();
  auto open = open_tls(o);  // holds the context
  const int builds = cachet::detail::TlsContextCache::builds();
  ask(*open_tls(o), "PING");
  CHECK(cachet::detail::TlsContextCache::builds() == builds);  // unchanged: shared
  // "Rotated": same content, a later modification time (set, not waited for).
  std::filesystem::last_write_time(copy, std::filesystem::last_write_time(copy) + 10s);
  auto rotated = open_tls(o);  // holds the new context
  CHECK(cachet::detail::TlsContextCache::builds() == builds + 1);
  ask(*open_tls(o), "PING");
  CHECK(cachet::detail::TlsContextCache::builds() == builds + 1);  // shared again
  ask(*open, "PING");  // the old connection keeps working on its context
  std::filesystem::remove(copy);
}

// ---- everything that runs over a connection, over TLS ----

namespace {

// The test cache's options: keys t:item:{id}, its own metrics label.
cachet::CacheOptions tls_cache(std::string label) {
  cachet::CacheOptions o = cachet::test::guard_options(std::move(label));
  return o;
}

// The shared TLS server, emptied.
RedisServer& clean_tls_server() {
  tls_server().connect().command({"FLUSHALL"});
  return tls_server();
}

}  // namespace

TEST_CASE("a cache hit over TLS") {
  cachet::Pool pool(clean_tls_server().tls_connection_options());
  auto cache = cachet::make_cache<std::string>(pool, tls_cache("tls-hit"));
  std::atomic<int> loads{0};
  auto load = [&](std::string_view id) {
    ++loads;
    return "value of " + std::string(id);
  };
  CHECK(cache.get_or_load("1", load) == "value of 1");
  CHECK(cache.get_or_load("1", load) == "value of 1");
  CHECK(loads == 1);
  CHECK(cache.metrics().value(cachet::Event::hit) == 1);
  CHECK(tls_server().connect().command({"EXISTS", cache.key("1")}).as_integer() == 1);
}

TEST_CASE("the Pool's constructor lets TLS verification errors out: misconfigurations, not outages") {
  auto o = tls_server().tls_connection_options();
  SECTION("a wrong CA") {
    o.tls.ca_file = tls_server().tls_files().other_ca_cert;
    CHECK_THROWS_AS(cachet::Pool(o), cachet::TlsCertificateError);
  }
  SECTION("a wrong hostname") {
    o.tls.server_name = "wrong.example";
    CHECK_THROWS_AS(cachet::Pool(o), cachet::TlsHostnameError);
  }
  SECTION("no client certificate where the server requires one") {
    RedisServer strict({.tls = true, .tls_auth_clients = TlsClientAuth::yes});
    auto no_cert = strict.tls_connection_options();
    no_cert.tls.cert_file.clear();
    no_cert.tls.key_file.clear();
    CHECK_THROWS_AS(cachet::Pool(no_cert), cachet::TlsClientCertificateError);
    // A connection held directly: the alert drops its transport, so the next
    // command reconnects (and is refused again) instead of finding replies unread.
    no_cert.reconnect.initial = std::chrono::milliseconds{0};
    try {
      cachet::Connection conn(no_cert);  // TLS 1.3: the handshake completes, the alert comes on a read
      CHECK_THROWS_AS(conn.command({"PING"}), cachet::TlsClientCertificateError);
      CHECK(conn.broken());
      CHECK(conn.pending() == 0);
      CHECK_THROWS_AS(conn.command({"PING"}), cachet::ConnectionError);
    } catch (const cachet::TlsClientCertificateError&) {  // refused within the handshake: nothing held
    }
    cachet::Pool pool(strict.tls_connection_options());  // with it: served
    CHECK(pool.acquire()->command({"PING"}).is_status());
  }
  SECTION("dangerously_skip_verification: connects despite the wrong CA") {
    o.tls.ca_file = tls_server().tls_files().other_ca_cert;
    o.tls.dangerously_skip_verification = true;
    cachet::Pool pool(o);
    CHECK(pool.acquire()->command({"PING"}).is_status());
  }
}

TEST_CASE("connect_timeout covers the TCP connect and the TLS handshake") {
  SilentListener silent;
  auto o = tls_server().tls_connection_options();
  o.port = silent.port();
  o.connect_timeout = 300ms;
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(cachet::Connection(o), cachet::TlsHandshakeTimeoutError);
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK_NOTHROW(cachet::Pool(o));  // an unresponsive server is an outage the pool rides out
}

TEST_CASE("pipelines and scripts over TLS, with values larger than a TLS record") {
  cachet::Pool pool(clean_tls_server().tls_connection_options());
  auto lease = pool.acquire();
  const std::string big(100'000, 'x');  // several 16 KiB records each way
  cachet::Pipeline set(*lease);
  for (int i = 0; i < 100; ++i) set.add({"SET", "big:" + std::to_string(i), big + std::to_string(i)});
  CHECK(set.execute().size() == 100);
  cachet::Pipeline get(*lease);
  for (int i = 0; i < 100; ++i) get.add({"GET", "big:" + std::to_string(i)});
  const auto replies = get.execute();
  REQUIRE(replies.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(replies[i].as_string() == big + std::to_string(i));

  const cachet::Script concat("return redis.call('GET', KEYS[1]) .. ARGV[1]");
  CHECK(concat.run(*lease, {"big:7"}, {"!"}).as_string() == big + "7!");
}

TEST_CASE("client tracking over TLS: another client's write evicts the L1 copy") {
  auto& server = clean_tls_server();
  cachet::Pool pool(server.tls_connection_options());
  // A PING unanswered for 2 s (not quick_tracking's 200 ms) loses tracking: a loaded CI under ASan is slow.
  cachet::Tracking tracking(server.tls_connection_options(),
                            {.prefixes = {"t:"}, .ping_interval = 100ms, .ping_timeout = 2s});
  REQUIRE(tracking.wait_live(10s));
  cachet::test::TieredStringCache<> cache(cachet::test::string_tier(pool, &tracking),
                                          cachet::test::tier_options("tls-tracking", cachet::Format::plain));
  auto other = server.connect();
  other.command({"SET", "t:item:k", "1"});
  REQUIRE(tracking.sync(10s));
  REQUIRE(cache.get("k") == "1");
  REQUIRE(cache.store().l1().get("t:item:k"));  // held in process
  other.command({"SET", "t:item:k", "2"});
  CHECK(cachet::test::eventually([&] { return !cache.store().l1().get("t:item:k"); }, 5s));
  CHECK(cache.get("k") == "2");
}

TEST_CASE("the lock notifier over TLS: a waiter is woken by the release, not by its back-off") {
  cachet::Pool pool(clean_tls_server().tls_connection_options());
  const auto r = cachet::test::wake_on_release(pool, 5s, "tls");
  CHECK(r.waited == "value");
  CHECK(r.after_release < 2500ms);  // half the back-off: the notification woke it
  CHECK(r.held == "value");
  CHECK(r.waiter_loads == 0);
}

namespace {

// A batch writer that keeps what it was given.
struct Recorder {
  struct State {
    std::mutex mutex;
    std::vector<std::pair<std::string, std::string>> rows;
  };
  std::shared_ptr<State> state = std::make_shared<State>();
  void operator()(std::span<const cachet::PendingWrite<std::string>> batch) const {
    std::lock_guard lock(state->mutex);
    for (const auto& w : batch) state->rows.emplace_back(w.id, w.value);
  }
};

}  // namespace

TEST_CASE("write-behind over TLS: the stream is written, read by the flusher and acknowledged") {
  cachet::Pool pool(clean_tls_server().tls_connection_options());
  cachet::test::StringCache<cachet::NoGuard> entries(cachet::RedisStore(pool), tls_cache("tls-wb"));
  Recorder recorder;
  cachet::WriteBehindOptions flusher;
  flusher.max_delay = 20ms;
  flusher.poll = 20ms;
  auto cache = cachet::write_behind(entries, recorder, flusher);
  cache.write("1", "a");
  cache.write("2", "b");
  REQUIRE(cache.flush(10s));
  std::lock_guard lock(recorder.state->mutex);
  CHECK(recorder.state->rows == std::vector<std::pair<std::string, std::string>>{{"1", "a"}, {"2", "b"}});
}

TEST_CASE("a TLS server killed and restarted under load: no caller error, and reads reach Redis again") {
  RedisServer server({.tls = true});
  auto o = server.tls_connection_options();
  o.command_timeout = o.connect_timeout = 500ms;
  cachet::Pool pool(o, {.size = 8, .wait_timeout = 2s});
  auto cache = cachet::make_cache<std::string>(pool, tls_cache("tls-restart"));
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, wrong{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 8; ++t)
    readers.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        const std::string id = std::to_string((t * 7 + i) % 20);
        try {
          if (cache.get_or_load(id, [](std::string_view k) { return "v" + std::string(k); }) != "v" + id) ++wrong;
        } catch (...) {
          ++errors;
        }
      }
    });
  const auto& m = cache.metrics();
  auto hits_grow = [&] {
    const auto before = m.value(cachet::Event::hit);
    return cachet::test::eventually([&] { return m.value(cachet::Event::hit) > before + 100; }, 30s);
  };
  CHECK(hits_grow());  // served by Redis
  server.kill();
  CHECK(cachet::test::eventually([&] { return m.value(cachet::Event::redis_error) > 0; }, 30s));  // degraded
  server.restart();
  CHECK(hits_grow());  // served by Redis again
  stop = true;
  for (auto& r : readers) r.join();
  CHECK(errors == 0);
  CHECK(wrong == 0);
}

TEST_CASE("an ACL user and password over TLS, and a refused password is not in any message") {
  const std::string password = "tls-acl-secret-8c1f";
  RedisServer server({.tls = true, .config = {"user app on >" + password + " ~* &* +@all"}});
  auto o = server.tls_connection_options();
  o.user = "app";
  o.password = password;
  cachet::Pool pool(o);
  CHECK(pool.acquire()->command({"ACL", "WHOAMI"}).as_string() == "app");

  o.password = "wrong-" + password;
  try {
    cachet::Pool refused(o);
    FAIL("the pool accepted a wrong password");
  } catch (const cachet::ConfigError& e) {
    const std::string what = e.what();
    CHECK(what.find("WRONGPASS") != std::string::npos);
    CHECK(what.find(password) == std::string::npos);
  }
  try {
    cachet::Connection conn(o);
    FAIL("the connection accepted a wrong password");
  } catch (const cachet::Error& e) {
    CHECK(std::string(e.what()).find(password) == std::string::npos);
  }
}
