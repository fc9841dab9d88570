// Write-behind on a Redis Cluster: the queue partitioned over the masters, an
// id's writes in one partition, a flusher per partition reading from its
// partition's master. The cases share one cluster (3 masters, no replicas);
// the failover case starts its own, with a replica per master.
#include <cachet/codec/string.hpp>
#include <cachet/policy/write_behind.hpp>
#include <cachet/policy/write_behind_counters.hpp>
#include <cachet/store/write_queue.hpp>
#include <cachet/testing/redis_cluster.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/guard_fixtures.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using cachet::Event;
using cachet::testing::RedisCluster;
using steady = std::chrono::steady_clock;

namespace {

RedisCluster& shared_cluster() {
  static RedisCluster cluster({.replicas_per_master = 0});
  return cluster;
}

// The shared cluster, emptied, so a case sees no keys of an earlier one.
RedisCluster& clean_cluster() {
  RedisCluster& cluster = shared_cluster();
  for (int port : cluster.master_ports()) cluster.node_at(port).connect().command({"FLUSHALL"});
  return cluster;
}

// The database: the values each id was given, in the order they were applied.
struct MemoryDb {
  struct State {
    std::mutex mutex;
    std::map<std::string, std::vector<long>> applied;
  };
  std::shared_ptr<State> state = std::make_shared<State>();

  void operator()(std::span<const cachet::PendingWrite<std::string>> batch) const {
    std::lock_guard lock(state->mutex);
    for (const auto& w : batch) state->applied[w.id].push_back(std::stol(w.value));
  }
  std::map<std::string, std::vector<long>> applied() const {
    std::lock_guard lock(state->mutex);
    return state->applied;
  }
};

using Cache = cachet::test::StringCache<cachet::NoGuard>;

// A value key and its write version in the entity's slot, spread over the cluster.
cachet::CacheOptions entity_keys(std::string label) {
  cachet::CacheOptions o = cachet::test::guard_options(std::move(label));
  o.keys.hash_tag = cachet::HashTag::entity;
  return o;
}

cachet::WriteBehindOptions quick_flusher() {
  cachet::WriteBehindOptions o;
  o.max_delay = 20ms;
  o.poll = 20ms;
  o.reclaim_idle = 500ms;
  o.retry = {10ms, 200ms, 2.0, 0.2};
  return o;
}

// Writes are queued and left there: no flusher in this process.
cachet::WriteBehindOptions no_flusher() {
  cachet::WriteBehindOptions o = quick_flusher();
  o.flusher = false;
  return o;
}

std::string id_of(int thread, int key) { return "t" + std::to_string(thread) + "-k" + std::to_string(key); }

}  // namespace

TEST_CASE("on a cluster the queue has 16 partitions in their own slots, over more than one master") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options());
  Cache entries(cachet::RedisStore(pool), entity_keys("wbc-layout"));
  auto queue = cachet::write_behind(entries, MemoryDb{}, quick_flusher());
  REQUIRE(queue.partitions() == 16);
  CHECK(queue.stream() == "{t:wb:writes:p0}");
  CHECK(queue.dead_letters() == "{t:wb:writes:p0}:dead");
  std::set<std::string> masters;
  for (std::size_t p = 0; p < queue.partitions(); ++p) masters.insert(pool.cluster_master_of(queue.partition(p).stream));
  CHECK(masters.size() > 1);
  // An id's partition is its CRC16 modulo the count: the same in every process.
  CHECK(queue.partition_of("42") == cachet::detail::crc16("42") % 16);
  CHECK(cachet::RedisWriteQueue(cachet::RedisStore(pool), "t:wb:writes", 1).stream() == "t:wb:writes");
}

TEST_CASE("on a cluster 8 writer threads keep each key's order, read their writes, and flush drains every partition") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options(), {.size = 8, .wait_timeout = 5s});
  const MemoryDb db;
  Cache entries(cachet::RedisStore(pool), entity_keys("wbc-order"));
  auto queue = cachet::write_behind(entries, db, quick_flusher());
  constexpr int keys = 8, writes = cachet::test::sized(100, 30);
  std::atomic<int> misread{0};
  cachet::test::in_threads(8, [&](int t) {
    for (int i = 1; i <= writes; ++i) {
      const std::string id = id_of(t, i % keys);
      queue.write(id, std::to_string(i));
      // The write, or nothing when a flush settled it meanwhile (get() does not load): never an older value.
      if (const auto v = queue.get(id); v && *v != std::to_string(i)) ++misread;
    }
  });
  CHECK(misread == 0);
  REQUIRE(queue.flush(30s));
  CHECK(queue.queued() == 0);
  const auto applied = db.applied();
  CHECK(applied.size() == 8 * keys);
  std::set<std::size_t> partitions_used;
  for (const auto& [id, values] : applied) {
    INFO(id);
    CHECK(std::is_sorted(values.begin(), values.end()));  // each key's writes reach the database in order
    CHECK(std::adjacent_find(values.begin(), values.end()) == values.end());
    const int key = std::stoi(id.substr(id.find('k') + 1));
    CHECK(values.back() == writes - (writes - key) % keys);  // the last write of the key
    partitions_used.insert(queue.partition_of(id));
  }
  CHECK(partitions_used.size() > 8);
}

TEST_CASE("on a cluster a flusher takes over the entries another consumer left idle, in every partition") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options());
  Cache writer_cache(cachet::RedisStore(pool), entity_keys("wbc-takeover-writer"));
  auto writer = cachet::write_behind(writer_cache, MemoryDb{}, no_flusher());
  for (int i = 0; i < 64; ++i) writer.write("id" + std::to_string(i), std::to_string(i));
  // A consumer that read every partition's entries and died without settling them.
  cachet::RedisWriteQueue queue(cachet::RedisStore(pool), "t:wb:writes", 0);
  std::size_t taken = 0, partitions_taken = 0;
  for (std::size_t p = 0; p < queue.partitions(); ++p) {
    auto dead = queue.reader("cachet", "dead-flusher", 1s, p);
    const std::size_t n = dead.read_new(100, 1ms).size();
    taken += n;
    partitions_taken += n > 0 ? 1 : 0;
  }
  REQUIRE(taken == 64);
  REQUIRE(partitions_taken > 8);
  const MemoryDb db;
  Cache flusher_cache(cachet::RedisStore(pool), entity_keys("wbc-takeover-flusher"));
  auto flusher = cachet::write_behind(flusher_cache, db, quick_flusher());  // reclaim_idle 500 ms
  REQUIRE(flusher.flush(30s));
  CHECK(db.applied().size() == 64);
  CHECK(cachet::test::eventually([&] { return flusher_cache.metrics().value(Event::reclaimed) == 64; }));
}

TEST_CASE("on a cluster a flusher follows its partition to another master when the slot moves (MOVED)") {
  RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options());
  const MemoryDb db;
  Cache entries(cachet::RedisStore(pool), entity_keys("wbc-moved"));
  auto queue = cachet::write_behind(entries, db, quick_flusher());
  queue.write("42", "1");
  REQUIRE(queue.flush(30s));  // the partition's flusher reads from its master
  const std::string stream = queue.partition(queue.partition_of("42")).stream;
  const int slot = cluster.slot_of(stream), from = cluster.master_of(slot);
  int to = 0;
  for (int port : cluster.master_ports())
    if (port != from) to = port;
  cluster.move_slot(slot, to);
  queue.write("42", "2");
  REQUIRE(queue.flush(30s));
  CHECK(db.applied().at("42").back() == 2);
  CHECK(pool.cluster_master_of(stream).ends_with(":" + std::to_string(to)));
}

TEST_CASE("on a cluster write-behind counters spread over partitions and flush exact totals with unique batch numbers") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options(), {.size = 4, .wait_timeout = 5s});
  struct Sums {
    std::shared_ptr<std::mutex> mutex = std::make_shared<std::mutex>();
    std::shared_ptr<std::map<std::string, std::int64_t>> totals = std::make_shared<std::map<std::string, std::int64_t>>();
    std::shared_ptr<std::set<std::uint64_t>> batches = std::make_shared<std::set<std::uint64_t>>();
    std::shared_ptr<std::atomic<int>> repeated = std::make_shared<std::atomic<int>>(0);
    void operator()(std::uint64_t batch, std::span<const cachet::CounterDelta> sums) const {
      std::lock_guard lock(*mutex);
      if (!batches->insert(batch).second) ++*repeated;
      for (const auto& d : sums) (*totals)[d.id] += d.delta;
    }
  } sums;
  cachet::WriteBehindCounters<Sums> views(pool, {.ns = "t", .queue = "views", .interval = 0ms}, sums);
  cachet::RedisCounterQueue layout(cachet::RedisStore(pool), "t:wb:views:counts", 0);
  REQUIRE(layout.partitions() == 16);
  std::set<std::string> masters;
  for (int i = 0; i < 16; ++i) masters.insert(pool.cluster_master_of("{t:wb:views:counts:p" + std::to_string(i) + "}"));
  CHECK(masters.size() > 1);
  cachet::test::in_threads(4, [&](int t) {
    for (int i = 0; i < 200; ++i) views.increment("p" + std::to_string((i + t) % 40), 1 + t);
  });
  CHECK(views.pending("p1") == 50);  // five increments by 1 + t from each thread t
  CHECK(views.flush() == 40);
  CHECK(views.pending("p1") == 0);
  std::lock_guard lock(*sums.mutex);
  CHECK(sums.totals->size() == 40);
  CHECK((*sums.totals)["p1"] == 50);
  CHECK(sums.batches->size() > 8);  // one batch per partition that held counts
  CHECK(*sums.repeated == 0);
}

TEST_CASE("on a cluster a tagged write-behind write is stamped: served, stale after invalidate_tags, flushed") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options());
  Cache entries(cachet::RedisStore(pool), entity_keys("wbc-tags"));
  entries.tag_loaded_values([](const std::string&) { return std::vector<std::string>{"red"}; });
  const std::string key = entries.key("1"), tag_set = entries.keys().tag("red");
  const auto raw = [&](const std::string& k) {
    return pool.run(k, [&](cachet::Connection& c) { return c.command({"GET", k}).as_optional_string(); });
  };
  const MemoryDb db;
  {
    auto queue = cachet::write_behind(entries, db, no_flusher());
    queue.write("1", "7");
    queue.write("2", "5");
    CHECK(queue.queued() == 2);
    CHECK(entries.get("1") == "7");  // the stamped entry is served
    CHECK(pool.run(tag_set, [&](cachet::Connection& c) { return c.command({"EXISTS", tag_set}).as_integer(); }) == 0);
    CHECK(entries.invalidate_tags({"red"}) == 0);  // the tag's version bumped: nothing deleted
    CHECK_FALSE(entries.get("1"));                 // the entry's stamp is stale
    CHECK(raw(key));                               // still there: stale, not deleted
    CHECK(queue.get("1") == "7");  // the pending write, as on one server (where the entry is deleted)
    CHECK(queue.get_or_load("2", [](std::string_view) { return std::string("old"); }) == "5");  // the pending write
    CHECK(entries.get("2") == "5");  // stored by the load with the bumped version: fresh
  }
  const std::optional<std::string> stale = raw(key);
  auto flusher = cachet::write_behind(entries, db, quick_flusher());
  REQUIRE(flusher.flush(30s));
  CHECK(db.applied() == std::map<std::string, std::vector<long>>{{"1", {7}}, {"2", {5}}});
  CHECK(raw(key) == stale);          // the settle left the entry as written: its old stamps
  CHECK_FALSE(entries.get("1"));     // so still stale, not resurrected
  CHECK_FALSE(flusher.get("1"));     // and no pending write left
  // The settle set the load's entry back to the written bytes, whose stamps
  // predate the invalidation: a miss (one server keeps serving it), never a stale value.
  CHECK_FALSE(entries.get("2"));
  flusher.write("1", "8");           // stamped with the bumped version: served again
  CHECK(entries.get("1") == "8");
  REQUIRE(flusher.flush(30s));
  CHECK(db.applied() == std::map<std::string, std::vector<long>>{{"1", {7, 8}}, {"2", {5}}});
  CHECK(entries.get("1") == "8");
}

TEST_CASE("on a cluster a tagged write whose stamp read fails queues nothing and throws the error once") {
  RedisCluster& cluster = clean_cluster();
  cachet::ConnectionOptions quick = cluster.client_options();
  quick.command_timeout = 200ms;
  cachet::Pool pool(quick);
  Cache entries(cachet::RedisStore(pool), entity_keys("wbc-stamp-fails"));
  entries.tag_loaded_values([](const std::string&) { return std::vector<std::string>{"blue"}; });
  auto queue = cachet::write_behind(entries, MemoryDb{}, no_flusher());
  const int counter_master = cluster.master_of(cluster.slot_of(entries.keys().tag_version("blue")));
  // The tag's counter is missing: the stamp read's GET is answered, its creation
  // (a script, a write) waits out the pause, which CLIENT UNPAUSE ends once the
  // failure is seen (it cannot end a PAUSE ALL: Redis 7.0 holds it too).
  auto admin = cluster.node_at(counter_master).connect();
  admin.command({"CLIENT", "PAUSE", "30000", "WRITE"});
  CHECK_THROWS_AS(queue.write("1", "7"), cachet::Error);  // a timeout
  admin.command({"CLIENT", "UNPAUSE"});
  CHECK(entries.metrics().value(Event::redis_error) == 1);
  CHECK(queue.queued() == 0);
  CHECK_FALSE(entries.get("1"));
  queue.write("1", "8");
  CHECK(queue.queued() == 1);
  CHECK(entries.get("1") == "8");
}

TEST_CASE("on a cluster an invalidate_tags between a tagged write's stamp read and its enqueue leaves it stale") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options());
  Cache entries(cachet::RedisStore(pool), entity_keys("wbc-stamp-race"));
  entries.tag_loaded_values([](const std::string&) { return std::vector<std::string>{"green"}; });
  auto queue = cachet::write_behind(entries, MemoryDb{}, no_flusher());
  queue.write("1", "6");  // the tag's counter exists: the next write reads it
  queue.before_enqueue_for_test = [&] { entries.invalidate_tags({"green"}); };
  queue.write("1", "7");
  queue.before_enqueue_for_test = nullptr;
  CHECK(queue.queued() == 2);
  CHECK_FALSE(entries.get("1"));  // stamped before the invalidation: stale, never served
  CHECK(queue.get("1") == "7");   // the pending write, as after any invalidation
  queue.write("1", "8");
  CHECK(entries.get("1") == "8");
}

TEST_CASE("on a cluster RedisWriteQueue refuses a write with tag sets apart from its partition, sending nothing") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options());
  cachet::RedisWriteQueue queue(cachet::RedisStore(pool), "t:wb:writes", 0);
  const std::string key = "t:v:{42}", version = "t:wv:t:v:{42}";
  const std::vector<std::string> sets{"t:tag:{red}"};
  cachet::QueuedWrite w{"42", key, "A", 60s, version, 70s, sets, 10};
  REQUIRE(cachet::detail::hash_slot(key) != cachet::detail::hash_slot(queue.partition(queue.partition_of("42")).stream));
  CHECK_THROWS_AS(queue.check(w), cachet::ConfigError);
  CHECK_THROWS_AS(queue.enqueue(w, 0, false), cachet::ConfigError);
  CHECK(queue.length() == 0);
  CHECK_FALSE(queue.pending("42"));
  w.tag_sets = {};
  CHECK_NOTHROW(queue.check(w));  // the same write untagged goes in two steps
  CHECK(queue.enqueue(w, 0, false).has_value());
  CHECK(queue.length() == 1);
}

namespace {

// A write of `id` apart from its partition (HashTag::entity keys), as WriteBehind makes it.
struct EntityWrite {
  std::string id, key, version, bytes;
  EntityWrite(std::string i, std::string b)
      : id(std::move(i)), key("t:v:{" + id + "}"), version("t:wv:" + key), bytes(std::move(b)) {}
  cachet::QueuedWrite queued() const { return {id, key, bytes, 60s, version, 70s}; }
  cachet::SettledWrite settled(const std::string& entry) const { return {id, entry, key, version, bytes}; }
};

std::optional<std::string> get(cachet::Pool& pool, const std::string& key) {
  return pool.run(key, [&](cachet::Connection& c) { return c.command({"GET", key}).as_optional_string(); });
}

}  // namespace

TEST_CASE("on a cluster two writes of one id whose cache steps cross leave the newer write cached") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options(), {.size = 4, .wait_timeout = 5s});
  cachet::RedisWriteQueue queue(cachet::RedisStore(pool), "t:wb:writes", 0);
  const EntityWrite a("42", "A"), b("42", "B");
  REQUIRE(cachet::detail::hash_slot(a.key) != cachet::detail::hash_slot(queue.partition(queue.partition_of("42")).stream));
  std::promise<void> a_queued, b_done;
  std::shared_future<void> b_finished = b_done.get_future().share();
  queue.between_steps_for_test = [&](const cachet::QueuedWrite& w) {
    if (w.bytes != "A") return;
    a_queued.set_value();
    b_finished.wait();  // A's cache step after B's
  };
  std::atomic<int> failed{0};
  std::thread writer_a([&] {
    try {
      queue.enqueue(a.queued(), 0, false);
    } catch (...) {
      ++failed;
      a_queued.set_value();
    }
  });
  a_queued.get_future().wait();
  try {
    queue.enqueue(b.queued(), 0, false);
  } catch (...) {
    ++failed;
  }
  b_done.set_value();
  writer_a.join();
  REQUIRE(failed == 0);
  CHECK(get(pool, a.key) == "B");
  CHECK(queue.pending("42") == "B");
}

TEST_CASE("on a cluster a settle whose cache step fails leaves its batch pending, and the retry settles the entry") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options());
  cachet::RedisWriteQueue queue(cachet::RedisStore(pool), "t:wb:writes", 0);
  const EntityWrite w("7", "new");
  const auto entry = queue.enqueue(w.queued(), 0, false);
  REQUIRE(entry);
  auto reader = queue.reader("cachet", "c1", 1s, queue.partition_of(w.id));
  const auto read = reader.read_new(10, 1ms);
  REQUIRE(read.size() == 1);
  const std::vector<std::string> entries{read[0].entry.str()};
  const cachet::SettledWrite head = w.settled(entries[0]);
  // The entry's node refuses the cache step (a hash where a value should be: WRONGTYPE).
  pool.run(w.key, [&](cachet::Connection& c) {
    c.command({"DEL", w.key});
    c.command({"HSET", w.key, "f", "v"});
  });
  CHECK_THROWS_AS(reader.settle(cachet::Settle::written, {}, entries, {&head, 1}), cachet::ReplyError);
  CHECK(queue.length() == 1);  // not acknowledged: the retry finds it
  // An older load's value meanwhile: the retried settle sets the written bytes back.
  pool.run(w.key, [&](cachet::Connection& c) {
    c.command({"DEL", w.key});
    c.command({"SET", w.key, "old"});
  });
  reader.settle(cachet::Settle::written, {}, entries, {&head, 1});
  CHECK(queue.length() == 0);
  CHECK(get(pool, w.key) == "new");
}

TEST_CASE("on a cluster a write whose queued step is not replicated in time still sets its cache entry") {
  const RedisCluster& cluster = clean_cluster();  // no replicas: WAIT falls short
  cachet::Pool pool(cluster.client_options());
  cachet::RedisWriteQueue queue(cachet::RedisStore(pool), "t:wb:writes", 0);
  const EntityWrite w("9", "queued");
  CHECK_THROWS_AS(queue.enqueue(w.queued(), 0, false, {.replicas = 1, .timeout = 10ms}), cachet::ReplicationError);
  CHECK(queue.pending("9") == "queued");
  CHECK(get(pool, w.key) == "queued");
}

TEST_CASE("on a cluster a queue key with a hash tag keeps one partition by default, as before partitions") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options());
  CHECK(cachet::detail::queue_partitions(0, pool, "t:wb:writes") == 16);
  CHECK(cachet::detail::queue_partitions(0, pool, "{t}:wb:writes") == 1);
  CHECK(cachet::detail::queue_partitions(4, pool, "{t}:wb:writes") == 4);
  CHECK(cachet::RedisWriteQueue(cachet::RedisStore(pool), "{t}:wb:writes", 0).stream() == "{t}:wb:writes");
  CHECK(cachet::RedisCounterQueue(cachet::RedisStore(pool), "{t}:wb:views:counts", 0).partitions() == 1);
}

TEST_CASE("on a cluster a flusher waiting for the writer another partition's flusher holds keeps its entries") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options(), {.size = 4, .wait_timeout = 5s});
  Cache entries(cachet::RedisStore(pool), entity_keys("wbc-wait"));
  auto options = quick_flusher();
  options.reclaim_idle = 1s;
  std::promise<void> blocked, release;
  std::shared_future<void> released = release.get_future().share();
  auto first = std::make_shared<std::atomic<bool>>(true);
  const auto writer = [&, first](std::span<const cachet::PendingWrite<std::string>>) {
    if (!first->exchange(false)) return;
    blocked.set_value();
    released.wait();  // a long batch: the other flushers wait for the writer meanwhile
  };
  auto queue = cachet::write_behind(entries, writer, options);
  struct Release {  // the writer, before the policy's destructor waits for its flushers
    std::promise<void>& promise;
    bool done = false;
    void now() {
      if (!std::exchange(done, true)) promise.set_value();
    }
    ~Release() { now(); }
  } unblock{release};
  const std::size_t held = queue.partition_of("x");
  std::string other;
  for (int i = 0; other.empty(); ++i)
    if (queue.partition_of("y" + std::to_string(i)) != held) other = "y" + std::to_string(i);
  queue.write("x", "1");
  blocked.get_future().wait();
  queue.write(other, "2");
  const std::string stream = queue.partition(queue.partition_of(other)).stream;
  const auto delivered = [&] {
    return pool.run(stream, [&](cachet::Connection& c) { return c.command({"XPENDING", stream, "cachet"})[0].as_integer(); }) == 1;
  };
  REQUIRE(cachet::test::eventually(delivered));
  std::this_thread::sleep_for(2500ms);  // more than twice reclaim_idle in the writer's wait
  const cachet::RedisWriteQueue thieves(cachet::RedisStore(pool), "t:wb:writes", 0);  // another process's queue
  auto thief = thieves.reader("cachet", "thief", 1s, queue.partition_of(other));
  const auto stolen = thief.claim_idle(options.reclaim_idle, "0-0", 10).entries.size();
  unblock.now();
  CHECK(stolen == 0);
  CHECK(queue.flush(30s));
}

TEST_CASE("on a cluster a full partition's QueueFullError names its stream and its share of the bound") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options());
  Cache entries(cachet::RedisStore(pool), entity_keys("wbc-full"));
  auto options = no_flusher();
  options.max_length = 32;  // 2 per partition
  options.on_full = cachet::QueueFull::reject;
  auto queue = cachet::write_behind(entries, MemoryDb{}, options);
  queue.write("1", "a");
  queue.write("1", "b");
  const std::string stream = queue.partition(queue.partition_of("1")).stream;
  CHECK_THROWS_WITH(queue.write("1", "c"), "cachet: write-behind queue " + stream + " is at its bound of 2 writes");
}

TEST_CASE("on a cluster copies of a write queue share its partition layout") {
  const RedisCluster& cluster = clean_cluster();
  cachet::Pool pool(cluster.client_options());
  const cachet::RedisWriteQueue queue(cachet::RedisStore(pool), "t:wb:writes", 0);
  const cachet::RedisWriteQueue copy = queue;  // what get_or_load's loader holds
  CHECK(&copy.partition(3) == &queue.partition(3));
}

TEST_CASE("on a cluster a master SIGKILLed while writers enqueue with replicated durability loses no acknowledged write") {
  RedisCluster cluster({.replicas_per_master = 1});
  cachet::ConnectionOptions redis = cluster.client_options();
  cachet::Pool pool(redis, {.size = 8, .wait_timeout = 5s});
  const MemoryDb db;
  Cache entries(cachet::RedisStore(pool), entity_keys("wbc-failover"));
  auto options = quick_flusher();
  options.replication = {.replicas = 1, .timeout = 500ms};
  auto queue = cachet::write_behind(entries, db, options);
  // The last value each writer had acknowledged, per key (values grow per key).
  constexpr int writers = 4, keys = 16;
  std::vector<std::map<std::string, long>> acked(writers);
  std::atomic<bool> stop{false};
  std::atomic<long> acknowledged{0};
  std::vector<cachet::test::Thread> threads;
  for (int t = 0; t < writers; ++t)
    threads.emplace_back([&](int w) {
      for (long i = 1; !stop; ++i) {
        const std::string id = id_of(w, static_cast<int>(i % keys));
        try {
          queue.write(id, std::to_string(i));
          acked[static_cast<std::size_t>(w)][id] = i;
          ++acknowledged;
        } catch (const cachet::Error&) {  // the dead master, or no replica to confirm: not acknowledged
          std::this_thread::sleep_for(5ms);
        }
      }
    }, t);
  cachet::test::RaiseOnExit stopped(stop);
  REQUIRE(cachet::test::eventually([&] { return acknowledged > 200; }, 20s));
  // Kill the master of partition 0, with writes in flight.
  const int slot = cluster.slot_of(queue.partition(0).stream);
  const int dead = cluster.kill_master_of(slot);
  cluster.wait_for_new_master(slot, dead, 30s);
  // Writes to the killed partition resume within 5 s of the promotion: the promoted replica has no
  // replica of its own, so WAIT falls short there (ReplicationError: queued, not replicated).
  const auto promoted = steady::now();
  std::string probe;
  for (int i = 0; probe.empty(); ++i)
    if (queue.partition_of("probe" + std::to_string(i)) == 0) probe = "probe" + std::to_string(i);
  bool resumed = false;
  while (!resumed && steady::now() - promoted < 5s) {
    try {
      queue.write(probe, "1");
      resumed = true;
    } catch (const cachet::ReplicationError&) {
      resumed = true;
    } catch (const cachet::Error&) {
      std::this_thread::sleep_for(20ms);
    }
  }
  CHECK(resumed);
  // The writers go on being acknowledged (a third of their writes, to the promoted master's partitions,
  // wait out WAIT's 500 ms and throw: slow under the sanitizers).
  const long before = acknowledged;
  INFO(before << " writes acknowledged when the probe was");
  CHECK(cachet::test::eventually([&] { return acknowledged > before + 10; }, 30s));
  stop = true;
  for (auto& t : threads) t.join();
  // No acknowledged write lost: each key's database value is its last acknowledged one, or a later one.
  CHECK(queue.flush(60s));
  const auto applied = db.applied();
  int lost = 0;
  for (const auto& per_writer : acked)
    for (const auto& [id, value] : per_writer) {
      const auto it = applied.find(id);
      if (it == applied.end() || *std::max_element(it->second.begin(), it->second.end()) < value) ++lost;
    }
  CHECK(lost == 0);
}
