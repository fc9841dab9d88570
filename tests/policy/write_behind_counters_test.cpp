// Write-behind counters: increments in Redis, sums flushed to an SQLite file.
// On the cluster target (the `_cluster` CTest entry) the counts spread over 16
// partitions (docs/counters.md); the failover cases start their own clusters with replicas.
#include <cachet/policy/write_behind_counters.hpp>
#include <cachet/store/detail/queue_partitions.hpp>
#include <cachet/testing/redis_cluster.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>
#include <support/sqlite_db.hpp>
#include <support/stopped.hpp>

#include <algorithm>
#include <array>
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

// A writer's exception counts as write_error only, even a cachet::Error; a
// partition whose hand-over fails in Redis (here its flushing key made a
// string: WRONGTYPE) counts one redis_error, in the flush of the partition
// that the periodic flusher and flush() both run.
TEST_CASE("counters: a flush counts redis_error once per partition Redis failed, a writer's error only as write_error") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const auto writer = [](std::uint64_t, std::span<const cachet::CounterDelta>) {
    throw cachet::Error("the database refused it");
  };
  cachet::WriteBehindCounters<decltype(writer)> views(pool, options("counters-errors", 0ms), writer);
  views.increment("a", 1);
  CHECK_THROWS_AS(views.flush(), cachet::Error);
  CHECK(views.metrics().value(Event::write_error) == 1);
  CHECK(views.metrics().value(Event::redis_error) == 0);
  {
    cachet::CountersOptions o = options("counters-errors-periodic", 1ms);
    o.retry = {.initial = 1ms, .max = 1ms};
    cachet::WriteBehindCounters<decltype(writer)> periodic(pool, o, writer);  // takes a's batch, left over
    // A second failure counted means the first flush's counting is done.
    REQUIRE(cachet::test::eventually([&] { return periodic.metrics().value(Event::write_error) >= 2; }, 30s));
    CHECK(periodic.metrics().value(Event::redis_error) == 0);
  }

  const cachet::RedisCounterQueue layout(cachet::RedisStore(pool), "t:wb:views:counts", 0);
  const std::size_t n = layout.partitions();  // 16 on a cluster
  auto redis = server.connect();
  for (std::size_t p = 0; p < n; ++p)
    redis.command({"SET", cachet::detail::partition_key(layout.key(), p, n) + ":flushing", "not a hash"});
  CHECK_THROWS_AS(views.flush(), cachet::ReplyError);
  CHECK(views.metrics().value(Event::redis_error) == n);
  CHECK(views.metrics().value(Event::write_error) == 1);
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

namespace {

// What a failover case saw: per id, the increments acknowledged and what was
// counted after the promotion; the ids whose partitions the dead master served,
// and their increments acknowledged or unconfirmed (ReplicationError) while
// that master's replica was cut off; and any other cachet::Error an increment
// threw (none is expected: the threads stop before the kill).
struct FailoverRun {
  std::map<std::string, std::int64_t> acked, counted;
  std::vector<std::string> dead_master_ids;
  long cut_acked = 0, cut_unconfirmed = 0, unexpected = 0;
};

constexpr int failover_threads = 4, failover_ids = 16;

// A cluster of its own (a replica per master); the master that dies serves c0's
// partition, and with it the partitions of on_master's ids.
struct FailoverTopology {
  cachet::testing::RedisCluster cluster{{.replicas_per_master = 1}};
  int slot = slot_of("c0");
  int master = cluster.master_of(slot);
  int replica = cluster.replicas_of(master).at(0);
  std::array<bool, failover_ids> on_master = dies_with_master();  // c<i>'s partition is on `master`

  int slot_of(const std::string& id) {
    const std::size_t partition = cachet::detail::partition_of(id, 16);
    return cluster.slot_of(cachet::detail::partition_key("t:wb:views:counts", partition, 16));
  }
  std::array<bool, failover_ids> dies_with_master() {
    std::array<bool, failover_ids> on{};
    for (int i = 0; i < failover_ids; ++i) on[i] = cluster.master_of(slot_of("c" + std::to_string(i))) == master;
    return on;
  }
};

struct NoSums {
  void operator()(std::uint64_t, std::span<const cachet::CounterDelta>) const {}
};
using FailoverCounters = cachet::WriteBehindCounters<NoSums>;

// What the incrementing threads share with the case.
struct Incrementing {
  std::atomic<bool> cut{false}, done{false};
  std::atomic<long> master_acked{0}, cut_acked{0}, cut_unconfirmed{0}, unexpected{0};
  std::vector<std::map<std::string, std::int64_t>> acked{failover_threads};  // per thread
};

// Thread `w`: increments c0..c15 in turn until `done`.
void increment_until_done(FailoverCounters& views, const FailoverTopology& at, Incrementing& run, int w) {
  for (int i = 0; !run.done; ++i) {
    const std::string id = "c" + std::to_string(i % failover_ids);
    const bool dies = at.on_master[static_cast<std::size_t>(i % failover_ids)];
    const bool cut_off = run.cut && dies;  // read before the increment starts
    try {
      views.increment(id);
      ++run.acked[static_cast<std::size_t>(w)][id];
      if (dies) ++run.master_acked;
      if (cut_off) ++run.cut_acked;
    } catch (const cachet::ReplicationError&) {  // on the master, not acknowledged
      if (cut_off) ++run.cut_unconfirmed;
    } catch (const cachet::Error&) {  // not acknowledged either; checked by the case
      ++run.unexpected;
      std::this_thread::sleep_for(5ms);  // a back-off, not a wait for anything
    }
  }
}

// The replica of the master that dies is SIGSTOPped and its link cut (CLIENT
// KILL on the master; stopped, it cannot reconnect), so it misses every write
// from then on, even as bytes in socket buffers; increments go on until that
// master's ids have seen some. Then the threads stop and the master is
// SIGKILLed; the replica resumes when this returns.
void cut_off_replica(FailoverTopology& at, Incrementing& run, std::vector<cachet::test::Thread>& incrementers) {
  const cachet::test::Stopped paused({at.cluster.node_at(at.replica).pid()});
  cachet::Connection admin = at.cluster.node_at(at.master).connect();
  admin.command({"CLIENT", "KILL", "TYPE", "replica"});
  REQUIRE(cachet::test::eventually([&] {
    const cachet::Reply info = admin.command({"INFO", "replication"});
    return info.as_string().find("connected_slaves:0") != std::string_view::npos;
  }, 30s));
  run.cut = true;
  REQUIRE(cachet::test::eventually([&] { return run.cut_acked + run.cut_unconfirmed >= 20; }, 30s));
  run.done = true;
  for (auto& t : incrementers) t.join();
  at.cluster.node_at(at.master).kill();
}

// The run's counts, read after the promotion.
FailoverRun tally(FailoverCounters& views, const FailoverTopology& at, const Incrementing& run) {
  FailoverRun r;
  for (const auto& per_thread : run.acked)
    for (const auto& [id, n] : per_thread) r.acked[id] += n;
  for (const auto& [id, n] : r.acked) r.counted[id] = views.pending(id);
  for (int i = 0; i < failover_ids; ++i)
    if (at.on_master[static_cast<std::size_t>(i)]) r.dead_master_ids.push_back("c" + std::to_string(i));
  r.cut_acked = run.cut_acked;
  r.cut_unconfirmed = run.cut_unconfirmed;
  r.unexpected = run.unexpected;
  return r;
}

// 4 threads increment 16 ids with `replication` while the replica of c0's
// master is cut off (cut_off_replica); then that master dies and its replica,
// resumed, is promoted.
FailoverRun fail_over_a_cut_off_replica(std::string label, cachet::Replication replication) {
  FailoverTopology at;
  cachet::Pool pool(at.cluster.client_options(), {.size = 4, .wait_timeout = 5s});
  cachet::CountersOptions o = options(std::move(label), 0ms);
  o.replication = replication;
  FailoverCounters views(pool, o, NoSums{});
  Incrementing run;
  std::vector<cachet::test::Thread> incrementers;
  for (int t = 0; t < failover_threads; ++t)
    incrementers.emplace_back([&](int w) { increment_until_done(views, at, run, w); }, t);
  cachet::test::RaiseOnExit done_at_exit(run.done);
  REQUIRE(cachet::test::eventually([&] { return run.master_acked > 50; }, 30s));
  cut_off_replica(at, run, incrementers);
  at.cluster.take_over(at.replica);
  REQUIRE(at.cluster.wait_for_new_master(at.slot, at.master, 60s) == at.replica);
  return tally(views, at, run);
}

}  // namespace

// With replicas = 1 no increment is acknowledged while the replica is cut off
// (each throws ReplicationError), so none of those acknowledged is lost.
TEST_CASE("on a cluster an increment acknowledged with replicas = 1 survives a SIGKILL of its master and the promotion of its cut-off replica", "[cluster-only]") {
  const FailoverRun run = fail_over_a_cut_off_replica("counters-failover", {.replicas = 1, .timeout = 100ms});
  CHECK(run.unexpected == 0);
  CHECK(run.cut_acked == 0);
  CHECK(run.cut_unconfirmed > 0);
  REQUIRE_FALSE(run.dead_master_ids.empty());
  int lost = 0;
  for (const auto& [id, n] : run.acked) {
    const std::int64_t counted = run.counted.at(id);  // more when an unconfirmed increment reached the replica too
    if (counted < n) {
      UNSCOPED_INFO(id << ": " << counted << " counted of " << n << " acknowledged");
      ++lost;
    }
  }
  CHECK(lost == 0);
}

// The control: the same failover with replicas = 0 loses the increments
// acknowledged while the replica was cut off, so the case above can fail.
TEST_CASE("on a cluster an increment acknowledged with replicas = 0 is lost when its master dies before its replica has it", "[cluster-only]") {
  const FailoverRun run = fail_over_a_cut_off_replica("counters-failover-off", {});
  CHECK(run.unexpected == 0);
  CHECK(run.cut_unconfirmed == 0);
  REQUIRE(run.cut_acked > 0);
  std::int64_t lost = 0;
  for (const std::string& id : run.dead_master_ids) lost += run.acked.at(id) - run.counted.at(id);
  CHECK(lost >= run.cut_acked);  // and more if increments started before the cut reached the master after it
  for (const auto& [id, n] : run.acked)
    if (std::find(run.dead_master_ids.begin(), run.dead_master_ids.end(), id) == run.dead_master_ids.end())
      CHECK(run.counted.at(id) >= n);  // the other masters' partitions lost nothing
}
