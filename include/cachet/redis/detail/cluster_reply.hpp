#pragma once
// What a Redis Cluster node's error reply asks of the client: follow a
// redirection (MOVED, ASK), wait and retry (TRYAGAIN, CLUSTERDOWN, LOADING),
// learn the new map (READONLY: a demoted master), or nothing (any other error).

#include <cachet/redis/detail/cluster_redirect.hpp>

#include <string_view>

namespace cachet::detail {

enum class ClusterAnswer { other, moved, ask, tryagain, clusterdown, loading, readonly };

inline ClusterAnswer classify_cluster_error(std::string_view message) noexcept {
  const std::string_view code = message.substr(0, message.find(' '));
  if (code == "MOVED") return ClusterAnswer::moved;
  if (code == "ASK") return ClusterAnswer::ask;
  if (code == "TRYAGAIN") return ClusterAnswer::tryagain;
  if (code == "CLUSTERDOWN") return ClusterAnswer::clusterdown;
  if (code == "LOADING") return ClusterAnswer::loading;
  if (code == "READONLY") return ClusterAnswer::readonly;
  return ClusterAnswer::other;
}

}  // namespace cachet::detail
