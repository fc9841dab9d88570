#pragma once
// The nodes a cluster subscriber connects to, in turn: the seeds, then the
// nodes it learned from a node's CLUSTER SLOTS (masters and replicas: a classic
// PUBLISH reaches every one), so that it comes back when every seed is down but
// the cluster lives. The learned list is replaced by each answer that names a
// node, deduplicated and capped; a malformed answer leaves it as it was. Not
// thread-safe: one thread (the subscriber's) owns it.

#include <cachet/redis/detail/cluster_slot_map.hpp>
#include <cachet/redis/detail/endpoint.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/reply.hpp>

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet::detail {

class ClusterNodeRing {
 public:
  // Bounds what a huge (or hostile) answer can make the subscriber keep and try.
  static constexpr std::size_t max_learned = 64;

  explicit ClusterNodeRing(std::vector<Endpoint> seeds) : seeds_(std::move(seeds)) {}

  bool empty() const noexcept { return seeds_.empty() && learned_.empty(); }

  // The next node in turn (precondition: !empty()).
  const Endpoint& next() noexcept {
    const std::size_t i = next_++ % (seeds_.size() + learned_.size());
    return i < seeds_.size() ? seeds_[i] : learned_[i - seeds_.size()];
  }

  // `reply`: CLUSTER SLOTS asked of a node on `answering_host`. False, the list
  // unchanged, for an error, a malformed answer, or one naming no node.
  bool learn(ReplyView reply, std::string_view answering_host) {
    std::vector<Endpoint> fresh;
    try {
      const ClusterSlotMap map = ClusterSlotMap::from_slots_reply(reply, answering_host);
      if (map.shards().empty()) return false;  // a node not yet part of a cluster
      for (const auto& shard : map.shards()) add(fresh, shard.master);
      for (const auto& shard : map.shards())
        for (const Endpoint& replica : shard.replicas) add(fresh, replica);
    } catch (const ReplyError&) {  // e.g. an ACL without CLUSTER
      return false;
    } catch (const ProtocolError&) {
      return false;
    }
    learned_ = std::move(fresh);
    return true;
  }

  const std::vector<Endpoint>& learned() const noexcept { return learned_; }

 private:
  void add(std::vector<Endpoint>& to, const Endpoint& at) const {
    if (to.size() >= max_learned) return;
    const auto known = [&](const std::vector<Endpoint>& in) { return std::find(in.begin(), in.end(), at) != in.end(); };
    if (!known(seeds_) && !known(to)) to.push_back(at);
  }

  std::vector<Endpoint> seeds_;
  std::vector<Endpoint> learned_;
  std::size_t next_ = 0;
};

}  // namespace cachet::detail
