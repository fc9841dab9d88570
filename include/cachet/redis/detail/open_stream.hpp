#pragma once
// The transport a ConnectionOptions asks for: a socket, or TLS over one.

#include <cachet/redis/detail/socket_stream.hpp>
#include <cachet/redis/detail/stream.hpp>
#include <cachet/redis/detail/tls_stream.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>

#include <memory>

namespace cachet::detail {

// Connects by `deadline` (with TLS: the TCP connect and the handshake both);
// throws ConnectionError, TimeoutError or a TLS error naming the server.
inline std::unique_ptr<Stream> open_stream(const ConnectionOptions& o, Deadline deadline) {
  if (!o.tls.enabled) return SocketStream::connect(o, deadline);
  // Never plaintext when TLS was asked for; redis serves TLS over TCP only.
  if (o.uses_unix_socket())
    throw ConfigError("redis: ConnectionOptions::tls.enabled is set with a unix socket path (" + o.path +
                      "): TLS is for TCP connections (set host and port)");
  return std::make_unique<TlsStream>(SocketStream::connect(o, deadline), o, deadline);
}

}  // namespace cachet::detail
