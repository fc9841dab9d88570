#include <cachet/testing/redis_cluster.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <string>

using namespace std::chrono_literals;
using cachet::testing::RedisCluster;

namespace {
// MOVED or ASK: what a node answers for a key it does not serve.
std::string refusal(cachet::testing::RedisServer& node, const std::string& key) {
  try {
    node.connect().command({"GET", key});
    return "";
  } catch (const cachet::ReplyError& e) {
    return e.server_message();
  }
}
}  // namespace

TEST_CASE("a local cluster: 3 masters with a replica each, every slot served, gone with the object") {
  std::set<pid_t> pids;
  {
    RedisCluster cluster;
    REQUIRE(cluster.nodes().size() == 6);
    const auto masters = cluster.master_ports();
    CHECK(masters.size() == 3);
    for (int m : masters) CHECK(cluster.replicas_of(m).size() == 1);
    CHECK(cluster.seeds().size() == 6);
    for (const auto& n : cluster.nodes()) {
      CHECK(n->port() != 6379);
      CHECK(n->cluster_port() != n->port() + 10000);
      pids.insert(n->pid());
    }
    // CRC16 of the hash tag, the cluster's own answer (the test vector of the spec).
    CHECK(cluster.slot_of("123456789") == 0x31C3);
    CHECK(cluster.slot_of("user:{123456789}:name") == 0x31C3);
    // A key written through the master of its slot is read there and refused elsewhere.
    const int slot = cluster.slot_of("k");
    auto& owner = cluster.node_at(cluster.master_of(slot));
    owner.connect().command({"SET", "k", "v"});
    CHECK(owner.connect().command({"GET", "k"}).as_string() == "v");
    for (int m : masters)
      if (m != owner.port()) CHECK(refusal(cluster.node_at(m), "k").rfind("MOVED " + std::to_string(slot), 0) == 0);
    // A failover that does not come says so, with the slot and the port it did not leave.
    try {
      cluster.wait_for_new_master(slot, owner.port(), 300ms);
      FAIL("the slot moved without a failover");
    } catch (const cachet::Error& e) {
      CHECK_THAT(e.what(), Catch::Matchers::StartsWith("RedisCluster: slot " + std::to_string(slot) +
                                                       " did not leave port " + std::to_string(owner.port()) +
                                                       " (timed out"));
    }
  }
  for (pid_t pid : pids) CHECK(::kill(pid, 0) != 0);
}

TEST_CASE("a slot moved in steps: ASK while it migrates, MOVED once it has moved, the keys go with it") {
  RedisCluster cluster;
  const int slot = cluster.slot_of("{m}a");
  const int from = cluster.master_of(slot);
  int to = 0;
  for (int m : cluster.master_ports())
    if (m != from) to = m;
  for (const char* k : {"{m}a", "{m}b"}) cluster.node_at(from).connect().command({"SET", k, "1"});
  cluster.begin_migration(slot, to);
  CHECK(cluster.migrate_keys(slot, 1) == 1);  // one of the two keys has moved
  const bool a_moved = refusal(cluster.node_at(from), "{m}a").rfind("ASK", 0) == 0;
  const bool b_moved = refusal(cluster.node_at(from), "{m}b").rfind("ASK", 0) == 0;
  CHECK(a_moved != b_moved);
  while (cluster.migrate_keys(slot, 100) > 0) {
  }
  cluster.end_migration(slot);
  CHECK(cluster.master_of(slot) == to);
  CHECK(refusal(cluster.node_at(from), "{m}a").rfind("MOVED " + std::to_string(slot), 0) == 0);
  CHECK(cluster.node_at(to).connect().command({"GET", "{m}b"}).as_string() == "1");
}

TEST_CASE("a SIGKILLed master is replaced by its replica, and CLUSTER FAILOVER moves a master back") {
  RedisCluster cluster;
  const int slot = cluster.slot_of("x");
  const int old_master = cluster.master_of(slot);
  const int replica = cluster.replicas_of(old_master).front();
  CHECK(cluster.kill_master_of(slot) == old_master);
  CHECK(cluster.wait_for_new_master(slot, old_master, 60s) == replica);

  // The old master comes back (empty, as after a crash) as a replica of the new one.
  cluster.node_at(old_master).restart();
  cluster.wait_until_stable(60s);
  REQUIRE(cluster.replicas_of(replica) == std::vector<int>{old_master});
  const cachet::Reply kept = cluster.node_at(old_master).connect().command(
      {"CONFIG", "GET", "cluster-allow-replica-migration"});  // empty before Redis 7.0, which knows no such setting
  if (kept.size() == 2) CHECK(kept[1].as_string() == "no");  // the restart read it from redis.conf
  cluster.failover(old_master);
  CHECK(cluster.wait_for_new_master(slot, replica, 60s) == old_master);
}

TEST_CASE("scaling in: a drained master keeps running as a master, its replica moves over, then it leaves") {
  RedisCluster cluster;  // 3 masters, a replica each
  const int leaving = cluster.master_ports().back();
  const int replica = cluster.replicas_of(leaving).front();
  CHECK_THROWS_WITH(cluster.remove_node(leaving), Catch::Matchers::Contains("serves slots (drain_master first)"));

  cluster.drain_master(leaving);
  CHECK(cluster.master_ports().size() == 2);
  const cachet::Reply role = cluster.node_at(leaving).connect().command({"ROLE"});
  CHECK(role[0].as_string() == "master");  // not made a replica of the node that took its last slot
  CHECK(role[2].size() == 0);
  std::set<int> replicas;
  for (int m : cluster.master_ports())
    for (int r : cluster.replicas_of(m)) replicas.insert(r);
  CHECK(replicas.count(replica) == 1);  // still serving, as another master's replica

  cluster.remove_node(leaving);  // no "Can't forget my master!"
  CHECK_FALSE(cluster.node_at(leaving).running());
  CHECK(cluster.master_ports().size() == 2);
}
