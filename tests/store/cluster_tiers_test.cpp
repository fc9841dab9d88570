// The in-process tier and pub/sub on a Redis Cluster: a Subscriber and a
// LockNotifier hear PUBLISHes sent to other nodes; Tracking(pool) tracks every
// master, so a TieredStore over a cluster pool stays coherent, and its first
// tier is emptied when a master's tracking connection drops, when a slot moves
// and when a master fails over. One cluster per process, shared by the cases
// run in it and emptied between them; replicas only for the failover case and
// the Subscriber whose only seed, a replica, is killed (restarted after).
#include <cachet/redis/subscriber.hpp>
#include <cachet/store/lock_notifier.hpp>
#include <cachet/store/redis_lock.hpp>
#include <cachet/testing/detail/free_port.hpp>
#include <cachet/testing/redis_cluster.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/tier_fixtures.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::Pool;
using cachet::test::eventually;
using cachet::test::StringTier;
using cachet::testing::RedisCluster;

namespace {

// Two clusters at most per run of the binary (one CTest entry): replicas only for the cases that need them.
RedisCluster& shared_cluster(bool replicas) {
  if (replicas) {
    static RedisCluster with_replicas({.replicas_per_master = 1});
    return with_replicas;
  }
  static RedisCluster cluster({.replicas_per_master = 0});
  return cluster;
}

std::string seed_of(int port) { return "127.0.0.1:" + std::to_string(port); }

cachet::ConnectionOptions seeded(std::vector<std::string> seeds) {
  cachet::ConnectionOptions options;
  options.cluster.seeds = std::move(seeds);
  return options;
}

// The shared cluster, every master emptied.
RedisCluster& clean_cluster(bool replicas = false) {
  RedisCluster& cluster = shared_cluster(replicas);
  for (int port : cluster.master_ports()) cluster.node_at(port).connect().command({"FLUSHALL"});
  return cluster;
}

cachet::ConnectionOptions options_for(const RedisCluster& cluster) {
  std::vector<std::string> seeds;
  for (const auto& seed : cluster.seeds()) seeds.push_back(seed_of(seed.port));
  return seeded(std::move(seeds));
}

void set(Pool& pool, const std::string& key, const std::string& value) {
  pool.run(key, [&](cachet::Connection& c) { c.command({"SET", key, value}); }, cachet::Idempotent::yes);
}

// Reads `key` from L2 and keeps it in L1 if the tier allows; true if kept.
bool fill(StringTier& tier, const std::string& key) {
  const auto f = tier.fetch(key);
  if (!f.bytes) return false;
  return tier.fill(key, f, cachet::Cached<std::string>{std::make_shared<const std::string>(*f.bytes), {}});
}

std::optional<std::string> in_l1(StringTier& tier, const std::string& key) {
  auto c = tier.cached(key);
  if (!c) return std::nullopt;
  return *c->value;
}

// Keys "t:item:{<n>}", one on each master.
std::vector<std::string> key_per_master(const RedisCluster& cluster) {
  std::vector<std::string> keys;
  std::vector<int> seen;
  for (int n = 0; keys.size() < cluster.master_ports().size(); ++n) {
    const std::string key = "t:item:{" + std::to_string(n) + "}";
    const int master = cluster.master_of(cluster.slot_of(key));
    if (std::find(seen.begin(), seen.end(), master) != seen.end()) continue;
    seen.push_back(master);
    keys.push_back(key);
  }
  return keys;
}

// This process's cluster pool, its tracking of "t:" and a tier over them.
struct ClusterTier {
  Pool pool;
  cachet::Tracking tracking;
  StringTier tier;
  explicit ClusterTier(cachet::ConnectionOptions options,
                       cachet::TrackingOptions tracked = cachet::test::quick_tracking())
      : pool(std::move(options)),
        tracking(pool, std::move(tracked)),
        tier(cachet::test::string_tier(pool, &tracking)) {
    if (!tracking.wait_live(10s)) throw std::runtime_error("cluster tracking did not come up");
  }
};

// A Subscriber on `seeds` that records the messages of channel "news", and its lost connections.
struct Listening {
  std::atomic<int> heard{0}, drops{0};
  cachet::Subscriber sub;
  explicit Listening(std::vector<std::string> seeds)
      : sub(seeded(std::move(seeds)), {},
            {.setup = [](cachet::Connection& c) { c.command({"SUBSCRIBE", "news"}); },
             .message = [this](const cachet::Reply&) { ++heard; },
             .up = [] {},
             .down = [this] { ++drops; }}) {
    sub.start();
  }
};

long long pubsub_clients(const RedisCluster& cluster, int port) {
  const cachet::Reply r = cluster.node_at(port).connect().command({"CLIENT", "LIST", "TYPE", "pubsub"});
  const std::string list(r.as_string());
  return std::count(list.begin(), list.end(), '\n');
}

}  // namespace

TEST_CASE("a PUBLISH on one master reaches a Subscriber on another, which moves to the next seed when dropped") {
  RedisCluster& cluster = clean_cluster();
  Pool pool(options_for(cluster));
  const std::string key = "k:{publish}";
  const int publisher = cluster.master_of(cluster.slot_of(key));
  std::vector<int> others;
  for (int m : cluster.master_ports())
    if (m != publisher) others.push_back(m);
  // A dead seed first, then the two other masters.
  Listening listening({seed_of(cachet::detail::free_port()), seed_of(others[0]), seed_of(others[1])});
  const auto publish = [&] {
    pool.run(key, [&](cachet::Connection& c) { c.command({"PUBLISH", "news", "hello"}); });
  };

  REQUIRE(eventually([&] { return listening.sub.up() && pubsub_clients(cluster, others[0]) == 1; }, 10s));
  CHECK(pubsub_clients(cluster, publisher) == 0);
  publish();
  CHECK(eventually([&] { return listening.heard == 1; }, 5s));

  // Dropped by its node, it subscribes on the next seed and hears the next message.
  cluster.node_at(others[0]).connect().command({"CLIENT", "KILL", "TYPE", "pubsub"});
  REQUIRE(eventually([&] { return listening.sub.up() && pubsub_clients(cluster, others[1]) == 1; }, 10s));
  CHECK(pubsub_clients(cluster, others[0]) == 0);
  publish();
  CHECK(eventually([&] { return listening.heard == 2; }, 5s));
}

TEST_CASE("LockNotifier on a cluster wakes a waiter when the lock is released on another node") {
  RedisCluster& cluster = clean_cluster();
  Pool pool(options_for(cluster));
  cachet::RedisStore store(pool);
  const std::string key = "lock:{notified}";
  const int holder_node = cluster.master_of(cluster.slot_of(key));
  std::vector<std::string> others;
  for (int m : cluster.master_ports())
    if (m != holder_node) others.push_back(seed_of(m));
  cachet::LockNotifier notifier(seeded(others), "releases");
  cachet::RedisLock lock(store, key, {.notify_channel = "releases"});
  REQUIRE(lock.try_acquire());
  REQUIRE(eventually([&] { return notifier.listening(); }, 10s));

  const std::uint64_t seen = notifier.watch(key);
  REQUIRE(lock.release());
  const auto until = std::chrono::steady_clock::now() + 5s;
  CHECK(notifier.wait(key, seen, until) != seen);
  CHECK(std::chrono::steady_clock::now() < until);
  notifier.unwatch(key);
}

TEST_CASE("a tiered store over a cluster pool drops a key from L1 when another pool writes it, on every master") {
  RedisCluster& cluster = clean_cluster();
  ClusterTier here(options_for(cluster));
  Pool other(options_for(cluster));
  const std::vector<std::string> keys = key_per_master(cluster);
  for (const std::string& k : keys) set(other, k, "v1");
  REQUIRE(here.tracking.sync());  // the writes' own invalidations are in
  for (const std::string& k : keys) REQUIRE(fill(here.tier, k));

  for (const std::string& k : keys) {
    CHECK(in_l1(here.tier, k) == "v1");
    set(other, k, "v2");
  }
  REQUIRE(here.tracking.sync());  // every master's invalidations have arrived
  for (const std::string& k : keys) {
    CHECK_FALSE(in_l1(here.tier, k));
    REQUIRE(fill(here.tier, k));
    CHECK(in_l1(here.tier, k) == "v2");
  }
}

TEST_CASE("a master's tracking connection killed on a cluster empties L1 and refuses fills until it is back") {
  RedisCluster& cluster = clean_cluster();
  ClusterTier here(cachet::test::slow_reconnect(options_for(cluster), 1500ms));
  const std::vector<std::string> keys = key_per_master(cluster);
  for (const std::string& k : keys) set(here.pool, k, "v1");
  REQUIRE(here.tracking.sync());
  for (const std::string& k : keys) REQUIRE(fill(here.tier, k));

  const int victim = cluster.master_of(cluster.slot_of(keys[0]));
  cluster.node_at(victim).connect().command({"CLIENT", "KILL", "TYPE", "pubsub"});
  REQUIRE(eventually([&] { return here.tracking.state() != cachet::TrackingState::live; }, 5s));
  const auto emptied = [&] {  // every master's keys: one epoch
    return std::none_of(keys.begin(), keys.end(), [&](const std::string& k) { return in_l1(here.tier, k); });
  };
  CHECK(eventually(emptied, 5s));
  CHECK_FALSE(fill(here.tier, keys[1]));  // refused while that master is not tracked

  REQUIRE(here.tracking.wait_live(10s));
  CHECK(fill(here.tier, keys[1]));
}

TEST_CASE("a slot migrated on a cluster while its key is in L1: L1 is emptied and serves nothing stale") {
  RedisCluster& cluster = clean_cluster();
  ClusterTier here(options_for(cluster));
  Pool other(options_for(cluster));
  const std::vector<std::string> keys = key_per_master(cluster);
  const std::string& moving = keys[0];
  const std::string& staying = keys[1];
  for (const std::string& k : keys) set(here.pool, k, "v1");
  REQUIRE(here.tracking.sync());
  REQUIRE(fill(here.tier, moving));
  REQUIRE(fill(here.tier, staying));
  const auto flushes = here.tracking.stats().flushes;

  const int slot = cluster.slot_of(moving);
  const int to = cluster.master_of(cluster.slot_of(keys[2]));
  cluster.begin_migration(slot, to);
  cluster.migrate_keys(slot, 100);
  cluster.end_migration(slot);
  set(other, moving, "v2");  // on the new owner, through a pool that learns of the move itself

  // This pool learns of the move on its next command there (MOVED): L1 goes whole.
  set(here.pool, "t:other:" + moving.substr(7), "x");  // the same slot
  CHECK(here.pool.cluster_master_of(moving) == seed_of(to));
  CHECK(eventually([&] { return here.tracking.stats().flushes > flushes; }, 5s));  // by the reconciler
  CHECK_FALSE(in_l1(here.tier, staying));
  REQUIRE(here.tracking.wait_live(10s));
  REQUIRE(here.tracking.sync());
  CHECK(in_l1(here.tier, moving) != "v1");
  REQUIRE(fill(here.tier, moving));
  CHECK(in_l1(here.tier, moving) == "v2");
}

TEST_CASE("CLUSTER FAILOVER under a tiered store: L1 is emptied and tracking moves to the new master") {
  RedisCluster& cluster = clean_cluster(true);
  ClusterTier here(options_for(cluster));
  Pool other(options_for(cluster));
  const std::vector<std::string> keys = key_per_master(cluster);
  for (const std::string& k : keys) set(here.pool, k, "v1");
  REQUIRE(here.tracking.sync());
  for (const std::string& k : keys) REQUIRE(fill(here.tier, k));

  const int slot = cluster.slot_of(keys[0]);
  const int old_master = cluster.master_of(slot);
  cluster.failover(cluster.replicas_of(old_master).at(0));
  const int new_master = cluster.wait_for_new_master(slot, old_master, 30s);

  // Written on the new master before this pool's map knows of it: not served stale.
  set(other, keys[0], "v2");
  CHECK(eventually([&] { return !in_l1(here.tier, keys[0]); }, 5s));

  // This pool's next read there is redirected (MOVED): L1 goes whole, that read is not kept.
  CHECK_FALSE(fill(here.tier, keys[0]));
  CHECK(here.pool.cluster_master_of(keys[0]) == seed_of(new_master));
  const auto emptied = [&] {  // by the reconciler
    return std::none_of(keys.begin(), keys.end(), [&](const std::string& k) { return in_l1(here.tier, k); });
  };
  CHECK(eventually(emptied, 5s));
  REQUIRE(here.tracking.wait_live(10s));
  CHECK(pubsub_clients(cluster, new_master) == 1);  // tracking registered there
  CHECK(eventually([&] { return pubsub_clients(cluster, old_master) == 0; }, 5s));  // and closed on the old one

  REQUIRE(fill(here.tier, keys[0]));
  CHECK(in_l1(here.tier, keys[0]) == "v2");
  set(other, keys[0], "v3");
  REQUIRE(here.tracking.sync());
  CHECK_FALSE(in_l1(here.tier, keys[0]));
}

TEST_CASE("a tiered read redirected by ASK during a migration is not kept in L1") {
  RedisCluster& cluster = clean_cluster();
  ClusterTier here(options_for(cluster));
  const std::vector<std::string> keys = key_per_master(cluster);
  const std::string& moving = keys[0];
  set(here.pool, moving, "v1");
  REQUIRE(here.tracking.sync());

  // The key moves to the importing node; its slot stays with the old master in every map (ASK, no MOVED).
  const int slot = cluster.slot_of(moving);
  const int to = cluster.master_of(cluster.slot_of(keys[1]));
  cluster.begin_migration(slot, to);
  REQUIRE(cluster.migrate_keys(slot, 100) == 1);
  const auto asks = here.pool.cluster_stats().ask;
  const auto flushes = here.tracking.stats().flushes;

  CHECK_FALSE(fill(here.tier, moving));  // read there after an ASK: that node may be one nobody tracks
  CHECK(here.pool.cluster_stats().ask > asks);
  CHECK(here.tracking.stats().flushes == flushes);  // refused by the ASK, not by a change of the map
  CHECK_FALSE(in_l1(here.tier, moving));
  cluster.end_migration(slot);
}

TEST_CASE("a tiered store on a cluster refuses a Tracking that follows another pool") {
  RedisCluster& cluster = clean_cluster();
  Pool pool(options_for(cluster));
  Pool other(options_for(cluster));
  cachet::Tracking tracking(other, cachet::test::quick_tracking());
  CHECK_THROWS_AS(cachet::test::string_tier(pool, &tracking), cachet::ConfigError);
  cachet::Tracking own(pool, cachet::test::quick_tracking());
  CHECK_NOTHROW(cachet::test::string_tier(pool, &own));
}

TEST_CASE("a tracking listener whose own command is redirected (MOVED) does not deadlock the tracking") {
  RedisCluster& cluster = clean_cluster();
  ClusterTier here(options_for(cluster));
  const std::vector<std::string> keys = key_per_master(cluster);
  const std::string& moving = keys[0];
  set(here.pool, moving, "v1");
  const int to = cluster.master_of(cluster.slot_of(keys[1]));
  cluster.move_slot(cluster.slot_of(moving), to);  // this pool's map still names the old master

  // The listener runs on a subscriber's thread, inside the Tracking; its read is MOVED, which changes the map.
  std::atomic<bool> asked{false}, answered{false};
  auto sub = here.tracking.listen([&](std::optional<std::string_view> key) {
    if (key != std::string_view("t:trigger:" + keys[2].substr(7)) || asked.exchange(true)) return;
    try {
      here.pool.run(moving, [&](cachet::Connection& c) { c.command({"GET", moving}); }, cachet::Idempotent::yes);
      answered = true;
    } catch (...) {
    }
  });
  set(here.pool, "t:trigger:" + keys[2].substr(7), "x");  // a slot that did not move
  CHECK(eventually([&] { return answered.load(); }, 10s));
  CHECK(here.pool.cluster_master_of(moving) == seed_of(to));
  CHECK(here.tracking.wait_live(10s));  // the reconciler ran: nothing is stuck
}

TEST_CASE("a slot moved on a cluster that this process sends nothing to is learned within map_refresh") {
  RedisCluster& cluster = clean_cluster();
  cachet::TrackingOptions tracked = cachet::test::quick_tracking();
  tracked.map_refresh = 300ms;
  ClusterTier here(options_for(cluster), tracked);
  const std::vector<std::string> keys = key_per_master(cluster);
  const std::string& moving = keys[0];
  set(here.pool, moving, "v1");
  REQUIRE(here.tracking.sync());
  REQUIRE(fill(here.tier, moving));

  const int to = cluster.master_of(cluster.slot_of(keys[1]));
  cluster.move_slot(cluster.slot_of(moving), to);
  // No command of this process is redirected: the periodic reload learns of it, L1 is emptied.
  CHECK(eventually([&] { return here.pool.cluster_master_of(moving) == seed_of(to); }, 5s));
  CHECK(eventually([&] { return !in_l1(here.tier, moving); }, 5s));
  CHECK(here.tracking.wait_live(10s));
}

TEST_CASE("a Subscriber whose only seed dies comes back through a node it learned from the cluster") {
  RedisCluster& cluster = clean_cluster(true);
  const int replica = cluster.replicas_of(cluster.master_ports().front()).at(0);  // killed without a failover
  Listening listening({seed_of(replica)});
  cachet::Connection publisher = cluster.node_at(cluster.master_ports().back()).connect();
  const auto heard_more_than = [&](int count) {  // publishing until heard: the subscriber may be reconnecting
    return eventually(
        [&] {
          publisher.command({"PUBLISH", "news", "hello"});
          std::this_thread::sleep_for(10ms);
          return listening.heard > count;
        },
        30s);
  };
  REQUIRE(eventually([&] { return listening.sub.up(); }, 10s));
  REQUIRE(heard_more_than(0));

  struct Restart {  // the shared cluster whole again for the cases after this one, whatever fails here
    RedisCluster& cluster;
    int port;
    ~Restart() {
      try {
        cluster.node_at(port).restart();
        cluster.wait_until_stable(60s);
      } catch (const std::exception& e) {
        WARN("the killed replica did not come back: " << e.what());
      }
    }
  } restart{cluster, replica};
  cluster.node_at(replica).kill();
  REQUIRE(eventually([&] { return listening.drops == 1; }, 10s));  // that connection is gone: no late message
  // The seed stays dead: only a node learned on the first connect can bring the subscriber back.
  CHECK(heard_more_than(listening.heard));
  CHECK(listening.sub.up());
}
