#include <cachet/detail/backoff.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <set>

using namespace std::chrono_literals;
using cachet::detail::Backoff;

TEST_CASE("back-off grows exponentially up to its cap") {
  Backoff b({.initial = 10ms, .max = 1000ms, .multiplier = 2.0, .jitter = 0.0});
  CHECK(b.delay(0) == 0ms);
  CHECK(b.delay(1) == 10ms);
  CHECK(b.delay(2) == 20ms);
  CHECK(b.delay(5) == 160ms);
  CHECK(b.delay(8) == 1000ms);
  CHECK(b.delay(1000) == 1000ms);  // no overflow far past the cap
}

TEST_CASE("jitter shortens each delay within its bounds and spreads them") {
  Backoff b({.initial = 100ms, .max = 10'000ms, .multiplier = 2.0, .jitter = 0.5});
  std::set<long long> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto d = b.delay(3);  // base 400 ms
    REQUIRE(d <= 400ms);
    REQUIRE(d >= 200ms);
    seen.insert(d.count());
  }
  CHECK(seen.size() > 50);  // actually spread, not one value
}

TEST_CASE("failures push the next attempt out and reset allows it at once") {
  Backoff b({.initial = 50ms, .max = 50ms, .multiplier = 2.0, .jitter = 0.0});
  const auto t0 = Backoff::clock::now();
  CHECK(b.ready(t0));
  b.record_failure(t0);
  CHECK(b.failures() == 1);
  CHECK_FALSE(b.ready(t0 + 49ms));
  CHECK(b.ready(t0 + 50ms));
  b.reset();
  CHECK(b.ready(t0));
  CHECK(b.failures() == 0);
}
