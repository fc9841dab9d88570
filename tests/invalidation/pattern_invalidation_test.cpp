#include <cachet/keys.hpp>
#include <cachet/invalidation/pattern_invalidation.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

// DEBUG POPULATE fills one node whatever the slots; the SCAN count is the one server's.
TEST_CASE("invalidate_matching removes exactly the matching keys in SCAN batches, never with KEYS", "[single-server]") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const cachet::KeyBuilder keys("shop");
  const std::string pattern = keys.pattern("product");  // shop:product:*
  conn.command({"DEBUG", "POPULATE", 5000, "shop:product"});  // shop:product:0 ... :4999
  conn.command({"DEBUG", "POPULATE", 300, "shop:productx"});  // shares the prefix, not the name
  conn.command({"SET", "shop:category:1", "x"});
  conn.command({"CONFIG", "RESETSTAT"});

  std::vector<std::pair<std::size_t, std::size_t>> progress;
  const std::size_t deleted = cachet::invalidate_matching(
      pool, pattern, {.batch = 500, .on_progress = [&](std::size_t m, std::size_t d) { progress.emplace_back(m, d); }});

  CHECK(deleted == 5000);
  CHECK(conn.command({"DBSIZE"}).as_integer() == 301);
  CHECK(cachet::test::command_calls(conn, "keys") == 0);
  CHECK(cachet::test::command_calls(conn, "scan") > 5);
  REQUIRE(progress.size() > 5);  // reported batch by batch
  for (std::size_t i = 1; i < progress.size(); ++i) {
    CHECK(progress[i].first >= progress[i - 1].first);
    CHECK(progress[i].second >= progress[i - 1].second);
  }
  CHECK(progress.back().second == 5000);
  CHECK(cachet::invalidate_matching(pool, pattern) == 0);
}

TEST_CASE("glob metacharacters in a name match only themselves") {
  auto& target = cachet::test::clean_target();
  cachet::Pool pool(target.connection_options());
  auto conn = target.connect();
  const cachet::KeyBuilder keys("shop");
  conn.command({"SET", keys.value("p[1]*", "1"), "x"});
  conn.command({"SET", keys.value("p1", "1"), "x"});
  conn.command({"SET", keys.value("p1x", "1"), "x"});
  CHECK(cachet::invalidate_matching(pool, keys.pattern("p[1]*")) == 1);
  CHECK(conn.key_count() == 2);
}

// One server's latency under a long invalidation, filled by DEBUG POPULATE.
// A PING waits for at most the command the server is running, so the server's
// own timing of each command is the bound. That timing is wall time, which on
// this busy machine also counts the server being descheduled: so each UNLINK's
// work is bounded by its batch, the mean by 5 ms, and the 10 ms reached by at
// most 1 % of commands (removing it in one UNLINK fails all three).
TEST_CASE("1M keys removed by pattern while a second connection PINGs: one batch per UNLINK, 10 ms reached by at most 1 % of commands",
          "[single-server]") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  auto admin = server.connect();
  constexpr long long total = 1'000'000;
  constexpr long long batch = 1000;
  admin.command({"DEBUG", "POPULATE", total, "bulk"});  // server-side fill: bulk:0 ... bulk:999999
  REQUIRE(admin.command({"DBSIZE"}).as_integer() == total);
  admin.command({"CONFIG", "SET", "slowlog-log-slower-than", "10000"});
  admin.command({"SLOWLOG", "RESET"});
  admin.command({"CONFIG", "RESETSTAT"});

  std::atomic<bool> done{false};
  std::chrono::steady_clock::duration worst{};
  long pings = 0;
  cachet::test::Thread pinger([&] {
    auto conn = cachet::test::connect(server);
    while (!done.load()) {
      const auto sent = std::chrono::steady_clock::now();
      conn.command({"PING"});
      worst = std::max(worst, std::chrono::steady_clock::now() - sent);
      ++pings;
    }
  });
  std::size_t deleted = 0;
  try {
    deleted = cachet::invalidate_matching(pool, "bulk:*", {.batch = batch});
  } catch (...) {
    done = true;
    pinger.join();
    throw;
  }
  done = true;
  pinger.join();

  // The client's round trips count this machine's scheduling too: reported, not judged.
  const auto worst_us = std::chrono::duration_cast<std::chrono::microseconds>(worst).count();
  INFO(pings << " PINGs, the slowest " << worst_us << " us");
  CHECK(deleted == static_cast<std::size_t>(total));
  CHECK(admin.command({"DBSIZE"}).as_integer() == 0);
  CHECK(pings > 100);  // served between the batches
  const long long unlinks = cachet::test::command_calls(admin, "unlink");
  const long long scans = cachet::test::command_calls(admin, "scan");
  CHECK(unlinks * 2 * batch >= total);  // each UNLINK one SCAN page: about a batch of keys (COUNT is a hint)
  const std::string stats = admin.command({"INFO", "commandstats"}).as_string();
  const auto usec_at = stats.find("usec=", stats.find("cmdstat_unlink:"));
  REQUIRE(usec_at != std::string::npos);
  const long long unlink_usec = std::stoll(stats.substr(usec_at + 5));
  INFO("UNLINK: " << unlinks << " calls, " << unlink_usec << " us in all");
  CHECK(unlink_usec / std::max(unlinks, 1LL) < 5000);
  const cachet::Reply slow = admin.command({"SLOWLOG", "GET", "10"});
  std::string slowest;
  for (cachet::ReplyView entry : slow)
    slowest += std::string(entry[3][0].as_string()) + " took " + std::to_string(entry[2].as_integer()) + " us; ";
  INFO("slower than 10 ms: " << slowest);
  CHECK(admin.command({"SLOWLOG", "LEN"}).as_integer() * 100 <= unlinks + scans);
}

namespace {

// Keys shop:product:{g<j>}:<i>, 20 per group, groups added until every master holds one.
std::vector<std::string> grouped_keys(cachet::Pool& pool, cachet::test::Client& conn, std::size_t masters) {
  std::vector<std::string> keys;
  std::set<std::string> holding;
  for (int j = 0; holding.size() < masters; ++j) {
    const std::string group = "shop:product:{g" + std::to_string(j) + "}:";
    holding.insert(pool.cluster_master_of(group));
    for (int i = 0; i < 20; ++i) keys.push_back(group + std::to_string(i));
  }
  for (const std::string& k : keys) conn.command({"SET", k, "x"});
  return keys;
}

// The first master scanned has lost all its keys: moves the slot of a surviving
// key (on a master not scanned yet) there.
void move_unscanned_slot_to_scanned(cachet::testing::RedisCluster& cluster, cachet::Pool& pool,
                                    cachet::test::Client& conn, const std::vector<std::string>& keys) {
  std::map<std::string, int> survivors;  // master -> keys still there
  std::string survivor;
  for (const std::string& k : keys) {
    const bool there = conn.command({"EXISTS", k}).as_integer() == 1;
    survivors[pool.cluster_master_of(k)] += there ? 1 : 0;
    if (there) survivor = k;
  }
  const auto scanned = std::find_if(survivors.begin(), survivors.end(), [](const auto& m) { return m.second == 0; });
  if (scanned == survivors.end() || survivor.empty()) throw std::runtime_error("no master scanned on its own yet");
  const int port = std::stoi(scanned->first.substr(scanned->first.rfind(':') + 1));
  cluster.move_slot(cluster.slot_of(survivor), port);
}

}  // namespace

TEST_CASE("a slot moved mid-scan from a master not yet scanned to one already scanned keeps none of its keys",
          "[cluster-only]") {
  auto& target = cachet::test::clean_target();
  cachet::Pool pool(target.connection_options());
  auto conn = target.connect();
  const auto keys = grouped_keys(pool, conn, target.redis_cluster().master_ports().size());
  conn.command({"SET", "shop:category:1", "x"});

  int progress_calls = 0;
  // One SCAN page per master (COUNT above its key count): the first call is the first master done.
  const auto hook = [&](std::size_t, std::size_t) {
    if (progress_calls++ == 0) move_unscanned_slot_to_scanned(target.redis_cluster(), pool, conn, keys);
  };
  const std::size_t deleted = cachet::invalidate_matching(pool, "shop:product:*", {.batch = 100'000, .on_progress = hook});

  CHECK(progress_calls > 3);  // a second pass ran
  CHECK(deleted == keys.size());
  std::size_t left = 0;
  for (const std::string& k : keys) left += static_cast<std::size_t>(conn.command({"EXISTS", k}).as_integer());
  CHECK(left == 0);
  CHECK(conn.key_count() == 1);
}

// The pool's map is left behind: its master of one group's slot is demoted and
// then made a replica of another master, so it holds none of that slot's keys.
// A cluster of its own: it needs replicas, and leaves the roles rearranged.
TEST_CASE("a pool whose map is behind a failover scans the new master, not the demoted one", "[cluster-only]") {
  cachet::testing::RedisCluster cluster({.replicas_per_master = 1});
  cachet::ConnectionOptions redis = cluster.client_options();
  redis.cluster.refresh_period = 1h;  // no backstop refresh may catch the map up meanwhile
  cachet::Pool pool(redis);
  cachet::test::Client conn(redis);
  const auto keys = grouped_keys(pool, conn, cluster.master_ports().size());  // loads the pool's map
  const int slot = cluster.slot_of(keys.front());
  const int demoted = cluster.master_of(slot);
  const std::vector<int> replicas = cluster.replicas_of(demoted);
  REQUIRE(!replicas.empty());
  cluster.failover(replicas.front());
  const int promoted = cluster.wait_for_new_master(slot, demoted, 60s);
  int other = 0;
  for (int port : cluster.master_ports())
    if (port != promoted) other = port;
  auto node = [&](int port) {
    for (const auto& n : cluster.nodes())
      if (n->port() == port) return n->connect();
    throw std::runtime_error("no node on port " + std::to_string(port));
  };
  const std::string other_id(node(other).command({"CLUSTER", "MYID"}).as_string());
  node(demoted).command({"CLUSTER", "REPLICATE", other_id});
  cluster.wait_until_stable(60s);
  REQUIRE(pool.cluster_master_of(keys.front()) == "127.0.0.1:" + std::to_string(demoted));  // still behind

  const std::size_t deleted = cachet::invalidate_matching(pool, "shop:product:*", {.batch = 100'000});

  CHECK(deleted == keys.size());
  std::size_t left = 0;
  for (const std::string& k : keys) left += static_cast<std::size_t>(conn.command({"EXISTS", k}).as_integer());
  CHECK(left == 0);
}
