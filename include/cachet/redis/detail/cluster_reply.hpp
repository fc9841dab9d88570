#pragma once
// What a Redis Cluster node's error reply asks of the client: follow a
// redirection (MOVED, ASK), wait and retry (TRYAGAIN, CLUSTERDOWN, LOADING),
// learn the new map (READONLY: a demoted master), or nothing (any other error).

#include <cachet/redis/detail/cluster_redirect.hpp>
#include <cachet/redis/reply.hpp>

#include <optional>
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

// The MOVED or ASK that a reply read from a pipeline (Pool::run_grouped) is:
// that command did not run, and the caller retries its key with Pool::run().
inline std::optional<ClusterRedirect> redirect_of(ReplyView reply, std::string_view answering_host = {}) {
  if (!reply.is_error()) return std::nullopt;
  return parse_cluster_redirect(reply.error_message(), answering_host);
}

}  // namespace cachet::detail
