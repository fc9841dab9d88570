#pragma once
// Which node serves each of the 16384 slots, from CLUSTER SLOTS, and updated
// slot by slot as MOVED redirections arrive. A malformed answer is a
// ProtocolError (nothing a server sends may crash the client); a slot no range
// covers is unserved (nullptr), as in a cluster that is down for it.

#include <cachet/redis/detail/endpoint.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/reply.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cachet::detail {

inline constexpr int cluster_slots = 16384;

class ClusterSlotMap {
 public:
  struct Shard {
    Endpoint master;
    std::vector<Endpoint> replicas;  // those with a known endpoint
  };

  ClusterSlotMap() { owner_.fill(-1); }

  // `answering_host`: the host of the node asked, for endpoints it leaves empty.
  // A node whose endpoint is unknown ("?") is left out: its range stays unserved.
  static ClusterSlotMap from_slots_reply(ReplyView reply, std::string_view answering_host) {
    reply.throw_if_error();  // e.g. a node without cluster support: the server's own error
    ClusterSlotMap map;
    try {
      if (!reply.is_array()) throw ProtocolError("CLUSTER SLOTS: not an array");
      for (const auto range : reply) map.add_range(range, answering_host);
    } catch (const ReplyTypeError& e) {
      throw ProtocolError(std::string("CLUSTER SLOTS: malformed answer: ") + e.what());
    } catch (const ReplyError& e) {  // an error nested in the answer
      throw ProtocolError(std::string("CLUSTER SLOTS: malformed answer: ") + e.what());
    }
    return map;
  }

  const Shard* shard_of(std::uint16_t slot) const noexcept {
    const int i = slot < cluster_slots ? owner_[slot] : -1;
    return i < 0 ? nullptr : &shards_[static_cast<std::size_t>(i)];
  }
  const std::vector<Shard>& shards() const noexcept { return shards_; }

  // MOVED: `slot` is served by `master` from now on.
  void move_slot(std::uint16_t slot, const Endpoint& master) {
    if (slot >= cluster_slots) return;
    owner_[slot] = static_cast<std::int16_t>(shard_index(master));
  }

  bool covers_all() const noexcept {
    for (auto owner : owner_)
      if (owner < 0) return false;
    return true;
  }

 private:
  void add_range(ReplyView range, std::string_view answering_host) {
    if (range.size() < 3) throw ProtocolError("CLUSTER SLOTS: a range without a master");
    const long long first = range[0].as_integer(), last = range[1].as_integer();
    if (first < 0 || last >= cluster_slots || first > last)
      throw ProtocolError("CLUSTER SLOTS: slot range " + std::to_string(first) + "-" + std::to_string(last));
    const auto master = node(range[2], answering_host);
    if (!master) return;
    const int index = shard_index(*master);
    for (std::size_t i = 3; i < range.size(); ++i)
      if (auto replica = node(range[i], answering_host)) add_replica(shards_[static_cast<std::size_t>(index)], *replica);
    for (long long slot = first; slot <= last; ++slot) {
      if (owner_[static_cast<std::size_t>(slot)] >= 0)
        throw ProtocolError("CLUSTER SLOTS: slot " + std::to_string(slot) + " in two ranges");
      owner_[static_cast<std::size_t>(slot)] = static_cast<std::int16_t>(index);
    }
  }

  // [host, port, id?, metadata?]; nullopt for an unknown endpoint ("?"). A nil
  // or empty host (cluster-preferred-endpoint-type unknown-endpoint) is the host asked.
  static std::optional<Endpoint> node(ReplyView n, std::string_view answering_host) {
    if (n.size() < 2) throw ProtocolError("CLUSTER SLOTS: a node without host and port");
    const std::string_view host = n[0].as_optional_string().value_or(std::string_view{});
    const long long port = n[1].as_integer();
    if (port < 1 || port > 65535) throw ProtocolError("CLUSTER SLOTS: port " + std::to_string(port));
    if (host == "?") return std::nullopt;
    if (!printable_host(host)) throw ProtocolError("CLUSTER SLOTS: a host that is not printable ASCII");
    return Endpoint{std::string(host.empty() ? answering_host : host), static_cast<int>(port)};
  }

  static void add_replica(Shard& shard, const Endpoint& replica) {
    for (const auto& r : shard.replicas)
      if (r == replica) return;
    shard.replicas.push_back(replica);
  }

  int shard_index(const Endpoint& master) {
    for (std::size_t i = 0; i < shards_.size(); ++i)
      if (shards_[i].master == master) return static_cast<int>(i);
    if (shards_.size() >= cluster_slots) throw ProtocolError("CLUSTER SLOTS: more masters than slots");
    shards_.push_back({master, {}});
    return static_cast<int>(shards_.size() - 1);
  }

  std::vector<Shard> shards_;
  std::array<std::int16_t, cluster_slots> owner_;
};

}  // namespace cachet::detail
