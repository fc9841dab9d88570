#pragma once
// One node of a Redis Cluster reached as a plain server: the subscribers
// (pub/sub, client tracking) hold a connection to a given node rather than
// going through a Pool's router.

#include <cachet/redis/detail/endpoint.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace cachet {

// `base` (TLS, user, password, timeouts) aimed at `host_port` ("host:port",
// a seed or a master the slot map names), its cluster options cleared.
inline ConnectionOptions node_options(ConnectionOptions base, std::string_view host_port) {
  auto at = detail::parse_endpoint(host_port, "");
  if (!at || at->host.empty())
    throw ConfigError("redis cluster: \"" + std::string(host_port) + "\" is not host:port (ClusterOptions::seeds)");
  base.cluster = {}, base.path.clear();
  base.host = std::move(at->host), base.port = at->port;
  return base;
}

}  // namespace cachet
