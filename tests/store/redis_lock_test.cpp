#include <cachet/store/redis_lock.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {
// Makes `lock_key` expire now, as if its holder's lease had run out.
void expire(cachet::test::Client& conn, const std::string& lock_key) { conn.command({"PEXPIRE", lock_key, 1}); }
}  // namespace

TEST_CASE("one holder at a time") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  cachet::RedisLock a(store, "ns:lock:k"), b(store, "ns:lock:k");
  CHECK(a.try_acquire());
  CHECK_FALSE(b.try_acquire());
  CHECK(a.release());
  CHECK(b.try_acquire());
  CHECK(a.token() != b.token());
  CHECK(a.token().size() == 32);
}

TEST_CASE("a holder whose lease ran out cannot release or extend its successor's lock") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  cachet::RedisLock a(store, "ns:lock:k", {.lease = 60s}), b(store, "ns:lock:k", {.lease = 60s});
  REQUIRE(a.try_acquire());
  expire(conn, "ns:lock:k");
  std::this_thread::sleep_for(5ms);
  REQUIRE(b.try_acquire());
  CHECK_FALSE(a.release());  // not ours any more: nothing deleted
  CHECK_FALSE(a.extend());
  CHECK(conn.command({"GET", "ns:lock:k"}).as_string() == b.token());
  CHECK(b.extend());
  CHECK(conn.command({"PTTL", "ns:lock:k"}).as_integer() > 59'000);
}

TEST_CASE("fencing: a write is made only while the token holds the lock") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  // The lock shares the value's slot, as KeyBuilder's under HashTag::entity.
  cachet::RedisLock slow(store, "ns:lock:{v}"), next(store, "ns:lock:{v}");
  REQUIRE(slow.try_acquire());
  expire(conn, "ns:lock:{v}");  // the slow load outlives its lease
  std::this_thread::sleep_for(5ms);
  REQUIRE(next.try_acquire());
  CHECK(next.write_if_held("ns:{v}", "new", 60s));
  CHECK_FALSE(slow.write_if_held("ns:{v}", "old", 60s));  // refused: the newer value stays
  CHECK(conn.command({"GET", "ns:{v}"}).as_string() == "new");
  CHECK(conn.command({"PTTL", "ns:{v}"}).as_integer() > 59'000);
}

TEST_CASE("a new acquisition gets a new token, so an old lease stays fenced off") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  cachet::RedisLock a(store, "ns:lock:t");
  REQUIRE(a.try_acquire());
  const std::string first = a.token();
  REQUIRE(a.release());
  REQUIRE(a.try_acquire());
  CHECK(a.token() != first);
}

TEST_CASE("a dropped lock object releases what it holds") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  {
    cachet::RedisLock a(store, "ns:lock:d");
    REQUIRE(a.try_acquire());
  }
  CHECK(server.connect().command({"EXISTS", "ns:lock:d"}).as_integer() == 0);
}

// [single-server]: on a cluster each forked child would start a cluster Pool's
// refresher thread, which ThreadSanitizer refuses in a child of a threaded process.
TEST_CASE("mutual exclusion across processes", "[single-server]") {
  auto& server = cachet::test::clean_target();
  constexpr int processes = 4, rounds = 200;
  // A worker: read-modify-write a counter, only under the lock.
  const auto codes = cachet::test::in_processes(processes, [&](int) {
    cachet::Pool pool(server.connection_options(), {.size = 1});
    cachet::RedisStore store(pool);
    cachet::RedisLock lock(store, "ns:lock:counter", {.lease = 10s});
    int code = 0;
    for (int r = 0; r < rounds; ++r) {
      while (!lock.try_acquire()) std::this_thread::sleep_for(std::chrono::microseconds(200));
      pool.run("counter", [](cachet::Connection& c) {
        const auto v = c.command({"GET", "counter"}).as_optional_string();
        c.command({"SET", "counter", (v ? std::stoll(*v) : 0) + 1});
      });
      if (!lock.release()) code = 2;
    }
    return code;
  });
  CHECK(codes == std::vector<int>(processes, 0));
  // Without the lock, concurrent GET-then-SET would lose increments.
  CHECK(server.connect().command({"GET", "counter"}).as_string() == std::to_string(processes * rounds));
}
