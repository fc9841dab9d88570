// The one-line caches (policy/make.hpp) and write policies attached to them.
#include <cachet/codec/string.hpp>
#include <cachet/policy/make.hpp>
#include <cachet/policy/write_behind.hpp>
#include <cachet/policy/write_through.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/guard_fixtures.hpp>
#include <support/server.hpp>
#include <support/tier_fixtures.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <latch>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using namespace cachet::test;
using cachet::Event;

namespace {

constexpr int threads = 16;

// `threads` callers of `get(id, loader)` miss one key at once; returns how often
// the loader ran. The load lasts until the others have joined it (`joined()`).
template <class Get, class Joined>
int stampede(Get get, Joined joined) {
  std::atomic<int> loads{0};
  std::latch start(threads);
  std::vector<std::string> got(threads);
  in_threads(threads, [&](int i) {
    start.arrive_and_wait();
    got[static_cast<std::size_t>(i)] = get([&](std::string_view) {
      ++loads;
      while (joined() + 1 < threads) std::this_thread::yield();
      return std::string("value");
    });
  });
  CHECK(got == std::vector<std::string>(threads, "value"));
  return loads;
}

// The PTTL of the Redis lock on `key` while a load holds it.
template <class Cache>
long long lock_ttl_during_load(Cache& cache, cachet::test::Target& server) {
  long long ttl = 0;
  cache.get_or_load("k", [&](std::string_view id) {
    ttl = server.connect().command({"PTTL", cachet::KeyBuilder("t").lock(cache.key(id))}).as_integer();
    return std::string("v");
  });
  return ttl;
}

}  // namespace

// The stampede guard's RedisLockGuard: its LockNotifier refuses a cluster until it subscribes per node.
TEST_CASE("make_cache: the cache over Redis is stampede-guarded, 16 threads missing one key load it once") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options(), roomy());
  auto cache = cachet::make_cache<std::string, cachet::StringCodec>(pool, guard_options("make-cache"));
  static_assert(std::is_same_v<decltype(cache), cachet::CacheAside<std::string, cachet::StringCodec, cachet::StampedeGuard>>);
  static_assert(std::is_same_v<cachet::Cache<std::string, cachet::StringCodec>, decltype(cache)>);
  const auto joined = [&] { return cache.guard().template get<0>().followers(cache.key("hot")); };
  CHECK(stampede([&](auto load) { return cache.get_or_load("hot", load); }, joined) == 1);
  CHECK(cache.metrics().value(Event::load) == 1);
}

TEST_CASE("make_cache: the lock options reach the cache's Redis lock") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options());
  auto defaults = cachet::make_cache<std::string, cachet::StringCodec>(pool, guard_options("make-lock-default"));
  const long long default_ttl = lock_ttl_during_load(defaults, server);
  CHECK(default_ttl > 2'000);  // the default lease: 5 s
  server.flush();
  auto short_lease =
      cachet::make_cache<std::string, cachet::StringCodec>(pool, guard_options("make-lock-short"), {.lease = 2s});
  const long long ttl = lock_ttl_during_load(short_lease, server);
  CHECK(ttl > 0);
  CHECK(ttl <= 2'000);
}

TEST_CASE("make_read_through: the loader bound once, stampede-guarded") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options(), roomy());
  std::atomic<int> loads{0}, right{0};
  std::function<std::size_t()> joined;  // callers sharing the load in flight, once `items` exists
  auto items = cachet::make_read_through<std::string, cachet::StringCodec>(pool, guard_options("make-rt"),
                                                                           [&](std::string_view) {
                                                                             ++loads;
                                                                             while (joined() + 1 < threads) std::this_thread::yield();
                                                                             return std::string("value");
                                                                           });
  joined = [&] { return items.cache().guard().template get<0>().followers(items.cache().key("hot")); };
  in_threads(threads, [&](int) { right += items.get("hot") == "value"; });  // Catch2 asserts on one thread only
  CHECK(right == threads);
  CHECK(loads == 1);
  CHECK(items.get("hot") == "value");
  CHECK(loads == 1);
}

// The in-process tier's Tracking, on its own server (tier_fixtures.hpp).
TEST_CASE("make_tiered_cache: guarded, over the tracking given, and write_through on it leaves it reading its own write") {
  Tracked tracked;
  auto products = cachet::make_tiered_cache<std::string, cachet::StringCodec>(
      tracked.pool, tracked.tracking, tier_options("make-tiered"), {.max_entries = 100});
  static_assert(std::is_same_v<decltype(products), cachet::TieredCache<std::string, cachet::StringCodec>>);
  static_assert(std::is_same_v<decltype(products.guard()), cachet::StampedeGuard&>);
  CHECK(products.store().tracking() == &tracked.tracking);
  auto writes = cachet::write_through(products, [](std::string_view, const std::string&) {});

  CHECK(products.get_or_load("1", [](std::string_view) { return std::string("old"); }) == "old");
  REQUIRE(tracked.tracking.sync());  // our own write's invalidation is back: the next read fills L1
  CHECK(products.get("1") == "old");
  REQUIRE(products.store().l1().get(products.key("1")));  // held in this process's tier
  CHECK(writes.put("1", "new") == cachet::WriteOutcome::cached);
  CHECK(products.get("1") == "new");  // at once, without waiting for tracking: the put left L1
  CHECK(products.get_or_load("1", [](std::string_view) { return std::string("db"); }) == "new");
}

TEST_CASE("write_through attaches to the cache: a load overlapping a put cannot overwrite it") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options());
  auto items = cachet::make_cache<std::string, cachet::StringCodec>(pool, guard_options("attach-wt"));
  auto writes = cachet::write_through(items, [](std::string_view, const std::string&) {});
  CHECK(&writes.cache() == &items);
  std::latch read(1), put(1);
  std::thread load([&] {
    items.get_or_load("1", [&](std::string_view) {
      read.count_down();
      put.wait();
      return std::string("old");
    });
  });
  read.wait();
  CHECK(writes.put("1", "new") == cachet::WriteOutcome::cached);
  put.count_down();
  load.join();
  CHECK(items.get("1") == "new");
  CHECK(items.metrics().value(Event::stale_write_refused) == 1);
}

// And the write-behind queue, one stream.
TEST_CASE("write_behind attaches to the cache: the cache reads the queued write") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options());
  auto items = cachet::make_cache<std::string, cachet::StringCodec>(pool, guard_options("attach-wb"));
  cachet::WriteBehindOptions queue_only;
  queue_only.flusher = false;
  auto writes = cachet::write_behind(items, [](std::span<const cachet::PendingWrite<std::string>>) {}, queue_only);
  CHECK(&writes.cache() == &items);
  writes.write("1", "queued");
  CHECK(items.get("1") == "queued");
  CHECK(items.get_or_load("1", [](std::string_view) { return std::string("db"); }) == "queued");
  CHECK(writes.queued() == 1);
}
