// Stale-while-revalidate, early expiration, fail-safe, load timeouts, and the
// executor they run on.
#include <cachet/codec/string.hpp>
#include <cachet/guard/early_expiration.hpp>
#include <cachet/guard/fail_safe.hpp>
#include <cachet/guard/load_timeout.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/guard/stale_while_revalidate.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/write_through.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/errors.hpp>
#include <support/client.hpp>
#include <support/guard_fixtures.hpp>
#include <support/server.hpp>
#include <support/tier_fixtures.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::test::in_threads;

namespace {

template <class G, class S = cachet::RedisStore>
using Cache = cachet::test::ManualCache<G, S>;

cachet::CacheOptions options() { return cachet::test::stale_options(); }

// A loader whose n-th call returns "v<n>"; calls after the first wait for `gate`.
struct GatedLoader {
  std::atomic<int>* calls;
  std::shared_future<void> gate;
  std::string operator()(std::string_view) const {
    const int n = ++*calls;
    if (n > 1) gate.wait();
    return "v" + std::to_string(n);
  }
};

}  // namespace

TEST_CASE("executor: bounded queue, bounded threads, stop waits for running jobs and drops queued ones") {
  cachet::Executor executor({.threads = 2, .queue = 3});
  std::promise<void> go;
  std::shared_future<void> gate = go.get_future().share();
  std::atomic<int> ran{0};
  auto job = [&] {
    gate.wait();
    ++ran;
  };
  REQUIRE(executor.try_submit(job));
  REQUIRE(executor.try_submit(job));
  // Two running (once picked up), so three more fill the queue and the next is refused.
  REQUIRE(cachet::test::eventually([&] { return executor.queued() == 0; }));
  CHECK(executor.try_submit(job));
  CHECK(executor.try_submit(job));
  CHECK(executor.try_submit(job));
  CHECK_FALSE(executor.try_submit(job));
  CHECK_FALSE(executor.submit_until(job, std::chrono::steady_clock::now() + 20ms));
  CHECK(executor.threads() == 2);
  cachet::test::Thread release([&] {  // both workers wait at the gate, so only stop() can empty the queue
    cachet::test::eventually([&] { return executor.queued() == 0; });
    go.set_value();
  });
  executor.stop();  // the two running jobs finish; the three queued never start
  release.join();
  CHECK(ran == 2);
  CHECK_FALSE(executor.try_submit(job));
}

TEST_CASE("executor: a job that throws does not take its worker down") {
  cachet::Executor executor({.threads = 1, .queue = 8});
  std::atomic<int> ran{0};
  CHECK(executor.try_submit([] { throw std::runtime_error("job failed"); }));
  CHECK(executor.try_submit([&] { ++ran; }));
  executor.wait_idle();
  CHECK(ran == 1);
}

// The RedisLockGuard: its LockNotifier refuses a cluster until it subscribes per node.
TEMPLATE_TEST_CASE("stale-while-revalidate: 1000 reads get the stale value at once, one refresh replaces it", "", cachet::RedisStore, cachet::test::StringTier) {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options(), {.size = 16, .wait_timeout = 5s});
  cachet::test::TestStore<TestType> store(pool);
  cachet::ManualClock clock;
  using G = cachet::GuardStack<cachet::StaleWhileRevalidate, cachet::SingleFlight, cachet::RedisLockGuard>;
  Cache<G, TestType> cache(store.make(), options(), {}, G({}, {}, cachet::RedisLockGuard(pool)), cachet::ClockRef(clock));
  std::atomic<int> calls{0};
  std::promise<void> go;
  const GatedLoader load{&calls, go.get_future().share()};
  REQUIRE(cache.get_or_load("k", load) == "v1");
  clock.advance(2s);  // stale

  // The refresh is held at its gate, so a read that waited for it would hang here.
  std::atomic<int> stale{0};
  in_threads(50, [&](int) {
    for (int i = 0; i < 20; ++i) stale += cache.get_or_load("k", load) == "v1";
  });
  CHECK(stale == 1000);
  CHECK(cachet::test::eventually([&] { return calls == 2; }));  // one refresh started
  CHECK(cache.guard().template get<0>().refreshing() == 1);
  CHECK(cache.metrics().value(cachet::Event::stale_hit) == 1000);
  CHECK(cache.metrics().value(cachet::Event::refresh) == 1);

  go.set_value();
  cache.executor().wait_idle();
  CHECK(cache.get_or_load("k", load) == "v2");
  CHECK(calls == 2);
}

// The workers' stack holds a RedisLockGuard (guard_worker.cpp).
TEST_CASE("stale-while-revalidate across 2 processes: one refresh between them") {
  auto& server = cachet::test::clean_target();
  {
    cachet::Pool pool(server.connection_options());
    cachet::ManualClock clock;
    Cache<cachet::NoGuard> seed(cachet::RedisStore(pool), options(), {}, {}, cachet::ClockRef(clock));
    seed.set("k", "v0");
  }
  const pid_t a = cachet::test::start_worker("swr", server.address(), server.directory() + "/swr-a");
  const pid_t b = cachet::test::start_worker("swr", server.address(), server.directory() + "/swr-b");
  CHECK(cachet::test::wait_exit(a) == 0);
  CHECK(cachet::test::wait_exit(b) == 0);
  CHECK(server.connect().command({"GET", "loads"}).as_string() == "1");
}

TEST_CASE("early expiration: picks follow XFetch's exp(-gap / (compute_time * beta))") {
  cachet::EntryMeta meta;
  meta.fresh_until = cachet::EntryMeta::time_point(std::chrono::hours(1000));
  meta.compute_time = 100ms;
  constexpr int samples = 20000;
  for (double beta : {0.5, 1.0, 2.0}) {
    const cachet::EarlyExpiration guard({.beta = beta});
    for (int gap_ms : {10, 50, 100, 200, 300}) {
      int picked = 0;
      for (int i = 0; i < samples; ++i) picked += guard.refresh_early(meta, meta.fresh_until - std::chrono::milliseconds(gap_ms));
      const double expected = std::exp(-gap_ms / (100.0 * beta));
      INFO("beta " << beta << ", gap " << gap_ms << " ms");
      CHECK(std::abs(double(picked) / samples - expected) < 0.02);  // about 5 standard deviations
    }
  }
  const cachet::EarlyExpiration guard;
  CHECK_FALSE(guard.refresh_early(meta, meta.fresh_until));  // expired: the stale path, not early
  meta.compute_time = 0ms;
  CHECK_FALSE(guard.refresh_early(meta, meta.fresh_until - 1ms));  // no compute time: never
}

// The RedisLockGuard: its LockNotifier refuses a cluster until it subscribes per node.
TEMPLATE_TEST_CASE("early expiration: recomputed before expiry, one at a time, no reader waits", "", cachet::RedisStore, cachet::test::StringTier) {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options(), {.size = 16, .wait_timeout = 5s});
  cachet::test::TestStore<TestType> store(pool);
  cachet::ManualClock clock;
  using G = cachet::GuardStack<cachet::EarlyExpiration, cachet::SingleFlight, cachet::RedisLockGuard>;
  auto o = options();
  o.ttl = cachet::TtlPolicy({.fresh = 10s, .stale = 0s, .jitter = 0});
  Cache<G, TestType> cache(store.make(), o, {}, G({}, {}, cachet::RedisLockGuard(pool)), cachet::ClockRef(clock));
  std::atomic<int> loads{0}, active{0}, most_active{0};
  auto load = [&](std::string_view) {
    const int now_active = ++active;
    int seen = most_active;
    while (now_active > seen && !most_active.compare_exchange_weak(seen, now_active)) {
    }
    std::this_thread::sleep_for(20ms);  // the compute time XFetch weighs
    --active;
    return "v" + std::to_string(++loads);
  };
  REQUIRE(cache.get_or_load("k", load) == "v1");
  const auto expiry = clock.now() + 10s;
  clock.advance(9500ms);  // 25 compute times before expiry: practically never picked here

  std::atomic<bool> done{false};
  std::atomic<int> misses{0};
  cachet::test::Thread readers([&] {
    in_threads(8, [&](int) {
      while (!done) misses += cache.get_or_load("k", load).empty();
    });
  });
  const cachet::test::RaiseOnExit stop_readers(done);
  // Step the clock towards expiry until a recomputation has replaced the value.
  while (clock.now() < expiry && cache.get("k") == "v1") {
    clock.advance(1ms);
    std::this_thread::sleep_for(1ms);  // no faster than real time: the refresh takes real milliseconds
  }
  const bool before_expiry = clock.now() < expiry;
  done = true;
  readers.join();
  cache.executor().wait_idle();
  CHECK(before_expiry);
  CHECK(cache.get("k") == "v2");
  CHECK(loads == 2);
  CHECK(most_active == 1);
  CHECK(misses == 0);
}

TEMPLATE_TEST_CASE("fail-safe: a database down for 10 s, every read served stale, one load per hold-back period", "", cachet::RedisStore, cachet::test::StringTier) {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::test::TestStore<TestType> store(pool);
  cachet::ManualClock clock;
  // SingleFlight outside FailSafe: the hold-back is recorded before the flight ends.
  using G = cachet::GuardStack<cachet::SingleFlight, cachet::FailSafe>;
  Cache<G, TestType> cache(store.make(), options(), {}, G({}, cachet::FailSafe({.max_stale = 1h, .hold_back = 1s})),
                 cachet::ClockRef(clock));
  REQUIRE(cache.get_or_load("k", [](std::string_view) { return std::string("v1"); }) == "v1");
  clock.advance(2s);

  std::mutex mutex;
  std::vector<cachet::EntryMeta::time_point> attempts;
  auto failing = [&](std::string_view) -> std::string {
    std::lock_guard lock(mutex);
    attempts.push_back(clock.now());
    throw std::runtime_error("database down");
  };
  constexpr int readers_n = 4;
  std::atomic<bool> done{false};
  std::atomic<long> reads{0};
  std::atomic<int> served{0}, failed{0};
  cachet::test::Thread readers([&] {
    in_threads(readers_n, [&](int) {
      while (!done) {
        try {
          served += cache.get_or_load("k", failing) == "v1";
        } catch (...) {
          ++failed;
        }
        ++reads;
      }
    });
  });
  const cachet::test::RaiseOnExit stop_readers(done);
  // A read that starts after `from`: each reader has at most one read running
  // at `from`, so the (readers_n + 1)-th to end after it started after it.
  auto read_after = [&](long from) { return cachet::test::eventually([&] { return reads > from + readers_n; }, 30s); };
  bool every_step_read = read_after(reads);  // the first attempt, at the stale value's time
  for (int step = 0; step < 1000 && every_step_read; ++step) {  // 10 s in 10 ms steps
    clock.advance(10ms);
    every_step_read = read_after(reads);  // a read at every step: each hold-back's end is seen
  }
  done = true;
  readers.join();
  REQUIRE(every_step_read);
  CHECK(failed == 0);
  CHECK(served == reads);  // every read served the stale value
  CHECK(attempts.size() == 11);  // now, then once a second over 10 s: one per hold-back, never more
  for (std::size_t i = 1; i < attempts.size(); ++i) CHECK(attempts[i] - attempts[i - 1] >= 1s);
}

TEST_CASE("fail-safe: without a stale value, or with one older than max_stale, the error reaches the caller") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::ManualClock clock;
  Cache<cachet::FailSafe> cache(cachet::RedisStore(pool), options(), {}, cachet::FailSafe({.max_stale = 1min}),
                                cachet::ClockRef(clock));
  auto failing = [](std::string_view) -> std::string { throw std::runtime_error("database down"); };
  CHECK(cachet::test::throws_exactly<std::runtime_error>([&] { cache.get_or_load("cold", failing); }));
  cache.set("k", "v1");
  clock.advance(2min);  // stale, and older than max_stale
  CHECK(cachet::test::throws_exactly<std::runtime_error>([&] { cache.get_or_load("k", failing); }));
  CHECK(cache.metrics().value(cachet::Event::stale_hit) == 0);
}

TEMPLATE_TEST_CASE("load timeouts: soft serves the stale value, hard throws, and the load still caches its value", "", cachet::RedisStore, cachet::test::StringTier) {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::test::TestStore<TestType> store(pool);
  cachet::ManualClock clock;
  Cache<cachet::LoadTimeout, TestType> cache(store.make(), options(), {},
                                   cachet::LoadTimeout({.soft = 20ms, .hard = 100ms}), cachet::ClockRef(clock));
  std::atomic<int> calls{0};
  std::promise<void> go;
  const GatedLoader load{&calls, go.get_future().share()};
  REQUIRE(cache.get_or_load("k", load) == "v1");
  clock.advance(2s);
  CHECK(cache.get_or_load("k", load) == "v1");  // soft: the held load has not returned
  CHECK(cache.metrics().value(cachet::Event::stale_hit) == 1);
  CHECK(cachet::test::throws_exactly<cachet::LoadTimeoutError>([&] { cache.get_or_load("cold", load); }));
  go.set_value();
  cache.executor().wait_idle();
  CHECK(cache.get("k").has_value());  // both timed-out loads finished and cached their values
  CHECK(cache.get("cold").has_value());
  CHECK(calls == 3);
  // A load that fails fast reports its own error, not a timeout.
  auto failing = [](std::string_view) -> std::string { throw std::invalid_argument("bad id"); };
  CHECK(cachet::test::throws_exactly<std::invalid_argument>([&] { cache.get_or_load("bad", failing); }));
}

// SingleFlight outside the timeout reads the key's write version for its flight
// key; the background load the timeout detaches takes that reading along.
TEST_CASE("a load timed out behind SingleFlight in a write-through cache reads the write version once", "[single-server]") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::ManualClock clock;
  using G = cachet::GuardStack<cachet::SingleFlight, cachet::LoadTimeout>;
  Cache<G, cachet::RedisStore> cache(cachet::RedisStore(pool), options(), {}, G({}, cachet::LoadTimeout({.hard = 60s})),
                                     cachet::ClockRef(clock));
  auto written = cachet::write_through(cache, [](std::string_view, const std::string&) {});
  written.put("k", "put");  // a write version for the load to watch
  REQUIRE(cache.invalidate("k"));
  auto conn = server.connect();
  const auto reads = [&] { return cachet::test::command_calls(conn, "mget"); };
  const auto before = reads();
  CHECK(cache.get_or_load("k", [](std::string_view) { return std::string("loaded"); }) == "loaded");
  CHECK(reads() - before == 1);  // was 2: the detached load read it again
  CHECK(cache.get("k") == "loaded");  // stored: the version it was checked against was current
}
