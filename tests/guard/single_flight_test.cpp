#include <cachet/guard/single_flight.hpp>
#include <cachet/policy/cache_aside.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/product.hpp>
#include <support/server.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

using cachet::test::in_threads;

TEST_CASE("concurrent misses for one key run the load once and all get its value") {
  cachet::SingleFlight guard;
  std::atomic<int> loads{0};
  std::vector<std::string> got(32);
  in_threads(32, [&](int i) {
    got[static_cast<std::size_t>(i)] = guard.share("k", [&] {
      ++loads;
      while (guard.followers("k") < 31) std::this_thread::yield();  // the 31 others have joined this flight
      return std::string("value");
    });
  });
  CHECK(loads == 1);
  for (const auto& v : got) CHECK(v == "value");
  CHECK(guard.in_flight() == 0);
}

TEST_CASE("the load's exception reaches every waiter, and the next miss loads again") {
  cachet::SingleFlight guard;
  std::atomic<int> loads{0}, errors{0};
  in_threads(16, [&](int) {
    try {
      guard.share("k", [&]() -> int {
        ++loads;
        while (guard.followers("k") < 15) std::this_thread::yield();  // everyone shares this failure
        throw std::runtime_error("db down");
      });
    } catch (const std::runtime_error& e) {
      if (std::string(e.what()) == "db down") ++errors;
    }
  });
  CHECK(loads == 1);
  CHECK(errors == 16);
  CHECK(guard.share("k", [] { return 7; }) == 7);  // nothing was remembered
}

TEST_CASE("different keys load in parallel") {
  cachet::SingleFlight guard;
  std::promise<void> a_started, b_started;
  auto a = std::async(std::launch::async, [&] {
    return guard.share("a", [&] {
      a_started.set_value();
      // Would wait forever if "b" could not start until "a" finished.
      return b_started.get_future().wait_for(5s) == std::future_status::ready;
    });
  });
  auto b = std::async(std::launch::async, [&] {
    return guard.share("b", [&] {
      b_started.set_value();
      return a_started.get_future().wait_for(5s) == std::future_status::ready;
    });
  });
  CHECK(a.get());
  CHECK(b.get());
}

TEST_CASE("a caller expecting another result type does not share a flight") {
  cachet::SingleFlight guard;
  std::promise<void> release;
  auto first = std::async(std::launch::async, [&] {
    return guard.share("k", [&] {
      release.get_future().wait();
      return std::optional<int>(1);
    });
  });
  while (guard.in_flight() == 0) std::this_thread::yield();
  CHECK(guard.share("k", [] { return 2; }) == 2);  // int, not std::optional<int>: its own load
  release.set_value();
  CHECK(first.get() == 1);
}

namespace {
using ProductCache = cachet::CacheAside<cachet::test::Product, cachet::JsonCodec<cachet::test::Product>, cachet::SingleFlight>;
cachet::CacheOptions product_options() {
  cachet::CacheOptions o;
  o.ns = "test";
  o.name = "product";
  return o;
}
}  // namespace

TEST_CASE("CacheAside with SingleFlight: a stampede on a cold key is one database query") {
  using cachet::test::Product;
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options(), {.size = 8, .wait_timeout = 5s});
  ProductCache cache(cachet::RedisStore(pool), product_options());
  std::atomic<int> queries{0};
  std::atomic<int> wrong{0};
  const std::string key = cache.key("42");  // what a load is filed under (no write-through here)
  in_threads(24, [&](int) {
    const Product p = cache.get_or_load("42", [&](std::string_view) {
      ++queries;
      while (cache.guard().followers(key) < 23) std::this_thread::yield();  // everyone missed and joined
      return cachet::test::sample_product(42);
    });
    if (!(p == cachet::test::sample_product(42))) ++wrong;
  });
  CHECK(queries == 1);
  CHECK(wrong == 0);
  CHECK(cache.guard().in_flight() == 0);
}

// A flight of a tagged cache is filed under the tag epoch too: a reader that came
// after invalidate_tags returned loads again rather than wait for (and get) the
// value of a load that read the database before the invalidation.
TEST_CASE("CacheAside with SingleFlight and tagged loads: a reader after invalidate_tags does not join an older load") {
  using cachet::test::Product;
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options(), {.size = 8, .wait_timeout = 5s});
  ProductCache cache(cachet::RedisStore(pool), product_options());
  cache.tag_loaded_values([](const Product&) { return std::vector<std::string>{"all"}; });
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  auto leader = std::async(std::launch::async, [&] {
    return cache.get_or_load("1", [&](std::string_view) {
      entered.set_value();
      released.wait();
      return cachet::test::sample_product(1);  // read before the invalidation
    });
  });
  entered.get_future().wait();
  cache.invalidate_tags({"all"});
  auto follower = std::async(std::launch::async, [&] {
    return cache.get_or_load("1", [](std::string_view) { return cachet::test::sample_product(2); });
  });
  const bool alone = follower.wait_for(60s) == std::future_status::ready;  // joined, it would wait for the leader
  release.set_value();
  CHECK(alone);
  CHECK(follower.get() == cachet::test::sample_product(2));
  CHECK(leader.get() == cachet::test::sample_product(1));
  CHECK(cache.metrics().value(cachet::Event::stale_write_refused) == 1);  // the leader's
  CHECK(cache.get("1") == cachet::test::sample_product(2));
}
