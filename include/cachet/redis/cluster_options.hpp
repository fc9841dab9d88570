#pragma once
// Reaching a Redis Cluster: the seed nodes to learn the slot map from, and how
// redirections and refreshes are paced. See docs/cluster.md.

#include <cachet/redis/errors.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace cachet {

struct ClusterOptions {
  // "host:port" of some nodes, asked in order for the slot map (CLUSTER SLOTS);
  // empty: not a cluster, ConnectionOptions::host/port/path are used. Every node
  // is reached with the rest of ConnectionOptions (TLS, user, password, timeouts).
  std::vector<std::string> seeds{};
  // MOVED/ASK followed per command before it fails with ClusterRedirectError.
  int max_redirects = 5;
  // TRYAGAIN, CLUSTERDOWN and LOADING are retried, with jittered back-off, for this long.
  std::chrono::milliseconds retry_within{2'000};
  // At most one slot-map refresh per interval (a MOVED updates its slot at once).
  std::chrono::milliseconds refresh_min_interval{100};
  // A refresh this often even when nothing redirected: a backstop.
  std::chrono::milliseconds refresh_period{60'000};
  // Reads of cache entries (RedisStore's get_lent, get_many_lent) go to a
  // replica of the key's master, taken in turn, when the slot map knows one;
  // to the master when it does not, or when the replica cannot be reached or
  // redirects. Off by default: a replica lags, so a read may miss a write just
  // made. Never for writes, scripts, reads that renew a TTL, counters, versions
  // and fences (get, get_many), or the in-process tier's fills.
  // (A node's own connections carry it with no seeds: they send READONLY.)
  bool read_from_replicas = false;
  // Called on the command's thread before each back-off of a TRYAGAIN,
  // CLUSTERDOWN, LOADING or READONLY retry, with that reply (logging, tests).
  std::function<void(const ReplyError&)> on_retry{};

  bool enabled() const noexcept { return !seeds.empty(); }
};

}  // namespace cachet
