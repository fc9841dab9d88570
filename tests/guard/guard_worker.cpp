// The other processes of the multi-process guard tests, exec'd fresh (a forked
// copy of a multi-threaded test may not start threads under ThreadSanitizer).
//
//   guard_worker stampede <address>  16 threads check in, wait for "go", then miss one key
//   guard_worker swr <address>       8 threads read a stale key through stale-while-revalidate
//   guard_worker hold <address>      takes the lock and hangs in the loader (to be SIGKILLed)
//
// <address>: the test's Redis, a socket path or "cluster:" and seeds (support/client.hpp).
//
// Exit 0 when every read saw what it should. Loads are counted in Redis.
#include <cachet/codec/string.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/guard/stale_while_revalidate.hpp>
#include <cachet/policy/cache_aside.hpp>

#include <support/client.hpp>
#include <support/concurrency.hpp>
#include <support/guard_fixtures.hpp>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using namespace cachet::test;

namespace {

int stampede(const cachet::ConnectionOptions& redis) {
  cachet::Pool pool(redis, roomy());
  StringCache<cachet::StampedeGuard> cache(cachet::RedisStore(pool), guard_options(), {}, stampede_guard(pool));
  std::atomic<int> wrong{0};
  in_threads(16, [&](int) {
    Client conn(redis);
    conn.command({"INCR", "ready"});
    while (conn.command({"EXISTS", "go"}).as_integer() == 0) std::this_thread::sleep_for(200us);
    const std::string v = cache.get_or_load("hot", [&](std::string_view) {
      conn.command({"INCR", "loads"});
      std::this_thread::sleep_for(100ms);
      return std::string("value");
    });
    wrong += v != "value";
  });
  return wrong == 0 ? 0 : 1;
}

int stale_while_revalidate(const cachet::ConnectionOptions& redis) {
  cachet::Pool pool(redis, roomy());
  cachet::ManualClock clock;
  clock.advance(2s);  // the seeded entry is stale here
  using G = cachet::GuardStack<cachet::StaleWhileRevalidate, cachet::SingleFlight, cachet::RedisLockGuard>;
  ManualCache<G> cache(cachet::RedisStore(pool), stale_options(), {}, G({}, {}, cachet::RedisLockGuard(pool)),
                       cachet::ClockRef(clock));
  Client conn(redis);
  std::mutex conn_mutex;
  auto load = [&](std::string_view) {
    std::lock_guard lock(conn_mutex);
    conn.command({"INCR", "loads"});
    std::this_thread::sleep_for(200ms);
    return std::string("v1");
  };
  std::atomic<int> wrong{0};
  in_threads(8, [&](int) {
    for (int i = 0; i < 20; ++i) {
      const std::string v = cache.get_or_load("k", load);
      wrong += v != "v0" && v != "v1";  // stale until the refresh lands, then new
    }
  });
  // The other process may be the one refreshing.
  const bool refreshed = eventually([&] { return cache.get("k") == "v1"; });
  return wrong == 0 && refreshed ? 0 : 1;
}

int hold(const cachet::ConnectionOptions& redis) {
  cachet::Pool pool(redis);
  StringCache<cachet::StampedeGuard> cache(cachet::RedisStore(pool), guard_options(), {},
                                           stampede_guard(pool, {.lease = killed_holder_lease}));
  Client conn(redis);
  cache.get_or_load("k", [&](std::string_view) {
    conn.command({"RPUSH", "starts", redis_ms(conn)});
    std::this_thread::sleep_for(1h);  // SIGKILLed mid-load
    return std::string("never");
  });
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: guard_worker stampede|swr|hold <redis address>\n");
    return 2;
  }
  const std::string mode = argv[1];
  const cachet::ConnectionOptions redis = target_options(argv[2]);
  try {
    if (mode == "stampede") return stampede(redis);
    if (mode == "swr") return stale_while_revalidate(redis);
    if (mode == "hold") return hold(redis);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "guard_worker %s: %s\n", mode.c_str(), e.what());
    return 3;
  }
  std::fprintf(stderr, "guard_worker: unknown mode %s\n", mode.c_str());
  return 2;
}
