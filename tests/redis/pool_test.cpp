#include <cachet/redis/pool.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/errors.hpp>
#include <support/server.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::test::throws_exactly;

TEST_CASE("lazy and eager pools") {
  auto& server = cachet::test::clean_server();
  SECTION("lazy: one connection opens in the constructor (to verify the configuration), the rest on demand") {
    cachet::Pool pool(server.connection_options(), {.size = 4});
    CHECK(pool.stats().created == 1);
    CHECK(pool.stats().idle == 1);
    { auto lease = pool.acquire(); }
    { auto lease = pool.acquire(); }  // the same connection again
    CHECK(pool.stats().created == 1);
    CHECK(pool.stats().idle == 1);
    { auto a = pool.acquire(), b = pool.acquire(); }
    CHECK(pool.stats().created == 2);
  }
  SECTION("without verify nothing opens in the constructor") {
    cachet::Pool pool(server.connection_options(), {.size = 4, .verify = false});
    CHECK(pool.stats().created == 0);
  }
  SECTION("eager: every connection opens in the constructor") {
    cachet::Pool pool(server.connection_options(), {.size = 4, .eager = true});
    CHECK(pool.stats().created == 4);
    CHECK(pool.stats().idle == 4);
    CHECK(pool.stats().in_use == 0);
  }
}

TEST_CASE("an exhausted pool waits, then throws PoolTimeoutError") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options(), {.size = 2, .wait_timeout = 50ms});
  auto a = pool.acquire();
  auto b = pool.acquire();
  CHECK(pool.stats().in_use == 2);

  const auto start = std::chrono::steady_clock::now();
  CHECK(throws_exactly<cachet::PoolTimeoutError>([&] { pool.acquire(); }));
  CHECK(std::chrono::steady_clock::now() - start >= 50ms);
  CHECK(pool.stats().timeouts == 1);

  SECTION("a connection given back wakes a waiter") {
    auto waiter = std::async(std::launch::async, [&] {
      auto lease = pool.acquire(5s);
      return lease->command({"PING"}).as_status() == "PONG";
    });
    while (pool.stats().waiting == 0) std::this_thread::yield();
    { auto released = std::move(a); }
    CHECK(waiter.get());
    const auto stats = pool.stats();
    CHECK(stats.waits >= 1);
    CHECK(stats.max_wait_time > 0ns);
    CHECK(stats.created == 2);
  }
}

TEST_CASE("a broken connection is discarded and replaced") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options(), {.size = 1});
  {
    auto lease = pool.acquire();
    lease->command({"PING"});
    lease.discard();
  }
  CHECK(pool.stats().discarded == 1);
  CHECK(pool.stats().idle == 0);
  auto lease = pool.acquire();  // the slot was freed: a new connection opens
  CHECK(lease->command({"PING"}).as_status() == "PONG");
  CHECK(pool.stats().created == 2);
}

TEST_CASE("idle connections are health-checked, so a restarted server is invisible to callers") {
  cachet::testing::RedisServer server;
  cachet::Pool pool(server.connection_options(), {.size = 3, .eager = true, .idle_check_after = 0ms});
  server.restart();  // every pooled connection is now dead
  for (int i = 0; i < 5; ++i) {
    auto lease = pool.acquire();
    CHECK(lease->command({"PING"}).as_status() == "PONG");
  }
  CHECK(pool.stats().discarded == 3);  // all three dead ones were caught by the PING
  CHECK(pool.stats().created == 4);    // and one fresh connection served every call
}

TEST_CASE("a connection used recently is lent without a PING") {
  cachet::testing::RedisServer server;
  cachet::Pool pool(server.connection_options(), {.size = 1, .eager = true, .idle_check_after = 1h});
  server.restart();
  // Not checked, so the caller sees the dead connection; the pool then replaces it.
  CHECK_THROWS_AS(pool.with([](cachet::Connection& c) { c.command({"PING"}); }), cachet::ConnectionError);
  CHECK(pool.stats().discarded == 1);
  CHECK(pool.with([](cachet::Connection& c) { return c.command({"PING"}).is_status(); }));
}

TEST_CASE("while backing off, an acquire waits for a leased connection instead of failing") {
  cachet::testing::RedisServer server;
  auto o = server.connection_options();
  o.reconnect = {.initial = 10s, .max = 10s, .multiplier = 2.0, .jitter = 0.0};
  cachet::Pool pool(o, {.size = 2, .wait_timeout = 5s});
  auto held = std::make_unique<cachet::Pool::Lease>(pool.acquire());
  server.kill();
  CHECK_THROWS_AS(pool.acquire(), cachet::ConnectionError);  // a new connect fails: back-off starts
  auto waiter = std::async(std::launch::async, [&] { return pool.acquire().operator->() != nullptr; });
  while (pool.stats().waiting == 0) std::this_thread::yield();
  held.reset();  // the leased connection comes back
  CHECK(waiter.get());
}

TEST_CASE("while Redis is down the pool fails fast instead of reconnecting on every acquire") {
  cachet::testing::RedisServer server;
  auto o = server.connection_options();
  o.reconnect = {.initial = 10s, .max = 10s, .multiplier = 2.0, .jitter = 0.0};
  cachet::Pool pool(o, {.size = 2, .verify = false});  // no idle connection for the first acquire to get
  server.kill();
  CHECK(throws_exactly<cachet::ConnectionError>([&] { pool.acquire(); }));
  try {
    pool.acquire();
    FAIL("acquired a connection to a dead server");
  } catch (const cachet::ConnectionError& e) {
    CHECK(std::string(e.what()).find("backing off") != std::string::npos);
  }
  CHECK(pool.stats().in_use == 0);
  CHECK(pool.stats().created == 0);
}

TEST_CASE("16 threads through a pool of 4: 100k commands, no error, no mix-up") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options(), {.size = 4, .wait_timeout = 10s});
  constexpr int threads = 16;
  constexpr int commands_per_thread = 100'000 / threads;
  std::atomic<int> errors{0};
  std::atomic<int> mixups{0};
  std::vector<cachet::test::Thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const std::string key = "thread:" + std::to_string(t);
      const std::string mine = "value-of-" + std::to_string(t);
      try {
        pool.with([&](cachet::Connection& c) { c.command({"SET", key, mine}); });
        for (int i = 1; i < commands_per_thread; ++i) {
          auto lease = pool.acquire();
          if (i % 2) {
            lease->command({"INCR", "counter"});
          } else if (lease->command({"GET", key}).as_string() != mine) {
            ++mixups;
          }
        }
      } catch (const std::exception&) {
        ++errors;
      }
    });
  }
  for (auto& w : workers) w.join();
  CHECK(errors == 0);
  CHECK(mixups == 0);
  auto lease = pool.acquire();
  const long long incrs = threads * (commands_per_thread / 2);
  CHECK(std::stoll(std::string(lease->command({"GET", "counter"}).as_string())) == incrs);
  const auto stats = pool.stats();
  CHECK(stats.created <= 4);
  CHECK(stats.discarded == 0);
  CHECK(stats.timeouts == 0);
}

TEST_CASE("an unresponsive server costs one PING timeout, not one per idle connection") {
  cachet::testing::RedisServer server;
  auto o = server.connection_options();
  o.command_timeout = 100ms;
  cachet::Pool pool(o, {.size = 4, .eager = true, .idle_check_after = 0ms});
  server.slow(1500ms);
  const auto start = std::chrono::steady_clock::now();
  CHECK(throws_exactly<cachet::TimeoutError>([&] { pool.acquire(); }));
  CHECK(std::chrono::steady_clock::now() - start < 400ms);
  CHECK(pool.stats().discarded == 4);  // the one that timed out, and every other stale one
}
