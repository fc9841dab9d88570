#pragma once
// How to reach a Redis server: address, credentials, database, timeouts.

#include <cachet/backoff.hpp>
#include <cachet/redis/cluster_options.hpp>
#include <cachet/redis/sentinel_options.hpp>
#include <cachet/redis/tls_options.hpp>

#include <chrono>
#include <cstddef>
#include <string>

namespace cachet {

struct ConnectionOptions {
  // TCP address; ignored when `path` is set.
  std::string host = "127.0.0.1";
  int port = 6379;
  // Unix domain socket path; when non-empty the connection uses it instead of TCP.
  std::string path{};
  // With a master name set, the address comes from these sentinels instead (docs/sentinel.md).
  SentinelOptions sentinel{};
  // With seeds set, a Pool spreads keys over this Redis Cluster (docs/cluster.md).
  ClusterOptions cluster{};

  // AUTH: with `user` set, ACL style `AUTH user password`; otherwise `AUTH password`
  // when `password` is non-empty.
  std::string user{};
  std::string password{};
  int db = 0;               // SELECT, sent only when non-zero
  std::string client_name{};  // CLIENT SETNAME, sent only when non-empty

  // Zero means "no timeout" (block for as long as the OS lets the call block).
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{1000};
  // TLS over the TCP connection (not for unix sockets).
  TlsOptions tls{};
  // A reply (its bytes plus what the parser allocates for its arrays, ~56 bytes
  // per element, nested ones added up; or the unread input) larger than this is a ProtocolError and the
  // connection is dropped: a hostile or broken peer cannot make cachet allocate
  // without bound. Redis' own proto-max-bulk-len defaults to 512 MiB.
  std::size_t max_reply_bytes = std::size_t{512} << 20;

  // TCP keepalive: probes after 15 s idle, then every 5 s, 3 of them (hiredis' values).
  bool keepalive = true;

  // SIGPIPE's default action kills the process when a server closes a socket we
  // write to; if SIGPIPE is still at its default, cachet installs an empty handler
  // (writes then fail with EPIPE). Turn off to manage SIGPIPE yourself.
  bool handle_sigpipe = true;

  // Pacing of reconnection attempts after a failed connect: capped at 100 ms, so
  // that a client is back within about that of the server answering again.
  BackoffOptions reconnect{.max = std::chrono::milliseconds(100)};

  bool uses_unix_socket() const noexcept { return !path.empty() && !sentinel.enabled(); }
  // The server as messages and metrics name it: the socket's path, or host:port.
  // Through Sentinel: "sentinel:<master name>".
  std::string endpoint() const {
    if (sentinel.enabled()) return "sentinel:" + sentinel.master_name;
    return uses_unix_socket() ? path : host + ":" + std::to_string(port);
  }
};

}  // namespace cachet
