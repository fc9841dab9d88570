#include <cachet/codec/string.hpp>
#include <cachet/guard/redis_lock_guard.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/write_through.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/errors.hpp>
#include <support/guard_fixtures.hpp>
#include <support/server.hpp>
#include <support/tier_fixtures.hpp>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <future>
#include <latch>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

using namespace cachet::test;

// Every case here takes the RedisLockGuard, whose LockNotifier refuses a cluster until it subscribes per node.
TEMPLATE_TEST_CASE("64 threads miss one key at once: the loader runs once", "", cachet::RedisStore, cachet::test::StringTier) {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options(), roomy());
  TestStore<TestType> store(pool);
  std::atomic<int> loads{0};
  std::latch start(64);
  std::atomic<bool> all_waited{false};
  // `waiters`: the load holds the lock until that many callers wait for it (0: a 50 ms load).
  auto run = [&](auto& cache, std::uint64_t waiters) {
    std::vector<std::string> got(64);
    in_threads(64, [&](int i) {
      start.arrive_and_wait();
      got[static_cast<std::size_t>(i)] = cache.get_or_load("hot", [&](std::string_view) {
        ++loads;
        if (waiters == 0) std::this_thread::sleep_for(50ms);
        else all_waited = eventually([&] { return cache.metrics().value(cachet::Event::lock_wait) == waiters; }, 60s);
        return std::string("value");
      });
    });
    CHECK(got == std::vector<std::string>(64, "value"));
  };
  SECTION("SingleFlight in front of the lock") {
    StringCache<cachet::StampedeGuard, TestType> cache(store.make(), guard_options(), {}, stampede_guard(pool));
    run(cache, 0);
    CHECK(cache.metrics().value(cachet::Event::load) == 1);
  }
  SECTION("the lock alone: 63 waiters, woken by the release") {
    StringCache<cachet::RedisLockGuard, TestType> cache(store.make(), guard_options(), {}, cachet::RedisLockGuard(pool));
    run(cache, 63);
    CHECK(all_waited);  // every other caller missed while the lock was held, and waited
    CHECK(cache.metrics().value(cachet::Event::lock_wait) == 63);
  }
  CHECK(loads == 1);
}

TEST_CASE("4 processes x 16 threads miss one key at once: the loader runs once across them") {
  auto& server = clean_target();
  constexpr int processes = 4, threads = 16;
  std::vector<pid_t> workers;
  for (int p = 0; p < processes; ++p)
    workers.push_back(start_worker("stampede", server.address(), server.directory() + "/worker" + std::to_string(p)));
  // Every thread of every process checks in, then all go at once.
  auto conn = server.connect();
  CHECK(eventually([&] { return conn.command({"GET", "ready"}).as_optional_string() == std::to_string(processes * threads); }));
  conn.command({"SET", "go", 1});
  for (pid_t pid : workers) CHECK(wait_exit(pid) == 0);
  CHECK(conn.command({"GET", "loads"}).as_string() == "1");
}

TEST_CASE("a SIGKILLed holder is replaced once its lease runs out, never inside it") {
  auto& server = clean_target();
  constexpr auto lease = killed_holder_lease;
  auto conn = server.connect();
  const pid_t holder = start_worker("hold", server.address(), server.directory() + "/holder");
  REQUIRE(eventually([&] { return conn.command({"LLEN", "starts"}).as_integer() == 1; }));

  // Another process waits on the lock while the holder still renews it...
  cachet::Pool pool(server.connection_options());
  StringCache<cachet::StampedeGuard> cache(cachet::RedisStore(pool), guard_options(), {}, stampede_guard(pool, {.lease = lease}));
  auto c = server.connect();
  auto waiter = std::async(std::launch::async, [&] {
    return cache.get_or_load("k", [&](std::string_view) {
      c.command({"RPUSH", "starts", redis_ms(c)});
      return std::string("value");
    });
  });
  std::this_thread::sleep_for(2 * lease);  // renewed twice over: nobody took it
  CHECK(conn.command({"LLEN", "starts"}).as_integer() == 1);
  // ...and takes over after the holder dies and its lease runs out. The lease's end as
  // Redis holds it just before the kill: a renewal after this read only moves it later.
  const cachet::Reply held = conn.command(
      {"EVAL", "local t = redis.call('TIME') return {t[1] * 1000 + math.floor(t[2] / 1000), redis.call('PTTL', KEYS[1])}",
       1, cache.keys().lock(cache.key("k"))});
  REQUIRE(held[1].as_integer() > 0);
  const long long lease_end = held[0].as_integer() + held[1].as_integer();
  ::kill(holder, SIGKILL);
  CHECK(wait_exit(holder) == -1);
  CHECK(waiter.get() == "value");
  REQUIRE(conn.command({"LLEN", "starts"}).as_integer() == 2);
  const long long taken_at = std::stoll(std::string(conn.command({"LINDEX", "starts", 1}).as_string()));
  CHECK(taken_at >= lease_end - 1);  // never inside the dead holder's lease (1 ms: the two clocks' rounding)
  CHECK(cache.metrics().value(cachet::Event::lock_wait) == 1);
}

// Tagged loads too.
TEMPLATE_TEST_CASE("fencing: a holder whose lease ran out neither overwrites, tags nor unlocks its successor", "", cachet::RedisStore, cachet::test::StringTier) {
  auto& server = clean_target();
  auto conn = server.connect();
  cachet::Pool pool_a(server.connection_options()), pool_b(server.connection_options());
  // One store (and, over the tier, one tracking) for both: b's tag invalidation
  // below syncs that tracking, so a's L1 has dropped the entry by the time it returns.
  TestStore<TestType> store(pool_a);
  StringCache<cachet::RedisLockGuard, TestType> a(store.make(), guard_options(), {}, cachet::RedisLockGuard(pool_a));
  StringCache<cachet::RedisLockGuard, TestType> b(store.make(), guard_options("b"), {}, cachet::RedisLockGuard(pool_b));
  // Tagged loads: the fenced write and the tagging are one script, so a refused write tags nothing.
  a.tag_loaded_values([](const std::string& v) { return std::vector<std::string>{"by:" + v}; });
  b.tag_loaded_values([](const std::string& v) { return std::vector<std::string>{"by:" + v}; });
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
  CHECK(conn.command({"EXISTS", "t:tag:by%3Aold"}).as_integer() == 0);

  b_go.set_value();
  CHECK(new_load.get() == "new");
  CHECK(a.get("k") == "new");
  CHECK(conn.command({"EXISTS", lock_key}).as_integer() == 0);
  if (!cachet::test::on_cluster()) {  // tag sets; a cluster stamps the entry with tag versions instead
    CHECK(conn.command({"SISMEMBER", "t:tag:by%3Anew", a.key("k")}).as_integer() == 1);
    CHECK(b.invalidate_tags({"by:new"}) == 1);
  } else {
    b.invalidate_tags({"by:new"});
  }
  CHECK_FALSE(a.get("k"));
}

namespace {
// Sets `p` once: at open(), or when it goes, so that a failed check never
// leaves a loader waiting (and its future's destructor with it).
struct Opens {
  std::promise<void>& p;
  bool done = false;
  void open() {
    if (!std::exchange(done, true)) p.set_value();
  }
  ~Opens() { open(); }
};
}  // namespace

// Every condition of the value-write script at once (its KEYS and ARGV): the
// lock's token, the watched write version (a put came first), the tag epoch. A
// tag invalidation lands during the load: the write is refused and the lock
// released with it, so the reader waiting on it wakes at once (its back-off is
// 3 s, the lease 5 s) and loads afresh; over the tier, L1 keeps nothing meanwhile.
TEMPLATE_TEST_CASE("a locked watched tagged load overtaken by a tag invalidation is refused and wakes its waiter", "",
                   cachet::RedisStore, cachet::test::StringTier) {
  constexpr bool tiered = std::same_as<TestType, cachet::test::StringTier>;
  auto& server = clean_target();
  std::vector<cachet::HashTag> hash_tags{cachet::HashTag::none};  // on a cluster: stamps and the epoch re-read
  if (!tiered) hash_tags.push_back(cachet::HashTag::ns);  // one script on a cluster too (the tier tracks "t:" only)
  for (const cachet::HashTag h : hash_tags) {
    cachet::Pool pool(server.connection_options());
    TestStore<TestType> store(pool);
    cachet::CacheOptions o = guard_options(std::string(tiered ? "combined-tier-" : "combined-") + std::to_string(int(h)));
    o.keys.hash_tag = h;
    const cachet::RedisLockGuardOptions slow_poll{.poll_min = 3s, .poll_max = 3s};
    StringCache<cachet::RedisLockGuard, TestType> cache(store.make(), o, {},
                                                         cachet::RedisLockGuard(pool, slow_poll));
    cache.tag_loaded_values([](const std::string&) { return std::vector<std::string>{"all"}; });
    auto written = cachet::write_through(cache, [](std::string_view, const std::string&) {});
    written.put("k", "put");  // a write version for the loads to watch
    REQUIRE(cache.invalidate("k"));

    std::promise<void> first_started, first_go, second_started, second_go;
    std::future<void> second_began = second_started.get_future();
    auto first = std::async(std::launch::async, [&, go = first_go.get_future()] {
      return cache.get_or_load("k", [&](std::string_view) {
        first_started.set_value();
        go.wait();
        return std::string("before");
      });
    });
    Opens open_first{first_go};  // before `first` is waited for, whatever fails
    first_started.get_future().wait();
    cache.invalidate_tags({"all"});  // during the load
    auto second = std::async(std::launch::async, [&, go = second_go.get_future()] {
      return cache.get_or_load("k", [&](std::string_view) {
        second_started.set_value();
        go.wait();
        return std::string("after");
      });
    });
    Opens open_second{second_go};
    const bool waiting = eventually([&] { return cache.metrics().value(cachet::Event::lock_wait) == 1; });
    const auto released = std::chrono::steady_clock::now();
    open_first.open();
    CHECK(first.get() == "before");  // its caller gets what it loaded...
    const bool woken = second_began.wait_for(1500ms) == std::future_status::ready;
    const auto after_release = std::chrono::steady_clock::now() - released;
    CHECK(waiting);
    CHECK(woken);  // by the release, neither by the 3 s back-off nor by the 5 s lease
    CHECK(after_release < 1500ms);
    CHECK(cache.metrics().value(cachet::Event::stale_write_refused) == 1);  // ...the cache does not
    CHECK(cache.metrics().value(cachet::Event::fenced_out) == 0);
    CHECK_FALSE(cache.get("k"));
    if constexpr (tiered) CHECK_FALSE(cache.store().l1().get(cache.key("k")));
    open_second.open();
    CHECK(second.get() == "after");
    CHECK(cache.get("k") == "after");  // stored: its load began after the invalidation
    CHECK(cache.metrics().value(cachet::Event::load) == 2);
    CHECK(cache.metrics().value(cachet::Event::stale_write_refused) == 1);
    cache.invalidate_tags({"all"});  // and tagged
    CHECK_FALSE(cache.get("k"));
  }
}

TEST_CASE("a waiter is woken by the release, not by its back-off") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options());
  const auto r = cachet::test::wake_on_release(pool, 3s, "wake");
  CHECK(r.waited == "value");
  CHECK(r.after_release < 1500ms);  // half the back-off: the notification woke it
  CHECK(r.held == "value");
  CHECK(r.waiter_loads == 0);
}

TEST_CASE("at its deadline a waiter loads itself, or throws LockTimeoutError if asked to") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options());
  std::atomic<int> loads{0};
  auto load = [&](std::string_view) {
    ++loads;
    return std::string("own");
  };
  StringCache<cachet::RedisLockGuard> raising(cachet::RedisStore(pool), guard_options(), {},
                                        cachet::RedisLockGuard(pool, {.wait = 100ms, .on_timeout = cachet::LockTimeout::raise}));
  const auto lock_key = raising.keys().lock(raising.key("k"));  // the cache's own layout (a cluster's hash tag)
  cachet::RedisStore store(pool);
  cachet::RedisLock other(store, lock_key, {.lease = 60s});
  REQUIRE(other.try_acquire());  // a holder that never finishes

  CHECK(throws_exactly<cachet::LockTimeoutError>([&] { raising.get_or_load("k", load); }));
  CHECK(loads == 0);

  StringCache<cachet::RedisLockGuard> loading(cachet::RedisStore(pool), guard_options(), {}, cachet::RedisLockGuard(pool, {.wait = 100ms}));
  CHECK(loading.get_or_load("k", load) == "own");
  CHECK(loads == 1);
  CHECK(other.release());  // untouched by either
}

TEST_CASE("the lease is renewed while a slow load runs, so nobody else loads meanwhile") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options());
  const cachet::RedisLockGuardOptions short_lease{.lease = 600ms};  // renewed every 200 ms: 400 ms of stall allowed
  StringCache<cachet::RedisLockGuard> a(cachet::RedisStore(pool), guard_options(), {}, cachet::RedisLockGuard(pool, short_lease));
  StringCache<cachet::RedisLockGuard> b(cachet::RedisStore(pool), guard_options(), {}, cachet::RedisLockGuard(pool, short_lease));
  std::atomic<int> loads{0};
  std::promise<void> started;
  auto slow = std::async(std::launch::async, [&] {
    return a.get_or_load("k", [&](std::string_view) {
      ++loads;
      started.set_value();
      std::this_thread::sleep_for(2400ms);  // four leases
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

// Kills and restarts the one server.
TEST_CASE("with Redis down the lock is skipped and reads are served by the loader", "[single-server]") {
  auto& server = clean_server();
  cachet::Pool pool(server.connection_options());
  StringCache<cachet::StampedeGuard> cache(cachet::RedisStore(pool), guard_options(), {}, stampede_guard(pool));
  server.kill();
  CHECK(cache.get_or_load("k", [](std::string_view) { return std::string("from db"); }) == "from db");
  server.restart();
}

TEST_CASE("woken waiters re-read before they take the lock: one acquisition and one release per expiry") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options(), roomy());
  // Only the release wakes a waiter: no back-off wake-up, no give-up, and the
  // subscriber is up before the first miss (its connecting wakes every waiter).
  const cachet::RedisLockGuardOptions woken_by_release{.wait = 600s, .poll_min = 600s, .poll_max = 600s};
  StringCache<cachet::RedisLockGuard> cache(cachet::RedisStore(pool), guard_options("one-release"), {},
                                            cachet::RedisLockGuard(pool, woken_by_release));
  auto conn = server.connect();
  REQUIRE(eventually([&] { return conn.command({"PUBSUB", "NUMSUB", woken_by_release.channel})[1].as_integer() == 1; }));
  conn.command({"CONFIG", "RESETSTAT"});
  constexpr int threads = 8, rounds = 3;
  std::atomic<int> loads{0}, wrong{0}, unready{0};
  for (int round = 0; round < rounds; ++round) {
    conn.command({"DEL", cache.key("hot")});  // the value expired
    const auto waits = cache.metrics().value(cachet::Event::lock_wait);
    std::latch start(threads);
    in_threads(threads, [&](int) {
      start.arrive_and_wait();
      const std::string v = cache.get_or_load("hot", [&](std::string_view) {
        ++loads;
        // The holder writes and releases only once every other thread waits for the lock.
        const bool all = eventually(
            [&] { return cache.metrics().value(cachet::Event::lock_wait) == waits + threads - 1; }, 60s);
        unready += !all;
        return std::string("value");
      });
      wrong += v != "value";
    });
  }
  CHECK(unready == 0);
  CHECK(wrong == 0);
  CHECK(loads == rounds);
  // Each release PUBLISHes once (redis.call from the script is counted), and
  // every acquisition is released: a waiter that took the freed lock after the
  // holder's release would have released (and published) it again.
  CHECK(command_calls(conn, "publish") == rounds);
}

// Its own server, killed: the same on either target.
TEST_CASE("the release channel is subscribed when the guard is made, before any miss, and once Redis is back", "[single-server]") {
  cachet::testing::RedisServer server;
  auto numsub = [&](const std::string& channel) {
    return server.connect().command({"PUBSUB", "NUMSUB", channel})[1].as_integer();
  };
  cachet::Pool pool(server.connection_options());
  cachet::RedisLockGuard guard(pool, {.channel = "test:released"});
  CHECK(eventually([&] { return numsub("test:released") == 1; }));

  server.kill();  // made while Redis is down: no error, subscribed once it is back
  cachet::RedisLockGuard later(pool, {.channel = "test:later"});
  server.restart();
  CHECK(eventually([&] { return numsub("test:later") == 1; }, 30s));
}

TEST_CASE("a loader that throws one of cachet's errors under the lock: the caller gets it, nothing loads again unguarded") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options());
  StringCache<cachet::RedisLockGuard> cache(cachet::RedisStore(pool), guard_options(), {}, cachet::RedisLockGuard(pool));
  int loads = 0;
  CHECK_THROWS_AS(cache.get_or_load("k", [&](std::string_view) -> std::string {
    ++loads;
    throw cachet::TimeoutError("the database timed out");  // a cachet::Error, as a loader built on cachet may throw
  }), cachet::TimeoutError);
  CHECK(loads == 1);
  CHECK(cache.metrics().value(cachet::Event::redis_error) == 0);
  auto conn = server.connect();
  CHECK(conn.command({"EXISTS", cache.keys().lock(cache.key("k"))}).as_integer() == 0);  // released
}
