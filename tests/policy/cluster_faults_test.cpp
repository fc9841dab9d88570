// Faults on a Redis Cluster under load: 8 threads read through make_cache's
// guarded cache-aside (SingleFlight + RedisLockGuard) while the cluster loses a
// master (SIGKILL, replica promoted), migrates a slot (ASK, TRYAGAIN) or fails
// over by hand (MOVED, READONLY). No error may reach a reader; writes resume
// within 5 s of a promotion.
#include <cachet/detail/hash_slot.hpp>
#include <cachet/policy/make.hpp>
#include <cachet/testing/redis_cluster.hpp>

#include <support/concurrency.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using cachet::testing::RedisCluster;
using Clock = std::chrono::steady_clock;

namespace {

cachet::ConnectionOptions options_for(const RedisCluster& cluster) {
  cachet::ConnectionOptions options = cluster.client_options();
  options.command_timeout = 2s;  // generous: a loaded machine, not a slow server, is what this meets
  return options;
}

cachet::CacheOptions cache_options() {
  cachet::CacheOptions o;
  o.ns = "faults";
  o.name = "item";
  o.keys.hash_tag = cachet::HashTag::entity;  // faults:item:{id}: the slot is the id's
  o.ttl = cachet::TtlPolicy({.fresh = std::chrono::hours(1)});
  return o;
}

std::string key_of(const std::string& id) { return "faults:item:{" + id + "}"; }

// `n` ids whose keys share the slot of "m0"'s, then `n` ids spread over the others.
std::vector<std::string> ids_on_one_slot_and_spread(std::size_t n) {
  const std::uint16_t slot = cachet::detail::hash_slot(key_of("m0"));
  std::vector<std::string> same{"m0"}, spread;
  for (int i = 1; same.size() < n || spread.size() < n; ++i) {
    const std::string id = "m" + std::to_string(i);
    auto& to = cachet::detail::hash_slot(key_of(id)) == slot ? same : spread;
    if (to.size() < n) to.push_back(id);
  }
  same.insert(same.end(), spread.begin(), spread.end());
  return same;
}

// 8 threads reading the ids through the guarded cache until stopped, counting
// reads and every exception that reaches them.
struct Readers {
  cachet::Cache<std::string>& cache;
  const std::vector<std::string>& ids;
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0}, errors{0};
  std::vector<cachet::test::Thread> threads;

  Readers(cachet::Cache<std::string>& c, const std::vector<std::string>& i) : cache(c), ids(i) {
    for (int t = 0; t < 8; ++t) threads.emplace_back([this, t] { loop(t); });
  }
  void loop(int t) {
    for (std::size_t n = static_cast<std::size_t>(t); !stop; ++n) {
      try {
        const std::string& id = ids[n % ids.size()];
        if (cache.get_or_load(id, [&](std::string_view) { return "db-" + id; }).empty()) ++errors;
        ++reads;
      } catch (...) {
        ++errors;
      }
    }
  }
  // Waits for `more` reads past those made so far (traffic before and after an event).
  bool await_reads(long more) {
    const long target = reads + more;
    return cachet::test::eventually([&] { return reads >= target; }, 120s);
  }
  void join() {
    stop = true;
    for (auto& t : threads) t.join();
  }
};

// Sets ids[0] until one write succeeds; returns how long that took.
Clock::duration until_a_write_succeeds(cachet::Cache<std::string>& cache, const std::string& id) {
  const auto started = Clock::now();
  for (;;) {
    try {
      cache.set(id, "written");
      return Clock::now() - started;
    } catch (const cachet::Error&) {
      if (Clock::now() - started > 60s) throw;
    }
  }
}

constexpr long traffic = cachet::test::sized(2000, 300);

}  // namespace

TEST_CASE("a SIGKILLed master: reads keep being served with no caller error, writes resume within 5 s of the promotion") {
  RedisCluster cluster;  // 3 masters, a replica each
  cachet::Pool pool(options_for(cluster));
  auto cache = cachet::make_cache<std::string>(pool, cache_options());
  const auto ids = ids_on_one_slot_and_spread(16);
  const int slot = cluster.slot_of(key_of(ids[0]));

  Readers readers(cache, ids);
  cachet::test::RaiseOnExit stop(readers.stop);
  REQUIRE(readers.await_reads(traffic));
  const int killed = cluster.kill_master_of(slot);
  cluster.wait_for_new_master(slot, killed, 60s);
  const auto took = until_a_write_succeeds(cache, ids[0]);
  CHECK(took < 5s);
  REQUIRE(readers.await_reads(traffic));
  readers.join();
  CHECK(readers.errors == 0);
}

TEST_CASE("a slot migrated under load: ASK and TRYAGAIN are followed, no caller error, every value readable after") {
  RedisCluster cluster({.replicas_per_master = 0});
  cachet::Pool pool(options_for(cluster));
  auto cache = cachet::make_cache<std::string>(pool, cache_options());
  const auto ids = ids_on_one_slot_and_spread(16);
  const int slot = cluster.slot_of(key_of(ids[0]));
  int to = 0;
  for (int port : cluster.master_ports())
    if (port != cluster.master_of(slot)) to = port;

  Readers readers(cache, ids);
  cachet::test::RaiseOnExit stop(readers.stop);
  REQUIRE(readers.await_reads(traffic));
  cluster.begin_migration(slot, to);
  cluster.migrate_keys(slot, 8);  // half of them: the rest answer ASK from the source
  CHECK(cachet::test::eventually([&] { return pool.cluster_stats().ask > 0; }, 60s));
  REQUIRE(readers.await_reads(traffic));
  cluster.migrate_keys(slot, 1000);
  cluster.end_migration(slot);
  REQUIRE(readers.await_reads(traffic));
  readers.join();
  CHECK(readers.errors == 0);
  CHECK(cluster.master_of(slot) == to);
  bool readable = true;
  for (const auto& id : ids)
    readable = readable && cache.get_or_load(id, [&](std::string_view) { return "db-" + id; }) == "db-" + id;
  CHECK(readable);
}

TEST_CASE("CLUSTER FAILOVER under load: MOVED and READONLY are followed, no caller error, writes go on") {
  RedisCluster cluster;
  cachet::Pool pool(options_for(cluster));
  auto cache = cachet::make_cache<std::string>(pool, cache_options());
  const auto ids = ids_on_one_slot_and_spread(16);
  const int slot = cluster.slot_of(key_of(ids[0]));
  const int old_master = cluster.master_of(slot);

  Readers readers(cache, ids);
  cachet::test::RaiseOnExit stop(readers.stop);
  REQUIRE(readers.await_reads(traffic));
  cluster.failover(cluster.replicas_of(old_master).front());
  cluster.wait_for_new_master(slot, old_master, 60s);
  CHECK(until_a_write_succeeds(cache, ids[0]) < 5s);
  REQUIRE(readers.await_reads(traffic));
  readers.join();
  CHECK(readers.errors == 0);
  const auto figures = pool.cluster_stats();
  CHECK(figures.moved + figures.readonly >= 1);
}
