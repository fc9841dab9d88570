#include <cachet/codec/string.hpp>
#include <cachet/guard/redis_lock_guard.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/policy/cache_aside.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/errors.hpp>
#include <support/server.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::test::eventually;
using cachet::test::in_processes;
using cachet::test::in_threads;

namespace {

template <class G>
using Cache = cachet::CacheAside<std::string, cachet::StringCodec, G>;

// Caches in one process share metrics by label: give each its own to count apart.
cachet::CacheOptions options(std::string label = {}) {
  cachet::CacheOptions o;
  o.ns = "t";
  o.name = "item";
  o.metrics_label = std::move(label);
  o.ttl = cachet::TtlPolicy({.fresh = 1min, .jitter = 0});
  return o;
}

// Enough connections that 64 threads never time out waiting for one: an
// exhausted pool would read as an outage and skip the lock.
cachet::PoolOptions roomy() { return {.size = 16, .wait_timeout = 5s}; }

cachet::StampedeGuard stampede_guard(cachet::Pool& pool, cachet::RedisLockGuardOptions o = {}) {
  return cachet::StampedeGuard(cachet::SingleFlight{}, cachet::RedisLockGuard(pool, std::move(o)));
}

// Redis's clock in milliseconds: one clock for every process of a test.
long long redis_ms(cachet::Connection& c) {
  const auto t = c.command({"TIME"});
  return std::stoll(std::string(t[0].as_string())) * 1000 + std::stoll(std::string(t[1].as_string())) / 1000;
}

}  // namespace

TEST_CASE("64 threads miss one key at once: the loader runs once") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options(), roomy());
  std::atomic<int> loads{0};
  std::latch start(64);
  auto run = [&](auto& cache) {
    std::vector<std::string> got(64);
    in_threads(64, [&](int i) {
      start.arrive_and_wait();
      got[static_cast<std::size_t>(i)] = cache.get_or_load("hot", [&](std::string_view) {
        ++loads;
        std::this_thread::sleep_for(50ms);
        return std::string("value");
      });
    });
    CHECK(got == std::vector<std::string>(64, "value"));
  };
  SECTION("SingleFlight in front of the lock") {
    Cache<cachet::StampedeGuard> cache(cachet::RedisStore(pool), options(), {}, stampede_guard(pool));
    run(cache);
    CHECK(cache.metrics().value(cachet::Event::load) == 1);
  }
  SECTION("the lock alone: 63 waiters, woken by the release") {
    Cache<cachet::RedisLockGuard> cache(cachet::RedisStore(pool), options(), {}, cachet::RedisLockGuard(pool));
    run(cache);
    CHECK(cache.metrics().value(cachet::Event::lock_wait) >= 1);
  }
  CHECK(loads == 1);
}

TEST_CASE("4 processes x 16 threads miss one key at once: the loader runs once across them") {
  auto& server = cachet::test::clean_server();
  constexpr int processes = 4, threads = 16;
  // Every thread of every process checks in, then all wait for one "go".
  std::thread starter([&] {
    auto conn = server.connect();
    eventually([&] { return conn.command({"GET", "ready"}).as_optional_string() == std::to_string(processes * threads); });
    conn.command({"SET", "go", 1});
  });
  const auto codes = in_processes(processes, [&](int) {
    cachet::Pool pool(server.connection_options(), roomy());
    Cache<cachet::StampedeGuard> cache(cachet::RedisStore(pool), options(), {}, stampede_guard(pool));
    std::atomic<int> wrong{0};
    in_threads(threads, [&](int) {
      auto conn = server.connect();
      conn.command({"INCR", "ready"});
      while (conn.command({"EXISTS", "go"}).as_integer() == 0) std::this_thread::sleep_for(200us);
      const std::string v = cache.get_or_load("hot", [&](std::string_view) {
        conn.command({"INCR", "loads"});
        std::this_thread::sleep_for(100ms);
        return std::string("value");
      });
      if (v != "value") ++wrong;
    });
    return wrong == 0 ? 0 : 1;
  });
  starter.join();
  CHECK(codes == std::vector<int>(processes, 0));
  CHECK(server.connect().command({"GET", "loads"}).as_string() == "1");
}

TEST_CASE("a SIGKILLed holder is replaced once its lease runs out, never inside it") {
  auto& server = cachet::test::clean_server();
  constexpr auto lease = 600ms;
  const cachet::RedisLockGuardOptions lock_options{.lease = lease};
  auto conn = server.connect();
  auto starts_loader = [&](cachet::Connection& c, bool hang) {
    return [&c, hang](std::string_view) {
      c.command({"RPUSH", "starts", redis_ms(c)});
      if (hang) std::this_thread::sleep_for(1h);  // killed mid-load
      return std::string("value");
    };
  };
  const pid_t holder = ::fork();
  REQUIRE(holder >= 0);
  if (holder == 0) {
    cachet::Pool pool(server.connection_options());
    Cache<cachet::StampedeGuard> cache(cachet::RedisStore(pool), options(), {}, stampede_guard(pool, lock_options));
    auto c = server.connect();
    cache.get_or_load("k", starts_loader(c, true));
    ::_exit(0);
  }
  REQUIRE(eventually([&] { return conn.command({"LLEN", "starts"}).as_integer() == 1; }));

  // Another process waits on the lock while the holder still renews it...
  cachet::Pool pool(server.connection_options());
  Cache<cachet::StampedeGuard> cache(cachet::RedisStore(pool), options(), {}, stampede_guard(pool, lock_options));
  auto c = server.connect();
  auto waiter = std::async(std::launch::async, [&] { return cache.get_or_load("k", starts_loader(c, false)); });
  std::this_thread::sleep_for(2 * lease);  // renewed twice over: nobody took it
  CHECK(conn.command({"LLEN", "starts"}).as_integer() == 1);
  // ...and takes over after the holder dies and its lease runs out.
  const long long killed_at = redis_ms(conn);
  ::kill(holder, SIGKILL);
  CHECK(cachet::test::wait_exit(holder) == -1);
  CHECK(waiter.get() == "value");
  REQUIRE(conn.command({"LLEN", "starts"}).as_integer() == 2);
  const long long taken_at = std::stoll(std::string(conn.command({"LINDEX", "starts", 1}).as_string()));
  // The last renewal came at most lease/3 before the kill, so the lease ran at least 2/3 of it past it.
  CHECK(taken_at - killed_at >= lease.count() * 2 / 3);
  CHECK(cache.metrics().value(cachet::Event::lock_wait) == 1);
}

TEST_CASE("fencing: a holder whose lease ran out neither overwrites nor unlocks its successor") {
  auto& server = cachet::test::clean_server();
  auto conn = server.connect();
  cachet::Pool pool_a(server.connection_options()), pool_b(server.connection_options());
  Cache<cachet::RedisLockGuard> a(cachet::RedisStore(pool_a), options(), {}, cachet::RedisLockGuard(pool_a));
  Cache<cachet::RedisLockGuard> b(cachet::RedisStore(pool_b), options("b"), {}, cachet::RedisLockGuard(pool_b));
  const std::string lock_key = cachet::KeyBuilder("t").lock(a.key("k"));
  std::promise<void> a_started, b_started, a_go, b_go;
  auto slow = [](std::promise<void>& started, std::promise<void>& go, std::string value) {
    return [&started, go = go.get_future().share(), value](std::string_view) {
      started.set_value();
      go.wait();
      return value;
    };
  };
  auto old_load = std::async(std::launch::async, [&] { return a.get_or_load("k", slow(a_started, a_go, "old")); });
  a_started.get_future().wait();
  conn.command({"DEL", lock_key});  // as if a's lease ran out (a stalled process, say)
  auto new_load = std::async(std::launch::async, [&] { return b.get_or_load("k", slow(b_started, b_go, "new")); });
  b_started.get_future().wait();
  const std::string b_token(conn.command({"GET", lock_key}).as_string());

  a_go.set_value();
  CHECK(old_load.get() == "old");  // its caller gets what it loaded...
  CHECK(a.metrics().value(cachet::Event::fenced_out) == 1);  // ...but the cache does not
  CHECK(conn.command({"EXISTS", a.key("k")}).as_integer() == 0);
  CHECK(conn.command({"GET", lock_key}).as_string() == b_token);  // b's lock survived a's release

  b_go.set_value();
  CHECK(new_load.get() == "new");
  CHECK(a.get("k") == "new");
  CHECK(conn.command({"EXISTS", lock_key}).as_integer() == 0);
}

TEST_CASE("a waiter is woken by the release, not by its back-off") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  const cachet::RedisLockGuardOptions slow_poll{.poll_min = 3s, .poll_max = 3s};
  Cache<cachet::RedisLockGuard> holder(cachet::RedisStore(pool), options(), {}, cachet::RedisLockGuard(pool, slow_poll));
  Cache<cachet::RedisLockGuard> waiter(cachet::RedisStore(pool), options("waiter"), {},
                                       cachet::RedisLockGuard(pool, slow_poll));
  std::promise<void> started, go;
  auto load = std::async(std::launch::async, [&, go_f = go.get_future()] {
    return holder.get_or_load("k", [&](std::string_view) {
      started.set_value();
      go_f.wait();
      return std::string("value");
    });
  });
  started.get_future().wait();
  auto wait = std::async(std::launch::async, [&] { return waiter.get_or_load("k", [](std::string_view) { return std::string("second load"); }); });
  REQUIRE(eventually([&] { return waiter.metrics().value(cachet::Event::lock_wait) == 1; }));
  std::this_thread::sleep_for(50ms);  // the waiter is asleep in its 3 s back-off
  const auto released = std::chrono::steady_clock::now();
  go.set_value();
  CHECK(wait.get() == "value");
  CHECK(std::chrono::steady_clock::now() - released < 1500ms);  // half the back-off: the notification woke it
  CHECK(load.get() == "value");
  CHECK(waiter.metrics().value(cachet::Event::load) == 0);
}

TEST_CASE("at its deadline a waiter loads itself, or throws LockTimeoutError if asked to") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  std::atomic<int> loads{0};
  auto load = [&](std::string_view) {
    ++loads;
    return std::string("own");
  };
  const auto lock_key = cachet::KeyBuilder("t").lock(cachet::KeyBuilder("t").value("item", "k"));
  cachet::RedisLock other(pool, lock_key, {.lease = 60s});
  REQUIRE(other.try_acquire());  // a holder that never finishes

  Cache<cachet::RedisLockGuard> raising(cachet::RedisStore(pool), options(), {},
                                        cachet::RedisLockGuard(pool, {.wait = 100ms, .on_timeout = cachet::LockTimeout::raise}));
  CHECK(cachet::test::throws_exactly<cachet::LockTimeoutError>([&] { raising.get_or_load("k", load); }));
  CHECK(loads == 0);

  Cache<cachet::RedisLockGuard> loading(cachet::RedisStore(pool), options(), {}, cachet::RedisLockGuard(pool, {.wait = 100ms}));
  CHECK(loading.get_or_load("k", load) == "own");
  CHECK(loads == 1);
  CHECK(other.release());  // untouched by either
}

TEST_CASE("the lease is renewed while a slow load runs, so nobody else loads meanwhile") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  const cachet::RedisLockGuardOptions short_lease{.lease = 300ms};
  Cache<cachet::RedisLockGuard> a(cachet::RedisStore(pool), options(), {}, cachet::RedisLockGuard(pool, short_lease));
  Cache<cachet::RedisLockGuard> b(cachet::RedisStore(pool), options(), {}, cachet::RedisLockGuard(pool, short_lease));
  std::atomic<int> loads{0};
  std::promise<void> started;
  auto slow = std::async(std::launch::async, [&] {
    return a.get_or_load("k", [&](std::string_view) {
      ++loads;
      started.set_value();
      std::this_thread::sleep_for(1200ms);  // four leases
      return std::string("slow");
    });
  });
  started.get_future().wait();
  CHECK(b.get_or_load("k", [&](std::string_view) {
    ++loads;
    return std::string("second");
  }) == "slow");
  CHECK(slow.get() == "slow");
  CHECK(loads == 1);
  CHECK(a.guard().renewals() >= 2);
}

TEST_CASE("with Redis down the lock is skipped and reads are served by the loader") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  Cache<cachet::StampedeGuard> cache(cachet::RedisStore(pool), options(), {}, stampede_guard(pool));
  server.kill();
  CHECK(cache.get_or_load("k", [](std::string_view) { return std::string("from db"); }) == "from db");
  server.restart();
}
