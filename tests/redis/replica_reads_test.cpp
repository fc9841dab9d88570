// ClusterOptions::read_from_replicas: the policies' reads of cache entries
// (RedisStore's get_lent, get_many_lent) are answered by replicas; writes, reads
// that renew a TTL, and get/get_many (counters, versions, fences) stay on the
// masters; a replica that dies hands its reads back to the master.
#include <cachet/redis/pool.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/testing/redis_cluster.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using cachet::testing::RedisCluster;

namespace {

cachet::ConnectionOptions options_for(const RedisCluster& cluster, bool replicas) {
  cachet::ConnectionOptions options = cluster.client_options();
  options.cluster.read_from_replicas = replicas;
  return options;
}

// How many times the replicas ran `command` (lower case) since they started.
long long replica_calls(const RedisCluster& cluster, const std::string& command) {
  long long calls = 0;
  for (int master : cluster.master_ports())
    for (int port : cluster.replicas_of(master)) {
      const std::string stats(cluster.node_at(port).connect().command({"INFO", "commandstats"}).as_string());
      const std::string tag = "cmdstat_" + command + ":calls=";
      if (const auto at = stats.find(tag); at != std::string::npos) calls += std::stoll(stats.substr(at + tag.size()));
    }
  return calls;
}

// Every master's writes so far are on its replicas.
void replicated(const RedisCluster& cluster) {
  for (int master : cluster.master_ports())
    REQUIRE(cluster.node_at(master).connect().command({"WAIT", "1", "10000"}).as_integer() == 1);
}

}  // namespace

TEST_CASE("read_from_replicas sends plain reads to replicas, the rest to masters, and survives a dead replica") {
  RedisCluster cluster;  // 3 masters, a replica each
  cachet::Pool to_replicas(options_for(cluster, true));
  cachet::Pool to_masters(options_for(cluster, false));
  cachet::RedisStore store(to_replicas);

  std::vector<std::string> keys;
  for (int i = 0; i < 30; ++i) keys.push_back("rr:" + std::to_string(i));
  for (const auto& k : keys) store.set(k, "v-" + k, 1h);
  replicated(cluster);

  // The default pool reads from masters only.
  const long long before = replica_calls(cluster, "get");
  CHECK(cachet::RedisStore(to_masters).get(keys[0]) == "v-" + keys[0]);
  CHECK(replica_calls(cluster, "get") == before);

  // get_lent and get_many_lent: answered by replicas.
  CHECK(store.get_lent(keys[0]).value() == "v-" + keys[0]);
  CHECK(replica_calls(cluster, "get") == before + 1);
  const std::vector<std::string_view> views(keys.begin(), keys.end());
  const cachet::LentBytes values = store.get_many_lent(views);
  REQUIRE(values.size() == keys.size());
  bool all = true;
  for (std::size_t i = 0; i < keys.size(); ++i) all = all && values[i] == "v-" + keys[i];
  CHECK(all);
  const long long after_reads = before + 1 + static_cast<long long>(keys.size());
  CHECK(replica_calls(cluster, "get") == after_reads);

  // get and get_many (counters, versions, fences): from the masters.
  CHECK(store.get(keys[0]) == "v-" + keys[0]);
  CHECK(store.get_many(views).size() == keys.size());
  CHECK(replica_calls(cluster, "get") == after_reads);

  // A read that renews the TTL writes: on the master.
  CHECK(store.get_and_touch(keys[1], 2h) == "v-" + keys[1]);
  CHECK(replica_calls(cluster, "getex") == 0);

  // A replica killed: its reads go to the master, without an error.
  const int master = cluster.master_of(cluster.slot_of(keys[2]));
  for (int replica : cluster.replicas_of(master)) cluster.node_at(replica).kill();
  CHECK(store.get_lent(keys[2]).value() == "v-" + keys[2]);
  const cachet::LentBytes again = store.get_many_lent(views);
  all = again.size() == keys.size();
  for (std::size_t i = 0; all && i < keys.size(); ++i) all = again[i] == "v-" + keys[i];
  CHECK(all);
}
