#pragma once
// How to reach a Redis server: address, credentials, database, timeouts.

#include <cachet/backoff.hpp>

#include <chrono>
#include <string>

namespace cachet {

struct ConnectionOptions {
  // TCP address; ignored when `path` is set.
  std::string host = "127.0.0.1";
  int port = 6379;
  // Unix domain socket path; when non-empty the connection uses it instead of TCP.
  std::string path{};

  // AUTH: with `user` set, ACL style `AUTH user password`; otherwise `AUTH password`
  // when `password` is non-empty.
  std::string user{};
  std::string password{};
  int db = 0;               // SELECT, sent only when non-zero
  std::string client_name{};  // CLIENT SETNAME, sent only when non-empty

  // Zero means "no timeout" (block for as long as the OS lets the call block).
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{1000};
  // TCP keepalive probes (hiredis 0.14 fixes the interval at 15 s).
  bool keepalive = true;

  // SIGPIPE's default action kills the process when a server closes a socket we
  // write to; if SIGPIPE is still at its default, cachet installs an empty handler
  // (writes then fail with EPIPE). Turn off to manage SIGPIPE yourself.
  bool handle_sigpipe = true;

  // Pacing of reconnection attempts after a failed connect: capped at 100 ms, so
  // that a client is back within about that of the server answering again.
  BackoffOptions reconnect{.max = std::chrono::milliseconds(100)};

  bool uses_unix_socket() const noexcept { return !path.empty(); }
  // The server as messages and metrics name it: the socket's path, or host:port.
  std::string endpoint() const { return uses_unix_socket() ? path : host + ":" + std::to_string(port); }
};

}  // namespace cachet
