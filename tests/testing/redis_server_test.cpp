#include <cachet/testing/redis_server.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>
#include <string>

using namespace std::chrono_literals;

TEST_CASE("this header alone is enough to open a Pool on the server, as the README shows") {
  cachet::testing::RedisServer server;
  cachet::Pool pool(server.connection_options());
  CHECK(pool.with([](cachet::Connection& c) { return c.command({"PING"}).as_status() == "PONG"; }));
}

TEST_CASE("a private server on a unix socket, gone with its files when destroyed") {
  std::string dir;
  pid_t pid = -1;
  {
    cachet::testing::RedisServer server;
    dir = server.directory();
    pid = server.pid();
    CHECK(std::filesystem::exists(server.socket_path()));
    CHECK(server.port() == 0);
    auto conn = server.connect();
    CHECK(conn.command({"PING"}).as_status() == "PONG");
    // No persistence.
    CHECK(conn.command({"CONFIG", "GET", "save"})[1].as_string().empty());
    CHECK(conn.command({"CONFIG", "GET", "appendonly"})[1].as_string() == "no");
    CHECK(conn.command({"CONFIG", "GET", "port"})[1].as_string() == "0");
  }
  CHECK_FALSE(std::filesystem::exists(dir));
  CHECK(::kill(pid, 0) != 0);  // the process is gone
}

TEST_CASE("a TCP port is picked free, never 6379, and extra config lines apply") {
  cachet::testing::RedisServer server({.tcp = true, .config = {"maxmemory 2mb", "maxmemory-policy noeviction"}});
  CHECK(server.port() > 0);
  CHECK(server.port() != 6379);
  cachet::Connection conn(server.tcp_connection_options());
  CHECK(conn.command({"CONFIG", "GET", "maxmemory"})[1].as_string() == "2097152");
}

TEST_CASE("kill and restart on the same socket") {
  cachet::testing::RedisServer server({.tcp = true});
  const auto socket = server.socket_path();
  const auto port = server.port();
  const auto first_pid = server.pid();
  server.kill();
  CHECK_FALSE(server.running());
  CHECK_THROWS_AS(server.connect(), cachet::ConnectionError);
  server.restart();
  CHECK(server.running());
  CHECK(server.pid() != first_pid);
  CHECK(server.socket_path() == socket);
  CHECK(server.port() == port);
  CHECK(server.connect().command({"PING"}).as_status() == "PONG");
}

TEST_CASE("pause and slow make the server unresponsive for a while") {
  cachet::testing::RedisServer server;
  auto o = server.connection_options();
  o.command_timeout = 2s;
  cachet::Connection conn(o);

  SECTION("CLIENT PAUSE") {
    server.pause(300ms);
    const auto start = std::chrono::steady_clock::now();
    conn.command({"PING"});
    CHECK(std::chrono::steady_clock::now() - start >= 200ms);
  }
  SECTION("DEBUG SLEEP") {
    server.slow(300ms);
    const auto start = std::chrono::steady_clock::now();
    conn.command({"PING"});
    CHECK(std::chrono::steady_clock::now() - start >= 200ms);
  }
}

TEST_CASE("a missing executable is reported clearly") {
  try {
    cachet::testing::RedisServer server({.executable = "/nonexistent/redis-server"});
    FAIL("started a server that does not exist");
  } catch (const cachet::Error& e) {
    CHECK(std::string(e.what()).find("install Debian's redis-server") != std::string::npos);
  }
}

TEST_CASE("a bad config line is reported with the server's log") {
  try {
    cachet::testing::RedisServer server({.config = {"no-such-directive yes"}});
    FAIL("started with an invalid config");
  } catch (const cachet::Error& e) {
    CHECK(std::string(e.what()).find("exited at start") != std::string::npos);
    CHECK(std::string(e.what()).find("no-such-directive") != std::string::npos);  // the server's own complaint
  }
}

TEST_CASE("a server started from a thread outlives that thread") {
  std::unique_ptr<cachet::testing::RedisServer> server;
  cachet::test::Thread([&] { server = std::make_unique<cachet::testing::RedisServer>(); }).join();
  std::this_thread::sleep_for(100ms);
  CHECK(server->connect().command({"PING"}).as_status() == "PONG");
}

TEST_CASE("a server does not inherit the test's sockets") {
  cachet::testing::RedisServer a;
  auto client = std::make_unique<cachet::Connection>(a.connection_options());
  cachet::testing::RedisServer b;  // started while `client` is open
  auto admin = a.connect();
  const auto clients = [&] { return admin.command({"INFO", "clients"}).as_string(); };
  CHECK(std::string(clients()).find("connected_clients:2") != std::string::npos);
  client.reset();
  // A closes the connection at once: no copy of the socket lives on in B.
  bool closed = false;
  for (int i = 0; i < 200 && !closed; ++i) {
    closed = std::string(clients()).find("connected_clients:1") != std::string::npos;
    if (!closed) std::this_thread::sleep_for(5ms);
  }
  CHECK(closed);
}

TEST_CASE("a server that fails to start leaves no files behind") {
  const auto base = std::filesystem::temp_directory_path() / ("cachet-leak-" + std::to_string(::getpid()));
  std::filesystem::create_directories(base);
  const char* old = std::getenv("TMPDIR");
  const std::string saved = old ? old : "";
  ::setenv("TMPDIR", base.c_str(), 1);
  CHECK_THROWS_AS(cachet::testing::RedisServer({.config = {"no-such-directive yes"}}), cachet::Error);
  if (old) ::setenv("TMPDIR", saved.c_str(), 1);
  else ::unsetenv("TMPDIR");
  CHECK(std::filesystem::is_empty(base));
  std::filesystem::remove_all(base);
}
