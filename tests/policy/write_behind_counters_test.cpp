// Write-behind counters: increments in Redis, sums flushed to an SQLite file.
// On the cluster target (the `_cluster` CTest entry) the counts spread over 16
// partitions (docs/counters.md); the failover case starts its own cluster with replicas.
#include <cachet/policy/write_behind_counters.hpp>
#include <cachet/store/detail/queue_partitions.hpp>
#include <cachet/testing/redis_cluster.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>
#include <support/sqlite_db.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::Event;
using cachet::test::TestDb;

namespace {

constexpr int increments_per_thread = cachet::test::sized(5'000, 1'000);

cachet::CountersOptions options(std::string label, std::chrono::milliseconds interval) {
  cachet::CountersOptions o;
  o.ns = "t";
  o.queue = "views";
  o.interval = interval;
  o.metrics_label = std::move(label);
  return o;
}

struct DbCounters {
  std::shared_ptr<TestDb> db;
  std::shared_ptr<std::atomic<int>> batches = std::make_shared<std::atomic<int>>(0);
  void operator()(std::uint64_t batch, std::span<const cachet::CounterDelta> sums) const {
    db->add_counts(batch, sums);
    ++*batches;
  }
};

template <class Redis>
std::string db_path(const Redis& server) {
  return TestDb::fresh(server.directory() + "/counters.sqlite");
}

}  // namespace

TEST_CASE("counters: 8 threads increment while flushes run every 50 ms, and the database totals are exact") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options(), {.size = 8, .wait_timeout = 5s});
  const std::string path = db_path(server);
  const DbCounters writer{std::make_shared<TestDb>(path)};
  cachet::WriteBehindCounters<DbCounters> views(pool, options("counters-8", 50ms), writer);
  std::vector<std::map<std::string, std::int64_t>> added(8);
  std::atomic<long> calls{0};
  const auto until = std::chrono::steady_clock::now() + 1s;  // twenty flush periods at least
  cachet::test::in_threads(8, [&](int t) {
    for (int i = 0; i < increments_per_thread || std::chrono::steady_clock::now() < until; ++i) {
      const std::string id = "p" + std::to_string((i * 31 + t) % 20);
      const std::int64_t by = 1 + i % 3;
      views.increment(id, by);
      added[static_cast<std::size_t>(t)][id] += by;
      ++calls;
    }
  });
  const int periodic = *writer.batches;
  views.flush();
  std::map<std::string, std::int64_t> expected;
  for (const auto& per_thread : added)
    for (const auto& [id, n] : per_thread) expected[id] += n;
  CHECK(TestDb(path).counters() == expected);
  CHECK(views.pending("p1") == 0);
  INFO(periodic << " flushes during the increments");
  CHECK(periodic >= 3);  // flushes ran while the increments did (fewer than 20 on a loaded machine)
  CHECK(views.metrics().value(Event::write) == static_cast<std::uint64_t>(calls));
}

TEST_CASE("counters: a flush that fails after the database took it gives the same batch again, added once") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  auto db = std::make_shared<TestDb>(path);
  std::vector<std::uint64_t> batches;
  bool fail_after_commit = true;
  auto writer = [&](std::uint64_t batch, std::span<const cachet::CounterDelta> sums) {
    batches.push_back(batch);
    db->add_counts(batch, sums);
    if (std::exchange(fail_after_commit, false)) throw std::runtime_error("crashed before the hand-back");
  };
  cachet::WriteBehindCounters<decltype(writer)> views(pool, options("counters-retry", 0ms), writer);
  views.increment("a", 5);
  CHECK_THROWS_AS(views.flush(), std::runtime_error);
  CHECK(views.pending("a") == 5);  // still in the flushing batch
  views.increment("a", 2);         // lands in a new pending hash
  CHECK(views.pending("a") == 7);
  CHECK(views.flush() == 2);  // the left-over batch, then the new one
  REQUIRE(batches.size() == 3);
  CHECK(batches[0] == batches[1]);
  CHECK(batches[2] > batches[0]);
  CHECK(TestDb(path).counters() == std::map<std::string, std::int64_t>{{"a", 7}});
  CHECK(views.metrics().value(Event::write_error) == 1);
  CHECK(views.flush() == 0);
}

TEST_CASE("counters: after Redis lost its data, new batches are not taken for ones the database applied") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  const DbCounters writer{std::make_shared<TestDb>(path)};
  cachet::WriteBehindCounters<DbCounters> views(pool, options("counters-lost", 0ms), writer);
  for (int round = 0; round < 3; ++round) {  // batches numbered before the loss
    views.increment("a", 1);
    views.flush();
  }
  server.connect().command({"FLUSHALL"});  // a restart without persistence (every master): the sequence is gone too
  views.increment("a", 10);
  CHECK(views.flush() == 1);
  CHECK(TestDb(path).counters() == std::map<std::string, std::int64_t>{{"a", 13}});  // not dropped as applied
}

// Its own cluster, with a replica per master (the shared one has none): the
// partition of one id loses its master to SIGKILL while 4 threads increment.
TEST_CASE("on a cluster an increment acknowledged with replicas = 1 survives a SIGKILL of its master and the promotion of its replica", "[cluster-only]") {
  cachet::testing::RedisCluster cluster({.replicas_per_master = 1});
  cachet::Pool pool(cluster.client_options(), {.size = 4, .wait_timeout = 5s});
  cachet::CountersOptions o = options("counters-failover", 0ms);
  o.replication = {.replicas = 1, .timeout = 100ms};  // short: the promoted master, with no replica, waits it out
  cachet::WriteBehindCounters views(pool, o, [](std::uint64_t, std::span<const cachet::CounterDelta>) {});
  constexpr int threads = 4, ids = 16;
  std::vector<std::map<std::string, std::int64_t>> acked(threads);  // per thread: increments acknowledged
  std::atomic<bool> stop{false};
  std::atomic<long> acknowledged{0};
  std::vector<cachet::test::Thread> incrementers;
  for (int t = 0; t < threads; ++t)
    incrementers.emplace_back([&](int w) {
      for (int i = 0; !stop; ++i) {
        const std::string id = "c" + std::to_string(i % ids);
        try {
          views.increment(id);
          ++acked[static_cast<std::size_t>(w)][id];
          ++acknowledged;
        } catch (const cachet::Error&) {  // the dead master, or no replica to confirm: not acknowledged
          std::this_thread::sleep_for(5ms);
        }
      }
    }, t);
  cachet::test::RaiseOnExit stopped(stop);
  REQUIRE(cachet::test::eventually([&] { return acknowledged > 200; }, 20s));
  // Kill the master of c0's partition, increments in flight.
  const std::size_t partition = cachet::detail::partition_of("c0", 16);
  const int slot = cluster.slot_of(cachet::detail::partition_key("t:wb:views:counts", partition, 16));
  const int dead = cluster.kill_master_of(slot);
  cluster.wait_for_new_master(slot, dead, 30s);
  // The other masters' partitions go on being acknowledged (the promoted one has no replica: ReplicationError).
  const long before = acknowledged;
  CHECK(cachet::test::eventually([&] { return acknowledged > before + 10; }, 30s));
  stop = true;
  for (auto& t : incrementers) t.join();
  std::map<std::string, std::int64_t> expected;
  for (const auto& per_thread : acked)
    for (const auto& [id, n] : per_thread) expected[id] += n;
  REQUIRE(expected["c0"] > 0);
  int lost = 0;
  for (const auto& [id, n] : expected) {
    const std::int64_t counted = views.pending(id);  // more when an unacknowledged increment landed too
    if (counted < n) {
      UNSCOPED_INFO(id << ": " << counted << " counted of " << n << " acknowledged");
      ++lost;
    }
  }
  CHECK(lost == 0);
}
