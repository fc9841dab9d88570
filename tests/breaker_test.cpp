#include <cachet/breaker.hpp>
#include <cachet/redis/options.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::BreakerState;
using cachet::CircuitBreaker;

TEST_CASE("closed -> open after N consecutive failures -> half-open probe -> closed") {
  std::vector<BreakerState> seen;
  CircuitBreaker b({.failure_threshold = 3, .open_for = 100ms}, [&](BreakerState s) { seen.push_back(s); });
  const auto t0 = CircuitBreaker::clock::now();
  b.failure(t0);
  b.failure(t0);
  b.success();  // not consecutive: starts over
  b.failure(t0);
  b.failure(t0);
  CHECK(b.state() == BreakerState::closed);
  b.failure(t0);
  CHECK(b.state() == BreakerState::open);
  CHECK_FALSE(b.allow(t0 + 99ms));
  CHECK(b.allow(t0 + 100ms));  // the probe
  CHECK(b.state() == BreakerState::half_open);
  CHECK_FALSE(b.allow(t0 + 101ms));  // everyone else waits for it
  b.success();
  CHECK(b.state() == BreakerState::closed);
  CHECK(b.allow(t0 + 102ms));
  CHECK(seen == std::vector<BreakerState>{BreakerState::open, BreakerState::half_open, BreakerState::closed});
}

TEST_CASE("a failed probe opens the breaker again for twice as long, up to max_open_for, and closing starts over") {
  CircuitBreaker b({.failure_threshold = 1, .open_for = 50ms, .max_open_for = 150ms});
  const auto t0 = CircuitBreaker::clock::now();
  b.failure(t0);
  REQUIRE(b.allow(t0 + 50ms));
  b.failure(t0 + 60ms);
  CHECK(b.state() == BreakerState::open);
  CHECK(b.period() == 100ms);
  CHECK_FALSE(b.allow(t0 + 159ms));
  REQUIRE(b.allow(t0 + 160ms));
  b.failure(t0 + 160ms);
  CHECK(b.period() == 150ms);  // capped
  REQUIRE(b.allow(t0 + 310ms));
  b.failure(t0 + 310ms);
  CHECK(b.period() == 150ms);
  REQUIRE(b.allow(t0 + 460ms));
  b.success();
  b.failure(t0 + 500ms);  // a new outage starts at open_for again
  CHECK(b.period() == 50ms);
  CHECK(b.allow(t0 + 550ms));
}

TEST_CASE("by default an open breaker probes within 100 ms, whatever the outage's length") {
  CircuitBreaker b;
  const auto t0 = CircuitBreaker::clock::now();
  for (int i = 0; i < 5; ++i) b.failure(t0);
  REQUIRE(b.state() == BreakerState::open);
  int probes = 0;
  auto t = t0;
  for (; t < t0 + 10s; t += 1ms)  // a caller every millisecond for 10 s, every probe failing
    if (b.allow(t)) {
      ++probes;
      b.failure(t);
    }
  CHECK(probes >= 99);  // every 100 ms at most: the first probe after Redis is back, too
  CHECK(probes <= 101);  // and no more: a dead server sees one connect per period
  CHECK(b.period() <= 100ms);
}

TEST_CASE("exactly one of many concurrent callers becomes the probe") {
  CircuitBreaker b({.failure_threshold = 1, .open_for = 10ms});
  const auto t0 = CircuitBreaker::clock::now();
  b.failure(t0);
  std::atomic<int> probes{0};
  std::vector<cachet::test::Thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      for (int j = 0; j < 1000; ++j)
        if (b.allow(t0 + 15ms)) ++probes;
    });
  for (auto& t : threads) t.join();
  CHECK(probes == 1);
  CHECK(b.state() == BreakerState::half_open);
}

TEST_CASE("a probe in flight holds off everyone else until it reports, however many periods pass") {
  CircuitBreaker b({.failure_threshold = 1, .open_for = 10ms, .max_open_for = 10ms, .probe_timeout = 2s});
  const auto t0 = CircuitBreaker::clock::now();
  b.failure(t0);
  REQUIRE(b.allow(t0 + 10ms));  // the probe, blocked on a hung server
  int let_through = 0;
  for (auto t = t0 + 11ms; t < t0 + 10ms + 2s; t += 1ms) let_through += b.allow(t) ? 1 : 0;
  CHECK(let_through == 0);  // not one more caller pays the timeout while it hangs
  CHECK(b.state() == BreakerState::half_open);
  b.failure(t0 + 1500ms);  // it reports: open again for a period, then one new probe
  CHECK_FALSE(b.allow(t0 + 1505ms));
  CHECK(b.allow(t0 + 1510ms));
  CHECK_FALSE(b.allow(t0 + 1511ms));
  b.success();
  CHECK(b.state() == BreakerState::closed);
}

TEST_CASE("a probe that never reports is replaced, by one caller, after probe_timeout") {
  CircuitBreaker b({.failure_threshold = 1, .open_for = 10ms, .probe_timeout = 500ms});
  const auto t0 = CircuitBreaker::clock::now();
  b.failure(t0);
  REQUIRE(b.allow(t0 + 10ms));  // the probe, which then never reports
  CHECK_FALSE(b.allow(t0 + 509ms));
  CHECK(b.allow(t0 + 510ms));  // a new probe
  CHECK_FALSE(b.allow(t0 + 511ms));  // and only one
  CHECK_FALSE(b.allow(t0 + 1009ms));
  b.success();
  CHECK(b.state() == BreakerState::closed);
}

TEST_CASE("by default a probe holds its place longer than the default connect and command timeouts together") {
  const cachet::BreakerOptions breaker;
  const cachet::ConnectionOptions connection;
  CHECK(breaker.probe_timeout > connection.connect_timeout + connection.command_timeout);
}

TEST_CASE("a throwing listener does not wedge the breaker") {
  CircuitBreaker b({.failure_threshold = 1, .open_for = 10ms}, [](BreakerState) { throw std::runtime_error("x"); });
  const auto t0 = CircuitBreaker::clock::now();
  b.failure(t0);
  CHECK(b.state() == BreakerState::open);
  CHECK(b.allow(t0 + 10ms));
  b.success();
  CHECK(b.state() == BreakerState::closed);
}
