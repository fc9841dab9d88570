#pragma once
// Pool's start-up check (PoolOptions::verify): tells a configuration that cannot
// work (a ConfigError) from an outage the pool rides out.

#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <string>
#include <string_view>

namespace cachet::detail {

// WRONGPASS, NOAUTH, NOPERM and the ERR replies below say the options are wrong;
// any other ERR (max number of clients reached), LOADING or BUSY say the server
// cannot serve right now.
inline bool misconfigured(std::string_view message) noexcept {
  const std::string_view code = message.substr(0, message.find(' '));
  if (code == "WRONGPASS" || code == "NOAUTH" || code == "NOPERM") return true;
  static constexpr std::string_view wrong_options[] = {
      "ERR DB index is out of range",                               // SELECT: db
      "ERR invalid DB index",                                       // SELECT: db
      "ERR SELECT is not allowed in cluster mode",                  // SELECT: db
      "ERR AUTH <password> called without any password configured", // a password, server has none (6+)
      "ERR Client sent AUTH, but no password is set",               // the same before 6
      "ERR invalid password",                                       // a wrong password before 6
      "ERR Client names cannot contain",                            // CLIENT SETNAME: client_name
  };
  return std::any_of(std::begin(wrong_options), std::end(wrong_options),
                     [&](std::string_view text) { return message.starts_with(text); });
}

// Why `path` cannot be a listening unix socket, or nullptr if it can. Redis creates
// its socket when it starts: a missing file means a wrong path or a server not started.
inline const char* unix_socket_problem(const std::string& path) noexcept {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno == ENOENT ? "no such file" : "cannot be reached";
  if (!S_ISSOCK(st.st_mode)) return "not a socket";
  if (::access(path.c_str(), R_OK | W_OK) != 0) return "permission denied";
  return nullptr;
}

inline void throw_if_misconfigured(const ConnectionOptions& connection, const std::string& server_message) {
  if (misconfigured(server_message))
    throw ConfigError(fmt::format("redis at {} refused the connection: {} (check ConnectionOptions::user, "
                                  "password, db, client_name)", connection.endpoint(), server_message));
}

// Runs ping_first() (opens the first connection and PINGs it): a refused set-up
// or PING that names the options (see misconfigured()), a peer that does not
// speak RESP (a wrong port) or a unix socket path with no socket is a
// ConfigError; a TLS certificate, hostname or client certificate refusal leaves
// as its own TlsError; an unreachable server (refused, timed out), one not ready
// (LOADING) or full (maxclients) is an outage the pool rides out, as it would
// later, unless `eager`.
template <class PingFirst>
void verify_pool(const ConnectionOptions& connection, bool eager, PingFirst&& ping_first) {
  try {
    ping_first();
  } catch (const TlsCertificateError&) {  // TLS verification failed: a configuration, not an outage
    throw;
  } catch (const TlsHostnameError&) {
    throw;
  } catch (const TlsClientCertificateError&) {
    throw;
  } catch (const HandshakeError& e) {
    throw_if_misconfigured(connection, e.server_message());
    if (eager) throw;
  } catch (const ReplyError& e) {
    throw_if_misconfigured(connection, e.server_message());
  } catch (const ProtocolError& e) {
    throw ConfigError(fmt::format("redis: the server at {} does not speak the Redis protocol (check "
                                  "ConnectionOptions::host, port, path): {}", connection.endpoint(), e.what()));
  } catch (const ConnectionError& e) {
    if (connection.uses_unix_socket())
      if (const char* why = unix_socket_problem(connection.path))
        throw ConfigError(fmt::format("redis: no server can listen at {} ({}; ConnectionOptions::path): {}",
                                      connection.path, why, e.what()));
    if (eager) throw;
  }
}

}  // namespace cachet::detail
