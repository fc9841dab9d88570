#pragma once
// One node of a Redis Cluster reached as a plain server: the subscribers
// (pub/sub, client tracking) hold a connection to a given node rather than
// going through a Pool's router, and the router's node pools are made the same way.

#include <cachet/redis/detail/endpoint.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

// `host_port` ("host:port": a seed, or a node the slot map names) parsed; a
// ConfigError naming `what` it is and the text otherwise.
inline detail::Endpoint node_endpoint(std::string_view host_port, std::string_view what = "seed") {
  auto at = detail::parse_endpoint(host_port, "");
  if (!at || at->host.empty())
    throw ConfigError("redis cluster: " + std::string(what) + " \"" + std::string(host_port) +
                      "\" is not host:port (ClusterOptions::seeds)");
  return std::move(*at);
}

// Every seed of `cluster` parsed, in order (node_endpoint's ConfigError for a bad one).
inline std::vector<detail::Endpoint> seed_endpoints(const ClusterOptions& cluster) {
  std::vector<detail::Endpoint> seeds;
  for (const std::string& seed : cluster.seeds) seeds.push_back(node_endpoint(seed));
  return seeds;
}

// `base` (TLS, user, password, timeouts) for one node: its cluster options and unix socket cleared.
inline ConnectionOptions single_node(ConnectionOptions base) {
  base.cluster = {}, base.path.clear();
  return base;
}

// `base` aimed at the node at `at`, as a single node.
inline ConnectionOptions node_options(ConnectionOptions base, detail::Endpoint at) {
  base = single_node(std::move(base));
  base.host = std::move(at.host), base.port = at.port;
  return base;
}

// `base` aimed at `host_port`, as a single node.
inline ConnectionOptions node_options(ConnectionOptions base, std::string_view host_port,
                                      std::string_view what = "seed") {
  return node_options(std::move(base), node_endpoint(host_port, what));
}

}  // namespace cachet
