#pragma once
// The per-address figures of a cluster client (a NodeLedger per address it made
// a node for), bounded: when a record is made for a new address while more than
// `departed_cap` addresses have no open pool, their counts are folded into one
// "departed" total, so that a cluster whose nodes come and go with new addresses
// (pods) grows no record and no series per address for good, and sums over the
// addresses never go back.

#include <cachet/metrics/cluster.hpp>
#include <cachet/redis/detail/cluster_node.hpp>

#include <cstddef>
#include <map>
#include <string>

namespace cachet::detail {

// Guarded by the topology's nodes mutex, as the ledgers' `open` and `closed` are.
template <class NodePool>
class NodeLedgers {
 public:
  static constexpr const char* departed_name = "departed";  // no "host:port" is
  static constexpr std::size_t default_departed_cap = 64;

  explicit NodeLedgers(std::size_t departed_cap = default_departed_cap) : departed_cap_(departed_cap) {}

  // The ledger of `name`, made if none. Only while nothing refers to a ledger
  // (no pool of it open: a ClusterNode lists its pool while it lives) may it fold.
  NodeLedger<NodePool>& at(const std::string& name) {
    if (!by_address_.contains(name)) fold_departed_beyond_cap();
    return by_address_[name];
  }

  // Per address, and "departed" once any was folded.
  void add_to(ClusterFigures& f) const {
    for (const auto& [name, ledger] : by_address_) record_into(f, name, ledger);
    f += departed_;
  }

  // Every open pool's figures and the closed ones' counters, the folded ones' included.
  PoolStats stats() const {
    PoolStats sum = departed_closed_;
    for (const auto& entry : by_address_) sum += entry.second.stats();
    return sum;
  }

  std::size_t addresses() const noexcept { return by_address_.size(); }

 private:
  void fold_departed_beyond_cap() {
    std::size_t departed = 0;
    for (const auto& entry : by_address_) departed += entry.second.open.empty();
    if (departed <= departed_cap_) return;
    for (auto it = by_address_.begin(); it != by_address_.end();)
      if (it->second.open.empty()) fold(it->second), it = by_address_.erase(it);
      else ++it;
  }

  void fold(const NodeLedger<NodePool>& ledger) {
    ClusterFigures one;
    record_into(one, departed_name, ledger);
    departed_ += one;
    departed_closed_ += ledger.closed;
  }

  static void record_into(ClusterFigures& f, const std::string& name, const NodeLedger<NodePool>& ledger) {
    f.node_errors[name] = ledger.errors;
    f.node_latency[name] = ledger.latency.snapshot();
  }

  std::size_t departed_cap_;
  std::map<std::string, NodeLedger<NodePool>> by_address_;
  ClusterFigures departed_;   // node_errors and node_latency of "departed" only, once any folded
  PoolStats departed_closed_;  // the folded addresses' closed pools' counters
};

}  // namespace cachet::detail
