// cachet::Pool as a Redis Cluster client: keys spread over the masters by slot,
// MOVED/ASK/TRYAGAIN followed, failovers ridden out, batches grouped per node.
// Each TEST_CASE that needs one starts its own local cluster (3 masters + 3
// replicas, unless it says otherwise); the per-address records' bound is tested
// on the ledgers alone.
#include <cachet/redis/detail/cluster_ledgers.hpp>
#include <cachet/redis/detail/cluster_redirect.hpp>
#include <cachet/redis/redirect.hpp>
#include <cachet/redis/pipeline_by_node.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/script.hpp>
#include <cachet/redis/script_batch.hpp>
#include <cachet/redis/tracking.hpp>
#include <cachet/testing/redis_cluster.hpp>
#include <cachet/testing/detail/free_port.hpp>
#include <cachet/testing/redis_server.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::Connection;
using cachet::Idempotent;
using cachet::Pool;
using cachet::testing::RedisCluster;

namespace {

// The cluster's client options with `cluster_options`' settings; its seeds, if any, go first.
cachet::ConnectionOptions options_for(const RedisCluster& cluster, cachet::ClusterOptions cluster_options = {}) {
  cachet::ConnectionOptions options = cluster.client_options();
  const std::vector<std::string> all = std::move(options.cluster.seeds);
  cluster_options.seeds.insert(cluster_options.seeds.end(), all.begin(), all.end());
  options.cluster = std::move(cluster_options);
  return options;
}

void set(Pool& pool, const std::string& key, const std::string& value) {
  pool.run(key, [&](Connection& c) { c.command({"SET", key, value}); }, Idempotent::yes);
}

std::optional<std::string> get(Pool& pool, const std::string& key) {
  return pool.run(
      key,
      [&](Connection& c) -> std::optional<std::string> {
        const cachet::Reply r = c.command({"GET", key});
        if (r.is_nil()) return std::nullopt;
        return std::string(r.as_string());
      },
      Idempotent::yes);
}

long long dbsize(const RedisCluster& cluster, int port) {
  return cluster.node_at(port).connect().command({"DBSIZE"}).as_integer();
}

int other_master(const RedisCluster& cluster, int than) {
  for (int m : cluster.master_ports())
    if (m != than) return m;
  return 0;
}

bool names_port(const std::string& endpoint, int port) { return endpoint.ends_with(":" + std::to_string(port)); }

// Whether a node pool for `node` ("host:port") exists: each registers its figures in the metrics while it lives.
bool pool_exported(const std::string& node) {
  return cachet::MetricsRegistry::global().prometheus().find("{pool=\"" + node + "\"") != std::string::npos;
}

// A key whose slot the master on `port` serves.
std::string key_on(const RedisCluster& cluster, int port) {
  for (int i = 0;; ++i)
    if (const std::string key = "on:" + std::to_string(i); cluster.master_of(cluster.slot_of(key)) == port) return key;
}

}  // namespace

TEST_CASE("a cluster pool spreads keys over every master, batches per node, and starts from any live seed") {
  RedisCluster cluster;
  Pool pool(options_for(cluster));
  CHECK(pool.cluster());

  // 1000 keys land on all three masters and read back.
  for (int i = 0; i < 1000; ++i) set(pool, "k:" + std::to_string(i), "v" + std::to_string(i));
  long long total = 0;
  for (int m : cluster.master_ports()) {
    CHECK(dbsize(cluster, m) > 200);
    total += dbsize(cluster, m);
  }
  CHECK(total == 1000);
  bool all_read = true;
  for (int i = 0; i < 1000; ++i) all_read = all_read && get(pool, "k:" + std::to_string(i)) == "v" + std::to_string(i);
  CHECK(all_read);

  // run_grouped: one group per node, every send before any receive, replies in the caller's order.
  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i) names.push_back("k:" + std::to_string(i));
  std::vector<std::string_view> keys(names.begin(), names.end());
  std::vector<std::string> values(keys.size());
  std::string order;
  pool.run_grouped(
      keys,
      [&](Connection& c, std::span<const std::size_t> at) {
        order += 's';
        for (std::size_t i : at) c.append({"GET", keys[i]});
        c.flush();
      },
      [&](Connection& c, std::span<const std::size_t> at) {
        order += 'r';
        for (std::size_t i : at) values[i] = std::move(c.read_reply()).as_string();
      });
  CHECK(order == "sssrrr");
  bool in_order = true;
  for (int i = 0; i < 300; ++i) in_order = in_order && values[static_cast<std::size_t>(i)] == "v" + std::to_string(i);
  CHECK(in_order);

  // for_each_master: each master once.
  std::set<std::string> visited;
  int visits = 0;
  pool.for_each_master([&](Connection& c) {
    ++visits;
    visited.insert(std::string(c.command({"CLUSTER", "MYID"}).as_string()));
  });
  CHECK(visits == 3);
  CHECK(visited.size() == 3);
  CHECK(pool.acquire()->command({"PING"}).as_status() == "PONG");
  CHECK(pool.stats().created >= 3);

  // Seeds in order: a dead first seed, then a live one.
  {
    cachet::ConnectionOptions options;
    options.cluster.seeds = {"127.0.0.1:" + std::to_string(cachet::detail::free_port()),
                             options_for(cluster).cluster.seeds.front()};
    Pool second(options);
    CHECK(get(second, "k:7") == "v7");
    CHECK(second.cluster_stats().refreshes == 1);
  }

  // Each master timed the commands sent to it (run, run_grouped, for_each_master).
  const cachet::ClusterFigures figures = pool.cluster_stats();
  std::size_t timed_masters = 0;
  for (const auto& [node, latency] : figures.node_latency)
    if (latency.count > 0 && latency.sum.count() > 0) ++timed_masters;
  CHECK(timed_masters == 3);

  // The cluster figures reach the metrics.
  const std::string text = cachet::MetricsRegistry::global().prometheus();
  CHECK(text.find("cachet_cluster_redirects_total{cluster=\"") != std::string::npos);
  CHECK(text.find("cachet_cluster_refreshes_total{cluster=\"") != std::string::npos);
  CHECK(text.find("cachet_cluster_node_duration_seconds_bucket{cluster=\"") != std::string::npos);
  CHECK(text.find("cachet_cluster_node_duration_seconds_count{cluster=\"") != std::string::npos);
}

// TLS and the password apply to every node, the learned ones too: a slot moved to
// another master is followed there over TLS, with its certificate's name checked,
// and tracking subscribes on every master over TLS.
TEST_CASE("a cluster over TLS with a password: one set of options reaches every node, learned ones included") {
  RedisCluster cluster({.replicas_per_master = 0, .config = {"requirepass s3cret", "masterauth s3cret"}, .tls = true});
  cachet::ConnectionOptions options = cluster.client_options();
  options.cluster.seeds.resize(1);  // the other masters are learned from CLUSTER SLOTS
  REQUIRE(options.tls.enabled);
  REQUIRE(options.tls.verify_hostname);
  Pool pool(options);

  std::vector<std::string> names;
  for (int i = 0; i < 300; ++i) names.push_back("t:" + std::to_string(i));
  for (const std::string& k : names) set(pool, k, "v" + k);
  std::set<std::string> masters;
  for (const std::string& k : names) masters.insert(pool.cluster_master_of(k));
  CHECK(masters.size() == 3);
  for (int m : cluster.master_ports()) CHECK(dbsize(cluster, m) > 50);
  const std::vector<std::string_view> keys(names.begin(), names.end());
  const auto send = [&](Connection& c, std::span<const std::size_t> at, bool) {
    for (std::size_t i : at) c.append({"GET", keys[i]});
  };
  const std::vector<cachet::Reply> got = cachet::pipeline_by_node(pool, keys, 1, send, Idempotent::yes);
  bool all_read = true;
  for (std::size_t i = 0; i < keys.size(); ++i) all_read = all_read && got[i].as_string() == "v" + names[i];
  CHECK(all_read);

  // Tracking on every master, each subscriber on a node learned from CLUSTER SLOTS.
  cachet::Tracking tracking(pool, {.prefixes = {"t:"}});
  REQUIRE(tracking.wait_live(10s));
  std::mutex heard_mutex;
  std::set<std::string> heard;
  auto sub = tracking.listen([&](std::optional<std::string_view> key) {
    std::lock_guard lock(heard_mutex);
    if (key) heard.insert(std::string(*key));
  });
  std::set<std::string> want;
  for (const std::string& k : names) {
    if (want.size() == 3 || std::any_of(want.begin(), want.end(), [&](const std::string& w) {
          return pool.cluster_master_of(w) == pool.cluster_master_of(k);
        }))
      continue;
    want.insert(k);
    cluster.node_at(cluster.master_of(cluster.slot_of(k))).connect().command({"SET", k, "changed"});
  }
  REQUIRE(want.size() == 3);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  const auto all_heard = [&] {
    std::lock_guard lock(heard_mutex);
    return std::includes(heard.begin(), heard.end(), want.begin(), want.end());
  };
  while (!all_heard() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  CHECK(all_heard());

  // A slot moved to another master: MOVED names the new master's TLS port, reached with the same options.
  const std::string& moved = *std::find_if(names.begin(), names.end(), [&](const std::string& k) { return !want.contains(k); });
  const int slot = cluster.slot_of(moved);
  const int from = cluster.master_of(slot);
  const int to = from == cluster.master_ports().front() ? cluster.master_ports().back() : cluster.master_ports().front();
  const std::string before = pool.cluster_master_of(moved);
  cluster.move_slot(slot, to);
  CHECK(get(pool, moved) == "v" + moved);
  CHECK(pool.cluster_master_of(moved) != before);
  CHECK(pool.cluster_master_of(moved) == "127.0.0.1:" + std::to_string(cluster.node_at(to).tls_port()));

  // The same options trusting another CA, or with a wrong password, reach no node: typed as on one server.
  cachet::ConnectionOptions untrusted = options;
  untrusted.tls.ca_file = cluster.nodes().front()->tls_files().other_ca_cert;
  CHECK_THROWS_AS(Pool(untrusted), cachet::TlsCertificateError);
  cachet::ConnectionOptions wrong = options;
  wrong.password = "wrong";
  CHECK_THROWS_AS(Pool(wrong), cachet::ConfigError);
}

TEST_CASE("a cluster pool's construction: a bad seed or a server that is no cluster node is a ConfigError") {
  cachet::ConnectionOptions options;
  options.cluster.seeds = {"no-port-here"};
  CHECK_THROWS_AS(Pool(options), cachet::ConfigError);

  cachet::testing::RedisServerOptions server_options;
  server_options.tcp = true;
  cachet::testing::RedisServer plain(server_options);
  options.cluster.seeds = {"127.0.0.1:" + std::to_string(plain.port())};
  CHECK_THROWS_AS(Pool(options), cachet::ConfigError);


  // Unreachable: tolerated at construction, a ConnectionError per command.
  options.cluster.seeds = {"127.0.0.1:" + std::to_string(cachet::detail::free_port())};
  options.cluster.retry_within = 200ms;
  Pool dead(options);
  CHECK_THROWS_AS(dead.run("k", [](Connection& c) { c.command({"PING"}); }), cachet::ConnectionError);
}

TEST_CASE("a cluster pool follows MOVED, ASK and TRYAGAIN while slots migrate, and caps redirections") {
  RedisCluster cluster;
  cachet::ClusterOptions slow;
  slow.refresh_min_interval = 1h;  // only a MOVED can change the map here
  Pool pool(options_for(cluster, slow));
  cachet::ClusterOptions strict = slow;
  strict.max_redirects = 0;
  Pool capped(options_for(cluster, strict));

  // MOVED: the slot's entry changes at once, and the redirection is counted.
  const std::string key = "{mv}k";
  const int slot = cluster.slot_of(key);
  const int from = cluster.master_of(slot), to = other_master(cluster, from);
  set(pool, key, "1");
  REQUIRE(names_port(pool.cluster_master_of(key), from));
  REQUIRE(get(capped, key) == "1");
  cluster.move_slot(slot, to);
  CHECK(get(pool, key) == "1");
  CHECK(pool.cluster_stats().moved == 1);
  CHECK(names_port(pool.cluster_master_of(key), to));
  CHECK_THROWS_AS(get(capped, key), cachet::ClusterRedirectError);
  try {
    get(capped, key);
  } catch (const cachet::ClusterRedirectError& e) {
    CHECK(std::string(e.what()).find("slot " + std::to_string(slot)) != std::string::npos);
    CHECK(e.server_message().starts_with("MOVED " + std::to_string(slot)));
  }

  // MULTI/EXEC on a moved slot: EXEC aborts because the queued SET was MOVED; run() follows it.
  cluster.move_slot(slot, from);
  const auto moved_before = pool.cluster_stats().moved;
  const std::string value = "2";
  pool.run(key, [&](Connection& c) {
    cachet::ScriptBatch batch(c);
    batch.add({"SET", key, value});
    batch.atomically();
  });
  CHECK(pool.cluster_stats().moved == moved_before + 1);
  CHECK(cluster.node_at(from).connect().command({"GET", key}).as_string() == "2");

  // ASK: the slot migrates; a key already on the target is served there, the map unchanged.
  const std::string a = "{ask}a", b = "{ask}b";
  const int ask_slot = cluster.slot_of(a);
  const int ask_from = cluster.master_of(ask_slot), ask_to = other_master(cluster, ask_from);
  set(pool, a, "A");
  set(pool, b, "B");
  cluster.begin_migration(ask_slot, ask_to);
  REQUIRE(cluster.migrate_keys(ask_slot, 2) == 2);
  CHECK(get(pool, a) == "A");
  CHECK(pool.cluster_stats().ask == 1);
  CHECK(names_port(pool.cluster_master_of(a), ask_from));
  // ASK covers every command f sends there, not only the first: a script never
  // loaded on the target (SCRIPT LOAD, then EVALSHA), a pipeline, a MULTI block.
  const cachet::Script read_key("return redis.call('GET', KEYS[1])");
  CHECK(pool.run(a, [&](Connection& c) { return std::string(read_key.run(c, {a}).as_string()); }) == "A");
  CHECK(pool.run(a, [&](Connection& c) {
    c.append({"GET", a});
    c.append({"GET", b});
    const cachet::Reply ra = c.read_reply(), rb = c.read_reply();
    return std::string(ra.as_string()) + std::string(rb.as_string());
  }) == "AB");
  // A command after the MULTI block, on the same connection: each reply still
  // pairs with its command (the block's commands had no ASKING of their own).
  CHECK(pool.run(b, [&](Connection& c) {
    cachet::ScriptBatch batch(c);
    batch.add({"SET", b, "B2"});
    batch.add({"GET", a});
    batch.atomically();
    return std::string(c.command({"GET", a}).as_string());
  }) == "A");
  CHECK(get(pool, b) == "B2");
  // In a pipeline the ASK comes back in place; redirected() tells the caller to retry that key.
  {
    Connection source = cluster.node_at(ask_from).connect();
    source.append({"GET", a});
    const cachet::Reply r = source.read_reply();
    CHECK(cachet::redirected(r));
    const auto redirect = cachet::detail::parse_cluster_redirect(r.error_message(), "127.0.0.1");
    REQUIRE(redirect);
    CHECK(redirect->kind == cachet::detail::ClusterRedirect::ask);
    CHECK(redirect->to.port == ask_to);
  }
  cluster.end_migration(ask_slot);

  // TRYAGAIN: a multi-key command over a half-migrated slot; the migration
  // completes from the retry hook, after which the command follows MOVED and succeeds.
  const std::string t1 = "{try}a", t2 = "{try}b";
  const int try_slot = cluster.slot_of(t1);
  const int try_from = cluster.master_of(try_slot), try_to = other_master(cluster, try_from);
  set(pool, t1, "1");
  set(pool, t2, "2");
  cluster.begin_migration(try_slot, try_to);
  REQUIRE(cluster.migrate_keys(try_slot, 1) == 1);
  cachet::ClusterOptions hooked = slow;
  int retries = 0, completing = try_slot;
  hooked.on_retry = [&](const cachet::ReplyError& e) {
    if (retries++ != 0 || !e.is("TRYAGAIN")) return;
    while (cluster.migrate_keys(completing, 100) > 0) {
    }
    cluster.end_migration(completing);
  };
  Pool retrying(options_for(cluster, hooked));
  const auto both = retrying.run(t1, [&](Connection& c) {
    const cachet::Reply r = c.command({"MGET", t1, t2});
    return std::string(r[0].as_string()) + std::string(r[1].as_string());
  });
  CHECK(both == "12");
  CHECK(retries == 1);
  CHECK(retrying.cluster_stats().tryagain == 1);
  CHECK(retrying.cluster_stats().moved == 1);

  // The same in a batch: the key's TRYAGAIN reply is re-run through run(), which backs off.
  const std::string u1 = "{try2}a", u2 = "{try2}b";
  completing = cluster.slot_of(u1), retries = 0;
  set(pool, u1, "1");
  set(pool, u2, "2");
  cluster.begin_migration(completing, other_master(cluster, cluster.master_of(completing)));
  REQUIRE(cluster.migrate_keys(completing, 1) == 1);
  Pool batching(options_for(cluster, hooked));
  const std::vector<std::string_view> batch_keys{u1};
  const auto send_mget = [&](Connection& c, std::span<const std::size_t>, bool) { c.append({"MGET", u1, u2}); };
  const std::vector<cachet::Reply> mget = cachet::pipeline_by_node(batching, batch_keys, 1, send_mget, Idempotent::yes);
  REQUIRE(mget.size() == 1);
  REQUIRE_FALSE(mget[0].is_error());
  CHECK(std::string(mget[0][0].as_string()) + std::string(mget[0][1].as_string()) == "12");
  CHECK(batching.cluster_stats().tryagain == 1);

  // Traffic from 4 threads while a slot moves under it: redirections, no error.
  const int busy_slot = cluster.slot_of("{busy}");
  const int busy_from = cluster.master_of(busy_slot);
  Pool shared(options_for(cluster));
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, done{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t)
    workers.emplace_back([&, t] {
      for (int i = 0; !stop || i < 50; ++i) {
        const std::string k = "{busy}" + std::to_string(t) + ":" + std::to_string(i % 20);
        try {
          set(shared, k, std::to_string(i));
          if (get(shared, k) != std::to_string(i)) ++failures;
        } catch (const cachet::Error&) {
          ++failures;
        }
      }
      ++done;
    });
  cluster.move_slot(busy_slot, other_master(cluster, busy_from));
  stop = true;
  for (auto& w : workers) w.join();
  CHECK(done == 4);
  CHECK(failures == 0);
  CHECK(get(shared, "{busy}0:0").has_value());  // a MOVED here if no thread met one after the move
  CHECK(shared.cluster_stats().moved + shared.cluster_stats().ask >= 1);
}

TEST_CASE("a cluster pool rides out a manual failover and a killed master") {
  RedisCluster cluster;
  Pool pool(options_for(cluster));

  // CLUSTER FAILOVER: the old master answers MOVED (or READONLY); no command fails.
  const std::string key = "{fo}k";
  const int slot = cluster.slot_of(key);
  const int old_master = cluster.master_of(slot);
  set(pool, key, "1");
  cluster.failover(cluster.replicas_of(old_master).front());
  CHECK_NOTHROW(set(pool, key, "2"));
  cluster.wait_for_new_master(slot, old_master, 30s);
  CHECK_NOTHROW(set(pool, key, "3"));
  CHECK(get(pool, key) == "3");
  CHECK(pool.cluster_stats().moved + pool.cluster_stats().readonly >= 1);

  // SIGKILL: once the replica is promoted, writes resume within 5 s.
  const std::string killed_key = "{kill}k";
  const int killed_slot = cluster.slot_of(killed_key);
  set(pool, killed_key, "1");
  const int dead = cluster.kill_master_of(killed_slot);
  Pool stale(options_for(cluster));  // its map (most likely) still names the dead master
  cluster.wait_for_new_master(killed_slot, dead, 30s);
  // A batch whose node cannot be reached (nothing sent) is grouped again after a refresh.
  const std::vector<std::string_view> over_nodes{killed_key, key};
  const auto send_get = [&](Connection& c, std::span<const std::size_t> at, bool) {
    for (std::size_t i : at) c.append({"GET", over_nodes[i]});
  };
  const auto got = cachet::pipeline_by_node(stale, over_nodes, 1, send_get, Idempotent::yes);
  REQUIRE(got.size() == 2);
  CHECK(got[1].as_string() == "3");
  const auto promoted = std::chrono::steady_clock::now();
  bool written = false;
  while (!written && std::chrono::steady_clock::now() - promoted < 5s) {
    try {  // not idempotent: a connection broken mid-command is the caller's, a refused connect is retried
      pool.run(killed_key, [&](Connection& c) { c.command({"SET", killed_key, "2"}); }, Idempotent::no);
      written = true;
    } catch (const cachet::Error&) {  // the dead node, until the map is refreshed
      std::this_thread::sleep_for(20ms);
    }
  }
  CHECK(written);
  CHECK(get(pool, killed_key) == "2");
  // The dead master's errors outlive its pool, which the refreshed map dropped.
  pool.await_cluster_map(60s);
  CHECK(pool.cluster_stats().node_errors["127.0.0.1:" + std::to_string(dead)] >= 1);
}

TEST_CASE("a cluster pool drops the pool of a master that left once nothing runs on it") {
  RedisCluster cluster({.masters = 4, .replicas_per_master = 0});
  Pool pool(options_for(cluster));
  for (int i = 0; i < 400; ++i) set(pool, "k:" + std::to_string(i), "v" + std::to_string(i));
  REQUIRE(pool.cluster_masters().size() == 4);
  const int leaving = cluster.master_ports().back();
  const std::string node = "127.0.0.1:" + std::to_string(leaving);
  REQUIRE(pool_exported(node));

  // A Lease (keyless commands) and a command each hold a connection to the leaving master.
  const std::string leaving_id(cluster.node_at(leaving).connect().command({"CLUSTER", "MYID"}).as_string());
  std::vector<Pool::Lease> leases;
  for (int i = 0; i < 4; ++i) leases.push_back(pool.acquire());  // the masters in turn: one each
  const auto on_leaving = std::find_if(leases.begin(), leases.end(), [&](Pool::Lease& l) {
    return l->command({"CLUSTER", "MYID"}).as_string() == leaving_id;
  });
  REQUIRE(on_leaving != leases.end());
  std::optional<Pool::Lease> held(std::move(*on_leaving));
  leases.clear();
  cachet::test::Gate running, finish;
  std::string answer;  // the command's, once it finished (Catch2 checks only on the test's thread)
  cachet::test::Thread command([&, key = key_on(cluster, leaving)] {
    pool.run(key, [&](Connection& c) {
      running.arrive();
      if (!finish.wait_for(1, 120s)) return;
      answer = c.command({"PING"}).as_status();
    });
  });
  REQUIRE(running.wait_for(1, 120s));
  REQUIRE(pool.stats().in_use == 2);
  const std::uint64_t timed = pool.cluster_stats().node_latency[node].count;

  // Its slots go to the other masters; a refreshed map no longer names it: the
  // pool forgets it, and its node pool lives on for what holds a connection,
  // counted in stats() until it closes.
  cluster.drain_master(leaving);
  pool.await_cluster_map(60s);
  CHECK(pool.cluster_masters().size() == 3);
  CHECK(pool_exported(node));
  CHECK(pool.stats().in_use == 2);
  finish.arrive();
  command.join();
  CHECK(answer == "PONG");
  CHECK(pool_exported(node));  // the Lease alone holds it now
  CHECK(pool.stats().in_use == 1);
  CHECK((*held)->command({"PING"}).as_status() == "PONG");
  const std::uint64_t created = pool.stats().created;
  held.reset();
  CHECK_FALSE(pool_exported(node));  // the last hold let go of it: the pool forgot it
  CHECK(pool.stats().in_use == 0);
  CHECK(pool.stats().created == created);  // the closed pool's connections still counted
  CHECK(pool.cluster_stats().node_latency[node].count == timed + 1);  // the command, timed after the node left

  // It stops and is forgotten; every key is served by the other masters, and it does not come back.
  cluster.remove_node(leaving);
  bool all_read = true;
  for (int i = 0; i < 400; ++i) all_read = all_read && get(pool, "k:" + std::to_string(i)) == "v" + std::to_string(i);
  CHECK(all_read);
  int visits = 0;
  pool.for_each_master([&](Connection&) { ++visits; });
  CHECK(visits == 3);
  pool.await_cluster_map(60s);
  CHECK_FALSE(pool_exported(node));
  CHECK(pool.cluster_stats().node_errors.size() == 4);  // the departed address's count kept
}

TEST_CASE("a cluster pool reading from replicas drops the pool of a replica that left") {
  RedisCluster cluster;  // 3 masters, a replica each
  Pool pool(options_for(cluster, {.read_from_replicas = true}));
  const auto read = [&](const std::string& key) {  // the value, or "" while the replica lags
    return pool.read(key, [&](Connection& c) {
      const cachet::Reply r = c.command({"GET", key});
      return r.is_nil() ? std::string() : std::string(r.as_string());
    });
  };
  const int master = cluster.master_ports().front();
  const std::string key = key_on(cluster, master);
  set(pool, key, "v");
  read(key);  // on the master's one replica
  const int leaving = cluster.replicas_of(master).front();
  const std::string node = "127.0.0.1:" + std::to_string(leaving);
  REQUIRE(pool_exported(node));

  cluster.remove_node(leaving);
  pool.await_cluster_map(60s);
  CHECK_FALSE(pool_exported(node));
  CHECK(read(key) == "v");  // on the master now, which has no replica left
  CHECK_FALSE(pool_exported(node));
}

namespace {
struct StatsOnly {  // a node pool as its ledger sees it
  cachet::PoolStats figures;
  cachet::PoolStats stats() const { return figures; }
};
}  // namespace

TEST_CASE("per-address records fold departed addresses' figures into one total beyond a cap") {
  cachet::detail::NodeLedgers<StatsOnly> ledgers(2);
  StatsOnly serving{.figures = {.in_use = 1, .created = 5}};
  ledgers.at("10.0.0.1:6379").open.push_back(&serving);  // a node still open: never folded
  const auto departed = [&](int i) {  // an address whose pools all closed
    auto& ledger = ledgers.at("10.0.1." + std::to_string(i) + ":6379");
    ledger.errors += 1;
    ledger.latency.observe(1ms);
    ledger.closed.created += 2;
  };
  for (int i = 0; i < 3; ++i) departed(i);  // the cap: kept by address
  CHECK(ledgers.addresses() == 4);
  cachet::ClusterFigures kept;
  ledgers.add_to(kept);
  CHECK(kept.node_errors.size() == 4);
  CHECK_FALSE(kept.node_errors.contains("departed"));

  departed(3);  // its record made while three departed ones are more than the cap: those fold
  CHECK(ledgers.addresses() == 2);
  cachet::ClusterFigures folded;
  ledgers.add_to(folded);
  CHECK(folded.node_errors.size() == 3);
  CHECK(folded.node_errors["departed"] == 3);
  CHECK(folded.node_latency["departed"].count == 3);
  CHECK(folded.node_errors["10.0.1.3:6379"] == 1);
  CHECK(folded.node_errors["10.0.0.1:6379"] == 0);
  const cachet::PoolStats stats = ledgers.stats();
  CHECK(stats.created == 5 + 4 * 2);  // nothing lost: counters stay monotonic
  CHECK(stats.in_use == 1);

  // A folded address that comes back starts a new record; no sum goes back.
  ledgers.at("10.0.1.0:6379");
  cachet::ClusterFigures back;
  ledgers.add_to(back);
  CHECK(back.node_errors["10.0.1.0:6379"] == 0);
  CHECK(back.node_errors["departed"] == 3);
  CHECK(ledgers.stats().created == 5 + 4 * 2);

  for (int i = 4; i < 40; ++i) departed(i);  // churn: the records stay bounded
  CHECK(ledgers.addresses() <= 2 + 2);
  cachet::ClusterFigures churned;
  ledgers.add_to(churned);
  std::uint64_t errors = 0;
  for (const auto& entry : churned.node_errors) errors += entry.second;
  CHECK(errors == 40);
  CHECK(ledgers.stats().created == 5 + 40 * 2);
}
