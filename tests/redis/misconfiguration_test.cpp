// What a user sees when the Redis options are wrong (a ConfigError from the
// Pool's constructor) versus when the server is down (tolerated), and what a
// timeout or an I/O error says: the command, the server, how long, which option.

#include <cachet/redis/pool.hpp>
#include <cachet/testing/redis_server.hpp>

#include <catch2/catch.hpp>
#include <support/errors.hpp>
#include <support/fake_peer.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::test::throws_exactly;

namespace {

// The message of the cachet error `f` throws; fails the test if it throws none.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("no " << typeid(E).name() << " thrown");
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// SIGSTOP: the server process stops answering (the kernel still accepts connections); SIGCONT on scope exit.
class Stopped {
 public:
  explicit Stopped(const cachet::testing::RedisServer& s) : pid_(s.pid()) { ::kill(pid_, SIGSTOP); }
  ~Stopped() { ::kill(pid_, SIGCONT); }
  Stopped(const Stopped&) = delete;
  Stopped& operator=(const Stopped&) = delete;

 private:
  pid_t pid_;
};

// Something that is not Redis (an HTTP server) on a TCP port of 127.0.0.1.
struct NotRedis : cachet::test::FakePeer {
  explicit NotRedis(std::string answer) : FakePeer(std::move(answer), FakePeer::close_after) {}
};

}  // namespace

TEST_CASE("a wrong password is a ConfigError from the pool's constructor") {
  cachet::testing::RedisServer server({.config = {"requirepass right"}});
  auto o = server.connection_options();
  o.password = "wrong";
  const std::string what = message_of<cachet::ConfigError>([&] { cachet::Pool pool(o); });
  CHECK(contains(what, "WRONGPASS"));
  CHECK(contains(what, server.socket_path()));
  CHECK(contains(what, "ConnectionOptions::"));
}

TEST_CASE("a password the server requires but was not given is a ConfigError (NOAUTH)") {
  cachet::testing::RedisServer server({.config = {"requirepass right"}});
  CHECK(contains(message_of<cachet::ConfigError>([&] { cachet::Pool pool(server.connection_options()); }), "NOAUTH"));
}

TEST_CASE("a password given to a server that has none is a ConfigError") {
  cachet::testing::RedisServer server;
  auto o = server.connection_options();
  o.password = "unneeded";
  CHECK(throws_exactly<cachet::ConfigError>([&] { cachet::Pool pool(o); }));
}

TEST_CASE("a database index the server does not have is a ConfigError") {
  cachet::testing::RedisServer server;
  auto o = server.connection_options();
  o.db = 99;  // the default server has 16
  CHECK(contains(message_of<cachet::ConfigError>([&] { cachet::Pool pool(o); }), "DB index"));
}

TEST_CASE("a unix socket path with no socket is a ConfigError") {
  cachet::testing::RedisServer server;  // for a directory that exists
  auto o = server.connection_options();
  SECTION("no such file") {
    o.path = server.directory() + "/no-such.sock";
    const std::string what = message_of<cachet::ConfigError>([&] { cachet::Pool pool(o); });
    CHECK(contains(what, o.path));
    CHECK(contains(what, "no such file"));
    CHECK(contains(what, "ConnectionOptions::path"));
  }
  SECTION("a regular file") {
    o.path = server.directory() + "/redis.conf";
    CHECK(contains(message_of<cachet::ConfigError>([&] { cachet::Pool pool(o); }), "not a socket"));
  }
}

TEST_CASE("a server that is down is an outage, not a ConfigError: the pool is made and backs off") {
  cachet::testing::RedisServer server({.tcp = true});
  auto unix_options = server.connection_options();
  auto tcp_options = server.tcp_connection_options();
  unix_options.connect_timeout = tcp_options.connect_timeout = 500ms;
  server.kill();  // its socket file stays, as after a crash; the port refuses
  for (const auto& o : {unix_options, tcp_options}) {
    cachet::Pool pool(o);
    CHECK(throws_exactly<cachet::ConnectionError>([&] { pool.acquire(); }));
  }
}

TEST_CASE("a server that stops answering is an outage at construction too") {
  cachet::testing::RedisServer server;
  auto o = server.connection_options();
  o.command_timeout = 100ms;
  Stopped stopped(server);
  cachet::Pool pool(o);  // the PING times out: tolerated
  CHECK(pool.stats().idle == 0);
}

TEST_CASE("a server at maxclients is an outage at construction, not a ConfigError") {
  cachet::testing::RedisServer server({.config = {"maxclients 1"}});
  auto held = server.connect();  // the one client it takes: the next is told "ERR max number of clients reached"
  CHECK_NOTHROW(cachet::Pool(server.connection_options()));
}

TEST_CASE("on_handshake_error is not called for a refusal the constructor throws as ConfigError") {
  cachet::testing::RedisServer server({.config = {"requirepass right"}});
  auto o = server.connection_options();
  o.password = "wrong";
  int calls = 0;
  CHECK(throws_exactly<cachet::ConfigError>(
      [&] { cachet::Pool pool(o, {.on_handshake_error = [&](const cachet::HandshakeError&) { ++calls; }}); }));
  CHECK(calls == 0);
}

TEST_CASE("a port where something else than Redis answers (HTTP) is a ConfigError naming the server") {
  NotRedis http("HTTP/1.1 400 Bad Request\r\n\r\n");
  cachet::ConnectionOptions o;
  o.port = http.port();
  o.connect_timeout = o.command_timeout = 10'000ms;  // generous: the answer comes at once
  const std::string what = message_of<cachet::ConfigError>([&] { cachet::Pool pool(o); });
  CHECK(contains(what, "127.0.0.1:" + std::to_string(http.port())));
  CHECK(contains(what, "does not speak the Redis protocol"));
}

TEST_CASE("a password rotated under a running pool: acquire throws HandshakeError and on_handshake_error fires once") {
  cachet::testing::RedisServer server({.config = {"requirepass old"}});
  auto o = server.connection_options();
  o.password = "old";
  o.reconnect = {.initial = 0ms, .max = 0ms, .multiplier = 1.0, .jitter = 0.0};  // no back-off: every acquire tries
  std::vector<std::string> reported;
  cachet::Pool pool(o, {.on_handshake_error = [&](const cachet::HandshakeError& e) { reported.push_back(e.what()); }});
  server.connect().command({"CONFIG", "SET", "requirepass", "new"});
  auto verified = pool.acquire();  // opened before the rotation: still authenticated
  CHECK(verified->command({"PING"}).is_status());
  CHECK_THROWS_AS(pool.acquire(), cachet::HandshakeError);  // a new connection's AUTH is refused...
  CHECK_THROWS_AS(pool.acquire(), cachet::HandshakeError);  // ...again, and reported once
  REQUIRE(reported.size() == 1);
  CHECK(contains(reported[0], "WRONGPASS"));
}

TEST_CASE("a command timeout names the command, the server, the time and the option") {
  cachet::testing::RedisServer server({.tcp = true});
  for (auto o : {server.connection_options(), server.tcp_connection_options()}) {
    o.command_timeout = 250ms;
    cachet::Connection conn(o);
    Stopped stopped(server);
    const std::string what = message_of<cachet::TimeoutError>([&] { conn.command({"GET", "some key"}); });
    CHECK(contains(what, "GET on "));
    CHECK(contains(what, o.uses_unix_socket() ? o.path : "127.0.0.1:" + std::to_string(o.port)));
    CHECK(contains(what, "250 ms"));
    CHECK(contains(what, "ConnectionOptions::command_timeout"));
    CHECK_FALSE(contains(what, "Resource temporarily unavailable"));
  }
}

TEST_CASE("a pipeline's timeout names its first command and how many replies were unread") {
  cachet::testing::RedisServer server;
  auto o = server.connection_options();
  o.command_timeout = 100ms;
  cachet::Connection conn(o);
  Stopped stopped(server);
  conn.append({"SET", "a", "1"});
  conn.append({"GET", "a"});
  const std::string what = message_of<cachet::TimeoutError>([&] { conn.read_reply(); });
  CHECK(contains(what, "SET (in a pipeline, 2 replies unread) on " + o.path));
}

TEST_CASE("an I/O error names the command and the server") {
  cachet::testing::RedisServer server;
  cachet::Connection conn(server.connection_options());
  server.kill();
  const std::string what = message_of<cachet::ConnectionError>([&] { conn.command({"INCR", "n"}); });
  CHECK(contains(what, "INCR on " + server.socket_path()));
}

TEST_CASE("a pool wait timeout names the server and the option") {
  cachet::testing::RedisServer server;
  cachet::Pool pool(server.connection_options(), {.size = 1, .wait_timeout = 20ms});
  auto held = pool.acquire();
  const std::string what = message_of<cachet::PoolTimeoutError>([&] { pool.acquire(); });
  CHECK(contains(what, server.socket_path()));
  CHECK(contains(what, "20 ms"));
  CHECK(contains(what, "PoolOptions::wait_timeout"));
}
