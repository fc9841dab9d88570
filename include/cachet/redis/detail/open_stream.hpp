#pragma once
// The transport a ConnectionOptions asks for: a socket, or (later) TLS over one.

#include <cachet/redis/detail/socket_stream.hpp>
#include <cachet/redis/detail/stream.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>

#include <memory>

namespace cachet::detail {

// Connects by `deadline`; throws ConnectionError or TimeoutError naming the server.
inline std::unique_ptr<Stream> open_stream(const ConnectionOptions& o, Deadline deadline) {
  // Never plaintext when TLS was asked for.
  if (o.tls.enabled) throw ConfigError("redis: ConnectionOptions::tls.enabled is set, but this build has no TLS transport yet");
  return SocketStream::connect(o, deadline);
}

}  // namespace cachet::detail
