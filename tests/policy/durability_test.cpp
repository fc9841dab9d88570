// Replicated durability (Replication, WAIT) against real masters and replicas:
// each replicated write is on the replica of its key's master when it returns;
// with the replicas stopped (SIGSTOP) it throws ReplicationError after about its
// timeout; and replicas = 0 sends no WAIT at all. On one server a case starts a
// master and its replica; on the cluster target (the `_cluster` CTest entry) the
// cases share one cluster with a replica per master (the shared test cluster has
// none), each write WAITed for on the master that holds its key.
#include <cachet/codec/string.hpp>
#include <cachet/detail/hash_slot.hpp>
#include <cachet/guard/redis_lock_guard.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/write_behind.hpp>
#include <cachet/policy/write_behind_counters.hpp>
#include <cachet/policy/write_through.hpp>
#include <cachet/store/counter_queue.hpp>
#include <cachet/store/memory_store.hpp>
#include <cachet/store/redis_lock.hpp>
#include <cachet/store/replication.hpp>
#include <cachet/store/tiered_store.hpp>
#include <cachet/store/value_store.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>
#include <support/stopped.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::Event;
using cachet::Replication;
using cachet::ReplicationError;

namespace {

constexpr Replication one_replica{.replicas = 1, .timeout = 300ms};

// The cluster target's cases: 3 masters with a replica each, started once for the run.
cachet::testing::RedisCluster& replicated_cluster() {
  static cachet::testing::RedisCluster cluster({.replicas_per_master = 1});
  return cluster;
}

// A master (the one server, or a cluster master) and its replica.
struct Shard {
  int first_slot = 0, last_slot = 16383;
  cachet::Connection master, replica;  // admin connections; the replica's READONLY on a cluster
  pid_t replica_pid = 0;
  std::string probe;  // a key in the master's slots
};

// One server's master and its replica, on loopback TCP.
struct Pair {
  cachet::testing::RedisServer master{{.tcp = true, .config = {"repl-diskless-sync-delay 0"}}};
  cachet::testing::RedisServer replica{
      {.tcp = true, .config = {"replicaof 127.0.0.1 " + std::to_string(master.port())}}};
};

// Where a case's replicated writes go, in sync and acking before use: one master
// and its replica on loopback TCP (a case's own), or the replicated cluster, emptied.
class Replicated {
 public:
  Replicated() {
    if (cachet::test::on_cluster()) from_cluster();
    else from_pair();
    for (Shard& s : shards_) {
      REQUIRE(cachet::test::eventually(
          [&] {
            const std::string info = s.master.command({"INFO", "replication"}).as_string();
            return info.find("state=online") != std::string::npos;
          },
          60s));
    }
    wait_until_acking();
    for (Shard& s : shards_) s.master.command({"CONFIG", "RESETSTAT"});
  }

  // What a Pool takes: the server, or the cluster's masters as seeds (a stopped
  // replica as a seed would hang a pool's first connection).
  const cachet::ConnectionOptions& connection_options() const { return options_; }

  // Online (or resumed) is not yet acking: a first write's WAIT can still time
  // out. Wait until one is confirmed on every master (leaves WAIT calls in the stats).
  void wait_until_acking() {
    for (Shard& s : shards_) {
      REQUIRE(cachet::test::eventually(
          [&] {
            s.master.command({"SET", s.probe, "1"});
            return s.master.command({"WAIT", 1, 1000}).as_integer() == 1;
          },
          60s));
      s.master.command({"DEL", s.probe});
      REQUIRE(s.master.command({"WAIT", 1, 10'000}).as_integer() == 1);
    }
  }

  // `args` (a command on `key`) on the master that holds `key`, or on its replica.
  cachet::Reply on_master(const std::string& key, std::initializer_list<cachet::Arg> args) {
    return shard_of(key).master.command(args);
  }
  cachet::Reply on_replica(const std::string& key, std::initializer_list<cachet::Arg> args) {
    return shard_of(key).replica.command(args);
  }
  std::optional<std::string> on_master(const std::string& key) {
    return on_master(key, {"GET", key}).as_optional_string();
  }
  std::optional<std::string> on_replica(const std::string& key) {
    return on_replica(key, {"GET", key}).as_optional_string();
  }

  // WAITs run by every master since the case began.
  long long wait_calls() {
    long long n = 0;
    for (Shard& s : shards_) n += cachet::test::command_calls(s.master, "wait");
    return n;
  }
  // How many times the master that holds `key` ran `command` (lower case; a
  // script's calls included) since the last reset_stats().
  long long calls_on_master(const std::string& key, const std::string& command) {
    return cachet::test::command_calls(shard_of(key).master, command);
  }
  // Keys matching `pattern` on every master (SCAN, as cachet itself never sends KEYS).
  std::size_t keys(const std::string& pattern) {
    std::size_t n = 0;
    for (Shard& s : shards_) {
      std::string cursor = "0";
      do {
        const cachet::Reply page = s.master.command({"SCAN", cursor, "MATCH", pattern, "COUNT", 1000});
        cursor = std::string(page[0].as_string());
        n += page[1].size();
      } while (cursor != "0");
    }
    return n;
  }
  void reset_stats() {
    for (Shard& s : shards_) s.master.command({"CONFIG", "RESETSTAT"});
  }
  // `args` on every node, masters and replicas.
  void on_every_node(std::initializer_list<cachet::Arg> args) {
    for (Shard& s : shards_) s.master.command(args), s.replica.command(args);
  }
  std::vector<pid_t> replica_pids() const {
    std::vector<pid_t> pids;
    for (const Shard& s : shards_) pids.push_back(s.replica_pid);
    return pids;
  }

 private:
  void from_pair() {
    pair_.emplace();
    shards_.push_back({0, 16383, pair_->master.connect(), pair_->replica.connect(), pair_->replica.pid(), "probe"});
    options_ = pair_->master.connection_options();
  }

  void from_cluster() {
    cachet::testing::RedisCluster& cluster = replicated_cluster();
    cachet::Connection admin = cluster.node_at(cluster.master_ports().front()).connect();
    const cachet::Reply slots = slots_with_replicas(admin);
    for (std::size_t i = 0; i < slots.size(); ++i) {  // [first, last, [host, port, id], replicas...]
      const cachet::ReplyView r = slots[i];
      const int port = static_cast<int>(r[2][1].as_integer());
      const int replica = static_cast<int>(r[3][1].as_integer());
      Shard s{static_cast<int>(r[0].as_integer()), static_cast<int>(r[1].as_integer()),
              cluster.node_at(port).connect(), cluster.node_at(replica).connect(), cluster.node_at(replica).pid(), {}};
      s.replica.command({"READONLY"});
      s.master.command({"FLUSHALL"});
      options_.cluster.seeds.push_back("127.0.0.1:" + std::to_string(port));
      shards_.push_back(std::move(s));
    }
    for (Shard& s : shards_)
      for (int i = 0; s.probe.empty(); ++i)
        if (&shard_of("probe" + std::to_string(i)) == &s) s.probe = "probe" + std::to_string(i);
  }

  // CLUSTER SLOTS leaves out a replica flagged FAIL (an earlier case kept it
  // stopped past the node timeout): polled until every range lists one again.
  static cachet::Reply slots_with_replicas(cachet::Connection& admin) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;; std::this_thread::sleep_for(10ms)) {
      cachet::Reply slots = admin.command({"CLUSTER", "SLOTS"});
      bool listed = true;
      for (std::size_t i = 0; i < slots.size(); ++i) listed = listed && slots[i].size() > 3;
      if (listed) return slots;
      REQUIRE(std::chrono::steady_clock::now() < deadline);
    }
  }

  Shard& shard_of(const std::string& key) {
    const int slot = cachet::detail::hash_slot(key);
    for (Shard& s : shards_)
      if (s.first_slot <= slot && slot <= s.last_slot) return s;
    throw std::logic_error("no shard serves slot " + std::to_string(slot));
  }

  std::optional<Pair> pair_;
  std::vector<Shard> shards_;
  cachet::ConnectionOptions options_;
};

using cachet::test::Stopped;

// Runs `op`, which must return after about one_replica's timeout (WAIT waits
// all of it) and well within a generous bound.
template <class Op>
void after_timeout(Op op) {
  const auto start = std::chrono::steady_clock::now();
  op();
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= one_replica.timeout - 20ms);
  CHECK(took < one_replica.timeout + 5s);
}

// Runs `op`, which must throw ReplicationError (0 acked of 1 wanted) after about its timeout.
template <class Op>
void throws_after_timeout(Op op) {
  after_timeout([&] {
    try {
      op();
      FAIL("no ReplicationError");
    } catch (const ReplicationError& e) {
      CHECK(e.acked() == 0);
      CHECK(e.wanted() == 1);
      CHECK(std::string(e.what()).find("only 0 of 1 replicas") != std::string::npos);
    }
  });
}

cachet::CacheOptions options(std::string label) {
  cachet::CacheOptions o;
  o.ns = "t";
  o.name = "item";
  o.metrics_label = std::move(label);
  o.keys.hash_tag = cachet::HashTag::ns;
  o.ttl = cachet::TtlPolicy({.fresh = 1min, .jitter = 0});
  return o;
}

using StringCache = cachet::CacheAside<std::string, cachet::StringCodec>;

struct NoDatabase {
  void operator()(std::span<const cachet::PendingWrite<std::string>>) const {}
};

cachet::WriteBehindOptions queue_only(Replication r) {
  cachet::WriteBehindOptions o;
  o.flusher = false;
  o.replication = r;
  return o;
}

}  // namespace

TEST_CASE("write-behind with replicas = 1: the queued write and its cache entry are on the replica when write returns") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());
  StringCache entries(cachet::RedisStore(pool), options("dur-wb"));
  auto writes = cachet::write_behind(entries, NoDatabase{}, queue_only(one_replica));
  for (int i = 0; i < 20; ++i) writes.write(std::to_string(i), "v" + std::to_string(i));
  CHECK(pair.on_replica(writes.stream(), {"XLEN", writes.stream()}).as_integer() == 20);
  CHECK(pair.on_replica(entries.key("19")) == pair.on_master(entries.key("19")));
  CHECK(pair.wait_calls() == 20);  // one WAIT per write, in the write's round trip
}

TEST_CASE("write-behind with the replica stopped: write throws ReplicationError after its timeout, the entry queued on the master") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());
  StringCache entries(cachet::RedisStore(pool), options("dur-wb-stopped"));
  auto writes = cachet::write_behind(entries, NoDatabase{}, queue_only(one_replica));
  writes.write("1", "v1");
  {
    const Stopped stopped(pair.replica_pids());
    throws_after_timeout([&] { writes.write("2", "v2"); });
  }
  CHECK(pair.on_master(writes.stream(), {"XLEN", writes.stream()}).as_integer() == 2);
  CHECK(entries.metrics().value(Event::redis_error) == 1);
  pair.wait_until_acking();               // resumed is not yet acking
  CHECK_NOTHROW(writes.write("3", "v3"));  // the replica back: waited for again
}

TEST_CASE("replicas = 0 sends no WAIT") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());
  StringCache entries(cachet::RedisStore(pool), options("dur-off"));
  auto writes = cachet::write_behind(entries, NoDatabase{}, queue_only({}));
  pair.reset_stats();
  writes.write("1", "v1");
  CHECK(pair.on_master(writes.stream(), {"XLEN", writes.stream()}).as_integer() == 1);
  CHECK(pair.wait_calls() == 0);
}

TEST_CASE("a replication timeout that cannot work is refused when the policy is made") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());  // command_timeout 1 s
  StringCache entries(cachet::RedisStore(pool), options("dur-bad"));
  CHECK_THROWS_AS(cachet::write_behind(entries, NoDatabase{}, queue_only({.replicas = 1, .timeout = 0ms})),
                  std::invalid_argument);
  CHECK_THROWS_AS(cachet::write_behind(entries, NoDatabase{}, queue_only({.replicas = 1, .timeout = 1s})),
                  std::invalid_argument);
  CHECK_THROWS_AS(cachet::write_behind(entries, NoDatabase{}, queue_only({.replicas = -1})), std::invalid_argument);
  const auto no_sums = [](std::uint64_t, std::span<const cachet::CounterDelta>) {};
  CHECK_THROWS_AS(cachet::WriteBehindCounters(pool, {.replication = {.replicas = 1, .timeout = 1s}}, no_sums),
                  std::invalid_argument);
}

TEST_CASE("write-behind counters with replicas = 1: an increment is on the replica when it returns, a batch written only once its hand-over is") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());
  std::int64_t total = 0;
  int batches = 0;
  const auto sums = [&](std::uint64_t, std::span<const cachet::CounterDelta> deltas) {
    ++batches;
    for (const auto& d : deltas) total += d.delta;
  };
  cachet::WriteBehindCounters views(
      pool, {.ns = "t", .queue = "views", .interval = 0ms, .metrics_label = "dur-counters", .replication = one_replica},
      sums);
  const cachet::RedisCounterQueue layout(cachet::RedisStore(pool), "t:wb:views:counts", 0);
  const std::size_t n = layout.partitions();  // 16 on a cluster
  const std::string hash = cachet::detail::partition_key(layout.key(), cachet::detail::partition_of("a", n), n);
  CHECK(views.increment("a", 2) == 2);
  CHECK(pair.on_replica(hash, {"HGET", hash, "a"}).as_optional_string() == "2");
  CHECK(pair.wait_calls() == 1);  // in the increment's round trip
  {
    const Stopped stopped(pair.replica_pids());
    throws_after_timeout([&] { views.increment("a", 3); });  // counted on the master all the same
    CHECK(views.metrics().value(Event::redis_error) == 1);  // as a write-behind write's
    throws_after_timeout([&] { views.flush(); });            // handed over on the master, not written
    CHECK(batches == 0);
  }
  CHECK(views.pending("a") == 5);
  pair.wait_until_acking();  // resumed is not yet acking
  CHECK(views.flush() == 1);  // the batch left over, now on the replica
  CHECK(batches == 1);
  CHECK(total == 5);
}

// A flusher on a connection that wrote nothing yet (another pool, another
// queue) picking up a left-over batch: its WAIT must cover the batch's hand-over,
// which the script writes again for it (one SET of the batch number). Without
// that, from Redis 7.2 (a client's WAIT offset moves only when its command
// propagated) WAIT would return at once; Redis 7.0 moves it after every command,
// so there only the count of SETs on the partition's master tells.
TEST_CASE("a left-over counters batch handed over through another pool waits for the replicas all the same") {
  Replicated pair;
  cachet::Pool first(pair.connection_options()), second(pair.connection_options());
  cachet::RedisCounterQueue a(cachet::RedisStore(first), "t:wb:views:counts", 0);
  cachet::RedisCounterQueue b(cachet::RedisStore(second), a.key(), 0);
  const std::size_t partition = cachet::detail::partition_of("a", a.partitions());
  const std::string hash = cachet::detail::partition_key(a.key(), partition, a.partitions());
  CHECK(a.increment("a", 4) == 4);
  {
    const Stopped stopped(pair.replica_pids());
    throws_after_timeout([&] { a.hand_over(partition, one_replica); });  // renamed on the master only
    pair.reset_stats();
    throws_after_timeout([&] { b.hand_over(partition, one_replica); });  // the same batch, left over
    CHECK(pair.calls_on_master(hash, "set") == 1);  // the batch number written again, for b's WAIT
  }
  pair.wait_until_acking();  // resumed is not yet acking
  const std::optional<cachet::CounterBatch> batch = b.hand_over(partition, one_replica);
  REQUIRE(batch.has_value());
  CHECK(batch->left_over);
  REQUIRE(batch->sums.size() == 1);
  CHECK(batch->sums[0].delta == 4);
}

TEST_CASE("RedisStore::write and write_many with replicas = 1: on the replica when they return, one WAIT each") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());
  cachet::RedisStore store(pool);
  const std::vector<std::string> tags{"{d}:tag:a"};
  CHECK(store.write({.key = "{d}:plain", .bytes = "p", .ttl = 1min, .replication = one_replica}) ==
        cachet::WriteResult::written);
  CHECK(pair.on_replica("{d}:plain") == "p");
  CHECK(store.write({.key = "{d}:tagged", .bytes = "t", .ttl = 1min, .tag_sets = tags, .replication = one_replica}) ==
        cachet::WriteResult::written);
  CHECK(pair.on_replica("{d}:tagged") == "t");
  CHECK(pair.on_replica("{d}:tag:a", {"SISMEMBER", "{d}:tag:a", "{d}:tagged"}).as_integer() == 1);
  cachet::InvalidationTargets gone;
  gone.keys = {"{d}:plain"};
  CHECK(store.write({.key = "{d}:k", .bytes = "k", .ttl = 1min, .invalidation = &gone, .replication = one_replica}) ==
        cachet::WriteResult::written);
  CHECK(pair.on_replica("{d}:k") == "k");
  CHECK(pair.on_replica("{d}:plain") == std::nullopt);
  const std::vector<cachet::StoreWrite> batch{{.key = "{d}:b1", .bytes = "1", .ttl = 1min, .replication = one_replica},
                                              {.key = "{d}:b2", .bytes = "2", .ttl = 1min, .tag_sets = tags}};
  CHECK(store.write_many(batch).failed == 0);
  CHECK(pair.on_replica("{d}:b1") == "1");
  CHECK(pair.on_replica("{d}:b2") == "2");
  // On a cluster write_many pipelines per node, a WAIT after each write of a batch that asks (b2's too).
  CHECK(pair.wait_calls() == (cachet::test::on_cluster() ? 5 : 4));
}

TEST_CASE("RedisStore::write with the replica stopped: ReplicationError after its timeout, the write on the master") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());
  cachet::RedisStore store(pool);
  const std::vector<std::string> tags{"{d}:tag:a"};
  cachet::InvalidationTargets gone;
  gone.keys = {"{d}:x"};
  const Stopped stopped(pair.replica_pids());
  throws_after_timeout(
      [&] { store.write({.key = "{d}:plain", .bytes = "p", .ttl = 1min, .replication = one_replica}); });
  throws_after_timeout([&] {
    store.write({.key = "{d}:tagged", .bytes = "t", .ttl = 1min, .tag_sets = tags, .replication = one_replica});
  });
  throws_after_timeout([&] {
    store.write({.key = "{d}:k", .bytes = "k", .ttl = 1min, .invalidation = &gone, .replication = one_replica});
  });
  const std::vector<cachet::StoreWrite> batch{{.key = "{d}:b1", .bytes = "1", .ttl = 1min, .replication = one_replica}};
  throws_after_timeout([&] { store.write_many(batch); });
  for (const char* key : {"{d}:plain", "{d}:tagged", "{d}:k", "{d}:b1"}) CHECK(pair.on_master(key).has_value());
  // The connection stays usable: every reply was read.
  CHECK(store.get("{d}:plain") == "p");
}

TEST_CASE("TieredStore passes a replicated write to its Redis tier") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());
  cachet::TieredStore<cachet::ValueStore<std::string>> store(cachet::ValueStore<std::string>{}, cachet::RedisStore(pool));
  CHECK(store.write({.key = "{d}:k", .bytes = "v", .ttl = 1min, .replication = one_replica}) ==
        cachet::WriteResult::written);
  CHECK(pair.on_replica("{d}:k") == "v");
  CHECK(pair.wait_calls() == 1);
  const Stopped stopped(pair.replica_pids());
  throws_after_timeout([&] { store.write({.key = "{d}:k", .bytes = "w", .ttl = 1min, .replication = one_replica}); });
  CHECK(store.get("{d}:k") == "w");  // on the master, and out of the first tier
}

TEST_CASE("replicas = 0 sends no WAIT from the store, the lock or write-through") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());
  cachet::RedisStore store(pool);
  const std::vector<std::string> tags{"{d}:tag:a"};
  store.write({.key = "{d}:plain", .bytes = "p", .ttl = 1min});
  store.write({.key = "{d}:tagged", .bytes = "t", .ttl = 1min, .tag_sets = tags});
  cachet::RedisLock lock(store, "lock");
  CHECK(lock.try_acquire());
  StringCache entries(store, options("dur-off-wt"));
  auto cache = cachet::write_through(entries, [](std::string_view, const std::string&) {});
  CHECK(cache.put("1", "v1") == cachet::WriteOutcome::cached);
  CHECK(pair.wait_calls() == 0);
}

TEST_CASE("MemoryStore refuses a replicated write") {
  cachet::MemoryStore store;
  CHECK_THROWS_AS(store.write({.key = "k", .bytes = "v", .ttl = 1min, .replication = one_replica}),
                  cachet::UnsupportedWriteError);
  CHECK(store.get("k") == std::nullopt);
}

TEST_CASE("write-through with replicas = 1: the cached value is on the replica when put returns") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());
  StringCache entries(cachet::RedisStore(pool), options("dur-wt"));
  auto cache = cachet::write_through(entries, [](std::string_view, const std::string&) { return 7; },
                                     {.replication = one_replica});
  CHECK(cache.put("1", "v1") == cachet::WriteOutcome::cached);
  CHECK(pair.on_replica(cache.key("1")) == pair.on_master(cache.key("1")));
  CHECK(pair.on_replica(cache.key("1")).has_value());
  CHECK(pair.wait_calls() == 1);
}

TEST_CASE("write-through with the replica stopped: the database write stands, the cache write reported unreplicated") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());
  cachet::CacheOptions o = options("dur-wt-stopped");
  o.breaker.failure_threshold = 1;  // one outage-like failure would open it
  StringCache entries(cachet::RedisStore(pool), o);
  std::vector<std::string> database, reported;
  cachet::WriteThroughOptions wo{.replication = one_replica};
  wo.on_unrepaired = [&](const cachet::UnrepairedWrite& u) {
    try {
      std::rethrow_exception(u.error);
    } catch (const ReplicationError& e) {
      reported.push_back(std::string(u.key) + ": " + std::to_string(e.acked()) + "/" + std::to_string(e.wanted()));
    } catch (...) {
      reported.push_back("another error");
    }
  };
  auto cache = cachet::write_through(
      entries, [&](std::string_view, const std::string& v) { database.push_back(v); }, wo);
  {
    const Stopped stopped(pair.replica_pids());
    cachet::WriteOutcome outcome{};
    after_timeout([&] { outcome = cache.put("1", "v1"); });  // no throw: the database has it
    CHECK(outcome == cachet::WriteOutcome::unreplicated);
  }
  CHECK(database == std::vector<std::string>{"v1"});
  CHECK(reported == std::vector<std::string>{cache.key("1") + ": 0/1"});
  CHECK(cache.get("1") == "v1");  // left as written on the master
  CHECK(entries.metrics().value(Event::cache_write_error) == 1);
  CHECK(entries.metrics().value(Event::write_unrepaired) == 1);
  pair.wait_until_acking();                                     // resumed is not yet acking
  CHECK(cache.put("1", "v2") == cachet::WriteOutcome::cached);  // the breaker stayed closed: not an outage
  CHECK(entries.metrics().value(Event::redis_skipped) == 0);
}

TEST_CASE("a replicated lock: held once the replica has it, released and ReplicationError when it does not") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options(), {.size = 1});
  cachet::RedisStore store(pool);
  cachet::RedisLock lock(store, "lock", {.replication = one_replica});
  REQUIRE(lock.try_acquire());
  CHECK(pair.on_replica("lock") == lock.token());
  CHECK(lock.release());
  CHECK(pair.wait_calls() == 1);

  cachet::RedisLock other(store, "lock", {.replication = one_replica});
  {
    const Stopped stopped(pair.replica_pids());
    throws_after_timeout([&] { lock.try_acquire(); });
    CHECK_FALSE(lock.held());
    CHECK(pair.on_master("lock") == std::nullopt);  // released, on the one pooled connection
  }
  pair.wait_until_acking();    // resumed is not yet acking
  CHECK(other.try_acquire());  // nobody holds it
}

TEST_CASE("the lock guard over a stopped replica: the lock is released and the caller loads, counted as a Redis error") {
  Replicated pair;
  cachet::Pool pool(pair.connection_options());
  using GuardedCache = cachet::CacheAside<std::string, cachet::StringCodec, cachet::RedisLockGuard>;
  cachet::RedisLockGuardOptions go;
  go.replication = one_replica;
  GuardedCache cache(cachet::RedisStore(pool), options("dur-guard"), {}, cachet::RedisLockGuard(pool, go));
  CHECK(cache.get_or_load("1", [](std::string_view) { return std::string("a"); }) == "a");
  CHECK(cache.metrics().value(Event::redis_error) == 0);
  const Stopped stopped(pair.replica_pids());
  int loads = 0;
  const auto start = std::chrono::steady_clock::now();
  CHECK(cache.get_or_load("2", [&](std::string_view) { return ++loads, std::string("b"); }) == "b");
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK(loads == 1);
  CHECK(cache.metrics().value(Event::redis_error) == 1);
  CHECK(pair.on_master(cache.key("2")).has_value());
  CHECK(pair.keys("*lock*") == 0);
}

// WAIT refused by the server (here an ACL user without it): the write before it
// stands, and the refusal is a ReplicationError naming the server's error.
TEST_CASE("a WAIT the server refuses: the lock is released and the error surfaces, write-through keeps its value") {
  Replicated redis;
  redis.on_every_node({"ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-wait"});
  auto co = redis.connection_options();
  co.user = "app";
  co.password = "pw";
  cachet::Pool pool(co, {.size = 1});
  cachet::RedisStore store(pool);
  const auto refused = [](const ReplicationError& e) {
    return std::string(e.what()).find("WAIT was refused (NOPERM") != std::string::npos && e.acked() == 0;
  };

  cachet::RedisLock lock(store, "lock", {.replication = one_replica});
  bool surfaced = false;
  try {
    lock.try_acquire();
  } catch (const ReplicationError& e) {
    surfaced = refused(e);
  }
  CHECK(surfaced);
  CHECK_FALSE(lock.held());
  cachet::RedisLock other(store, "lock", {.lease = 30s});
  CHECK(other.try_acquire());  // released at once, not left to the lease

  StringCache entries(store, options("dur-wt-refused"));
  bool reported = false;
  cachet::WriteThroughOptions wo{.replication = one_replica};
  wo.on_unrepaired = [&](const cachet::UnrepairedWrite& u) {
    try {
      std::rethrow_exception(u.error);
    } catch (const ReplicationError& e) {
      reported = refused(e);
    } catch (...) {
    }
  };
  auto cache = cachet::write_through(entries, [](std::string_view, const std::string&) {}, wo);
  CHECK(cache.put("1", "v1") == cachet::WriteOutcome::unreplicated);
  CHECK(reported);
  CHECK(cache.get("1") == "v1");  // the value written stays: the fallback delete did not run
}

namespace {

// The id of the client CLIENT LIST (`clients`) shows blocked in WAIT; "" if none.
std::string blocked_in_wait(const std::string& clients) {
  const auto field = [](const std::string& line, const std::string& name) {  // line: " id=5 addr=... flags=b ..."
    const std::string tag = " " + name + "=";
    const auto from = line.find(tag);
    if (from == std::string::npos) return std::string();
    const auto value = from + tag.size();
    return line.substr(value, line.find(' ', value) - value);
  };
  for (std::size_t at = 0, end; at < clients.size(); at = end + 1) {
    end = std::min(clients.find('\n', at), clients.size());
    const std::string line = " " + clients.substr(at, end - at);
    if (field(line, "flags").find('b') != std::string::npos && field(line, "cmd") == "wait") return field(line, "id");
  }
  return "";
}

}  // namespace

// The connection lost after the SET applied, while WAIT waits (killed here by
// the test): the lock is released on the connection's next one, not left to its
// lease, and the connection's error surfaces. WAIT's timeout is long so that
// the kill lands while it waits; a WAIT reply of another type, the other path
// there, is one a real server never gives.
TEST_CASE("a replicated lock whose connection is lost during its WAIT is released and the error surfaces") {
  Replicated pair;
  auto co = pair.connection_options();
  co.command_timeout = 60s;
  cachet::Pool pool(co, {.size = 1});
  cachet::RedisStore store(pool);
  cachet::RedisLock lock(store, "lock", {.lease = 60s, .replication = {.replicas = 1, .timeout = 30s}});
  std::string thrown;
  {
    const Stopped stopped(pair.replica_pids());
    cachet::test::Thread acquiring([&] {
      try {
        lock.try_acquire();
        thrown = "nothing";
      } catch (const cachet::ConnectionError&) {
        thrown = "ConnectionError";
      } catch (const cachet::Error& e) {
        thrown = e.what();
      }
    });
    std::string id;  // the client blocked in WAIT, its SET applied before it
    REQUIRE(cachet::test::eventually([&] {
      id = blocked_in_wait(pair.on_master("lock", {"CLIENT", "LIST"}).as_string());
      return !id.empty();
    }, 30s));
    pair.on_master("lock", {"CLIENT", "KILL", "ID", id});
    acquiring.join();
  }
  CHECK(thrown == "ConnectionError");
  CHECK_FALSE(lock.held());
  CHECK(pair.on_master("lock") == std::nullopt);  // released, not left for its 60 s lease
}
