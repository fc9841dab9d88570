#pragma once
// A cluster node as ClusterTopology keeps it: its address and its pool, and
// the figures of its address (NodeLedger), which outlive it. A node leaves when
// a reloaded map no longer names it, its pool closes with the last hold; the
// ledger keeps that address's error count, latency and the closed pools'
// counters, so that per-node series and Pool::stats() never go back (beyond a
// cap, departed ones are folded into one, detail/cluster_ledgers.hpp), and it
// lists the pools of that address still open, a departed one held by a Lease
// among them, which Pool::stats() counts until they close.

#include <cachet/metrics/histogram.hpp>
#include <cachet/redis/detail/endpoint.hpp>
#include <cachet/redis/pool_options.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace cachet::detail {

// One address's figures, over every node (and pool) it had. The atomics count
// freely; `open` and `closed` change under the topology's nodes mutex.
template <class NodePool>
struct NodeLedger {
  std::atomic<std::uint64_t> errors{0};
  LatencyHistogram latency;  // of the commands sent there (ClusterRouter)
  std::vector<const NodePool*> open;  // its pools alive now: the current one, and any departed ones still held
  PoolStats closed;                    // the closed pools' counters (no connection is in use or idle in one)

  // The open pools' figures and the closed ones' counters.
  PoolStats stats() const {
    PoolStats sum = closed;
    for (const NodePool* pool : open) sum += pool->stats();
    return sum;
  }
};

template <class NodePool>
struct ClusterNode {
  // Registered in `ledger.open` by the caller, under `mutex`.
  ClusterNode(Endpoint address, std::string label, std::unique_ptr<NodePool> its_pool, NodeLedger<NodePool>& its_ledger,
              std::mutex& ledger_mutex) noexcept
      : at(std::move(address)),
        name(std::move(label)),
        pool(std::move(its_pool)),
        errors(its_ledger.errors),
        latency(its_ledger.latency),
        ledger_(its_ledger),
        mutex_(ledger_mutex) {}
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;
  // Must not run under `mutex`; the pool closes after (it unregisters its metrics, and a scrape may read ours).
  ~ClusterNode() {
    std::lock_guard lock(mutex_);
    std::erase(ledger_.open, pool.get());
    PoolStats last = pool->stats();
    last.in_use = last.idle = last.waiting = 0;
    ledger_.closed += last;
  }

  const Endpoint at;
  const std::string name;  // "host:port", its pool's metrics label
  const std::unique_ptr<NodePool> pool;
  std::atomic<std::uint64_t>& errors;  // the ledger's
  LatencyHistogram& latency;           // the ledger's

 private:
  NodeLedger<NodePool>& ledger_;
  std::mutex& mutex_;
};

}  // namespace cachet::detail
