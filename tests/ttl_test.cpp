#include <cachet/clock.hpp>
#include <cachet/ttl.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <stdexcept>

using namespace std::chrono_literals;

TEST_CASE("a central table with a fallback rule") {
  const cachet::TtlPolicy ttl({.fresh = 5min, .jitter = 0}, {
                                                                 {"product", {.fresh = 1h, .stale = 10min, .jitter = 0}},
                                                                 {"session", {.fresh = 30min, .jitter = 0, .sliding = true}},
                                                             });
  cachet::ManualClock clock;
  const auto now = clock.now();

  const auto product = ttl.expiry("product", now);
  CHECK(product.fresh_until == now + 1h);
  CHECK(product.ttl == 70min);  // fresh + stale: kept for stale serving
  CHECK(ttl.expiry("unknown", now).ttl == 5min);
  CHECK(ttl.sliding("session"));
  CHECK_FALSE(ttl.sliding("product"));
}

TEST_CASE("jitter stays within its bounds and actually spreads expiries") {
  const cachet::TtlPolicy ttl({.fresh = 100s, .stale = 100s, .jitter = 0.2});
  const auto now = cachet::ManualClock().now();
  std::set<long long> seen;
  for (int i = 0; i < 2000; ++i) {
    const auto e = ttl.expiry("any", now);
    REQUIRE(e.ttl >= 160s);
    REQUIRE(e.ttl <= 240s);
    REQUIRE(e.fresh_until >= now + 80s);
    REQUIRE(e.fresh_until <= now + 120s);
    REQUIRE(e.fresh_until < now + e.ttl);  // soft expiry comes before the hard one
    seen.insert(e.ttl.count());
  }
  CHECK(seen.size() > 1000);  // 2000 writes, (almost) all expiring at different times
}

TEST_CASE("negative entries have their own TTL, off by default") {
  const cachet::TtlPolicy ttl({.fresh = 1min, .jitter = 0}, {{"user", {.fresh = 1min, .jitter = 0, .negative = 30s}}});
  CHECK(ttl.negative_ttl("other") == 0ms);
  CHECK(ttl.negative_ttl("user") == 30s);
}

TEST_CASE("sliding expiry: a later touch computes the expiry from the later time") {
  const cachet::TtlPolicy ttl({.fresh = 30min, .jitter = 0, .sliding = true});
  cachet::ManualClock clock;
  const auto first = ttl.expiry("session", clock.now());
  clock.advance(20min);
  const auto touched = ttl.expiry("session", clock.now());
  CHECK(touched.fresh_until == first.fresh_until + 20min);
}

TEST_CASE("invalid rules are rejected") {
  CHECK_THROWS_AS(cachet::TtlPolicy({.fresh = 0ms}), std::invalid_argument);
  CHECK_THROWS_AS(cachet::TtlPolicy({.fresh = 1s, .jitter = 1.0}), std::invalid_argument);
  CHECK_THROWS_AS(cachet::TtlPolicy({.fresh = 1s, .stale = -1s}), std::invalid_argument);
  cachet::TtlPolicy ttl;
  CHECK_THROWS_AS(ttl.set("x", {.fresh = 1s, .negative = -1s}), std::invalid_argument);
}

TEST_CASE("a manual clock moves only when told, from any thread") {
  static_assert(cachet::Clock<cachet::ManualClock>);
  static_assert(cachet::Clock<cachet::SystemClock>);
  cachet::ManualClock clock;
  const auto t = clock.now();
  CHECK(clock.now() == t);
  clock.advance(1500ms);
  CHECK(clock.now() - t == 1500ms);
  clock.set(t);
  CHECK(clock.now() == t);
}
