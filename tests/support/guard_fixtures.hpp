#pragma once
// What the guard tests and their worker processes share: cache types, options,
// the default guard stack, Redis's clock, and how to start a worker.

#include <cachet/codec/string.hpp>
#include <cachet/testing/detail/spawner.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/guard/redis_lock_guard.hpp>
#include <cachet/redis/pool.hpp>
#include <support/concurrency.hpp>

#include <chrono>
#include <cstdint>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

namespace cachet::test {

template <class G, class S = RedisStore>
using StringCache = CacheAside<std::string, StringCodec, G, S>;
template <class G, class S = RedisStore>
using ManualCache = CacheAside<std::string, StringCodec, G, S, ClockRef<ManualClock>>;

// Caches in one process share metrics by label: give each its own to count apart.
inline CacheOptions guard_options(std::string label = {}) {
  CacheOptions o;
  o.ns = "t";
  o.name = "item";
  o.metrics_label = std::move(label);
  o.ttl = TtlPolicy({.fresh = std::chrono::minutes(1), .jitter = 0});
  return o;
}

// Fresh for 1 s, then stale (still in Redis) for an hour.
inline CacheOptions stale_options() {
  CacheOptions o = guard_options();
  o.ttl = TtlPolicy({.fresh = std::chrono::seconds(1), .stale = std::chrono::hours(1), .jitter = 0});
  return o;
}

// Enough connections that 64 threads never time out waiting for one: an
// exhausted pool would read as an outage and skip the lock.
inline PoolOptions roomy() { return {.size = 16, .wait_timeout = std::chrono::seconds(5)}; }

inline constexpr std::chrono::milliseconds killed_holder_lease{600};

// Redis's clock in milliseconds: one clock for every process of a test (a
// Connection, or a test::Client: one master of a cluster, whose clocks are this machine's).
template <class C>
long long redis_ms(C& c) {
  const auto t = c.command({"TIME"});
  return std::stoll(std::string(t[0].as_string())) * 1000 + std::stoll(std::string(t[1].as_string())) / 1000;
}

#ifdef CACHET_GUARD_WORKER
// Starts `guard_worker <mode> <socket>`; its output goes to `log`. Returns its pid.
inline pid_t start_worker(const std::string& mode, const std::string& socket, const std::string& log) {
  return detail::Spawner::spawn({CACHET_GUARD_WORKER, mode, socket}, log);
}
#endif

// One cache holds the lock on "k" while another waits for it, both polling
// only every `poll`; the holder's release should wake the waiter at once. What
// each got, how long the waiter took after the release, and how often it loaded.
struct WakeOnRelease {
  std::string held, waited;
  std::chrono::steady_clock::duration after_release;
  std::int64_t waiter_loads;
};
inline WakeOnRelease wake_on_release(Pool& pool, std::chrono::milliseconds poll, std::string label) {
  const RedisLockGuardOptions slow_poll{.poll_min = poll, .poll_max = poll};
  StringCache<RedisLockGuard> holder(RedisStore(pool), guard_options(label + "-holder"), {},
                                     RedisLockGuard(pool, slow_poll));
  StringCache<RedisLockGuard> waiter(RedisStore(pool), guard_options(label + "-waiter"), {},
                                     RedisLockGuard(pool, slow_poll));
  std::promise<void> started, go;
  auto load = std::async(std::launch::async, [&, go_f = go.get_future()] {
    return holder.get_or_load("k", [&](std::string_view) {
      started.set_value();
      go_f.wait();
      return std::string("value");
    });
  });
  if (started.get_future().wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    go.set_value();
    throw std::runtime_error("wake_on_release: the holder never started its load");
  }
  auto wait = std::async(std::launch::async, [&] {
    return waiter.get_or_load("k", [](std::string_view) { return std::string("second load"); });
  });
  if (!eventually([&] { return waiter.metrics().value(Event::lock_wait) == 1; })) {
    go.set_value();
    throw std::runtime_error("wake_on_release: the waiter never waited for the lock");
  }
  const auto released = std::chrono::steady_clock::now();
  go.set_value();
  WakeOnRelease r{.held = {}, .waited = wait.get(), .after_release = {}, .waiter_loads = 0};
  r.after_release = std::chrono::steady_clock::now() - released;
  r.held = load.get();
  r.waiter_loads = waiter.metrics().value(Event::load);
  return r;
}

}  // namespace cachet::test
