// Refresh-ahead: the pick rule, and a hot key that never expires across 2 processes.
#include <cachet/policy/refresh_ahead.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/policy_fixtures.hpp>
#include <support/server.hpp>

#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("refresh-ahead picks a fresh entry once less than the fraction of its fresh life is left") {
  cachet::EntryMeta meta;
  meta.created_at = cachet::EntryMeta::time_point(std::chrono::hours(1000));
  meta.fresh_until = meta.created_at + 10s;
  const cachet::RefreshAheadGuard guard;  // 20 %
  CHECK_FALSE(guard.refresh_early(meta, meta.created_at + 7999ms));
  CHECK(guard.refresh_early(meta, meta.created_at + 8001ms));
  CHECK_FALSE(guard.refresh_early(meta, meta.fresh_until));  // stale: not ahead
  const cachet::RefreshAheadGuard half({.fraction = 0.5});
  CHECK(half.refresh_early(meta, meta.created_at + 5001ms));
  meta.fresh_until = cachet::EntryMeta::time_point::max();  // plain format
  CHECK_FALSE(guard.refresh_early(meta, meta.created_at + 1s));
  CHECK_THROWS_AS(cachet::RefreshAheadGuard({.fraction = 1.5}), std::invalid_argument);
}

// RefreshAhead's stack holds a RedisLockGuard: its LockNotifier refuses a cluster until it subscribes per node.
TEST_CASE("refresh-ahead: a key read every 10 ms with a 1 s TTL never misses over 10 s, one refresh per period across 2 processes") {
  auto& server = cachet::test::clean_target();
  auto conn = server.connect();
  std::vector<pid_t> workers;
  for (int i = 0; i < 2; ++i)
    workers.push_back(cachet::test::start_policy_worker({"refresh_ahead", server.address()},
                                                        server.directory() + "/ahead-" + std::to_string(i)));
  REQUIRE(cachet::test::eventually([&] { return conn.command({"GET", "ready"}).as_optional_string() == "2"; }, 60s));
  {
    cachet::Pool pool(server.connection_options());
    cachet::test::RefreshAheadCache seed(pool, cachet::test::refresh_ahead_options(),
                                         cachet::test::CountingLoader(server.connection_options()));
    REQUIRE(seed.get("k") == "v1");
  }
  conn.command({"SET", "go", "1"});
  for (pid_t w : workers) CHECK(cachet::test::wait_exit(w) == 0);  // no read missed

  std::vector<long long> times;
  for (cachet::ReplyView t : conn.command({"LRANGE", "load_times", "0", "-1"})) times.push_back(std::stoll(std::string(t.as_string())));
  REQUIRE(times.size() >= 2);
  std::vector<long long> gaps;
  for (std::size_t i = 1; i < times.size(); ++i) gaps.push_back(times[i] - times[i - 1]);
  INFO("loads at gaps (ms) of " << Catch::Detail::stringify(gaps));
  for (long long gap : gaps) {
    CHECK(gap >= 700);  // one refresh per period: a second one would come right after the first
    CHECK(gap < 1000);  // before the entry expired
  }
  const auto periods = static_cast<std::size_t>(cachet::test::refresh_ahead_run / 1s) * 10 / 8;  // one per 0.8 s
  CHECK(times.size() >= periods - 1);
  CHECK(times.size() <= periods + 2);
}
