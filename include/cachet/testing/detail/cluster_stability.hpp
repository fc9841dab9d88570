#pragma once
// When RedisCluster calls a cluster stable: every live node reports
// cluster_state:ok, all agree on the slot map, which names every live node (a
// drained master, serving no slot, aside), and every replica's link to its
// master is up.

#include <cachet/error.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/testing/detail/cluster_slots.hpp>
#include <cachet/testing/redis_server.hpp>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace cachet::detail {

// A running node that `ranges` name neither as a master nor as a replica (e.g.
// a replica whose CLUSTER REPLICATE has not reached every node), or 0.
inline int first_unlisted_live_node(const std::vector<SlotRange>& ranges,
                                    const std::vector<std::unique_ptr<testing::RedisServer>>& nodes,
                                    const std::set<int>& drained) {
  std::set<int> listed(drained);
  for (const auto& r : ranges) {
    listed.insert(r.master);
    listed.insert(r.replicas.begin(), r.replicas.end());
  }
  for (const auto& n : nodes)
    if (n->running() && !listed.count(n->port())) return n->port();
  return 0;
}

// Why the cluster of `nodes` is not stable yet, or empty when it is; `drained`:
// the ports of the running masters that serve no slot.
inline std::string unstable_reason(const std::vector<std::unique_ptr<testing::RedisServer>>& nodes,
                                   const std::set<int>& drained) {
  std::optional<std::vector<SlotRange>> agreed;
  for (const auto& n : nodes) {
    if (!n->running()) continue;
    const std::string where = "node " + std::to_string(n->port()) + ": ";
    try {
      Connection c = n->connect();
      if (std::string(c.command({"CLUSTER", "INFO"}).as_string()).find("cluster_state:ok") == std::string::npos)
        return where + "cluster_state is not ok";
      const std::string replication(c.command({"INFO", "replication"}).as_string());
      if (replication.find("role:slave") != std::string::npos &&
          replication.find("master_link_status:up") == std::string::npos)
        return where + "replica's link to its master is down";
      auto ranges = parse_slot_ranges(c.command({"CLUSTER", "SLOTS"}));
      if (!covers_all_slots(ranges)) return where + "not every slot is served";
      if (const int missing = first_unlisted_live_node(ranges, nodes, drained))
        return where + "does not list node " + std::to_string(missing) + " yet";
      if (!agreed) agreed = std::move(ranges);
      else if (ranges != *agreed) return where + "disagrees on the slot map";
    } catch (const Error& e) {
      return where + e.what();
    }
  }
  return agreed ? std::string{} : "no node is running";
}

}  // namespace cachet::detail
