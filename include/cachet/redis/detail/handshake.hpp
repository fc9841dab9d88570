#pragma once
// What a Connection sends before its first command: AUTH, SELECT, CLIENT
// SETNAME, HELLO (through Sentinel) and READONLY (a cluster node read from
// replicas) in one round trip; the first error reply is thrown.

#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/reply.hpp>

#include <cstddef>
#include <optional>
#include <string>

namespace cachet::detail {

// The last reply (HELLO's when `hello`), or nullopt when nothing was sent.
template <class Conn>
std::optional<Reply> handshake(Conn& c, const ConnectionOptions& o, bool hello) {
  std::size_t sent = 0;
  if (!o.password.empty()) {
    if (o.user.empty()) c.append({"AUTH", o.password});
    else c.append({"AUTH", o.user, o.password});
    ++sent;
  }
  if (o.db != 0) {
    c.append({"SELECT", o.db});
    ++sent;
  }
  if (!o.client_name.empty()) {
    c.append({"CLIENT", "SETNAME", o.client_name});
    ++sent;
  }
  if (hello) {
    c.append({"HELLO"});  // RESP2 stays: no protocol version given (Redis 6+)
    ++sent;
  }
  if (o.cluster.read_from_replicas && !o.cluster.enabled()) {
    c.append({"READONLY"});  // a cluster node's connection that may read from a replica
    ++sent;
  }
  std::string first_error;
  std::optional<Reply> last;
  for (std::size_t i = 0; i < sent; ++i) {
    last = c.read_reply();
    if (last->is_error() && first_error.empty()) first_error = last->error_message();
  }
  if (!first_error.empty()) throw ReplyError(first_error);
  return last;
}

}  // namespace cachet::detail
