#pragma once
// Waiting for replication after a write: Redis replicates asynchronously, so a
// write a master acknowledged and then lost in a crash is gone unless a replica
// had it. With Replication{.replicas = n}, the store pipelines `WAIT n timeout`
// right after the write on the same connection (one round trip) and throws
// ReplicationError when fewer than n replicas confirmed it in time. It bounds
// the loss on failover; it is not strong consistency (docs/durability.md).

#include <cachet/error.hpp>
#include <cachet/redis/options.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

namespace cachet {

struct Replication {
  int replicas = 0;                              // replicas that must confirm the write; 0: no WAIT (the default)
  std::chrono::milliseconds timeout{200};        // > 0 and below the connection's command_timeout
  bool on() const noexcept { return replicas > 0; }
};

// The write is on the master, but fewer than `wanted` replicas confirmed it
// within the timeout: a failover now could lose it. Not an outage (the master
// answered), so it does not count against a circuit breaker.
class ReplicationError : public Error {
 public:
  ReplicationError(int acked, int wanted, std::chrono::milliseconds timeout)
      : Error("cachet: the write is on the master, but only " + std::to_string(acked) + " of " +
              std::to_string(wanted) + " replicas confirmed it within " + std::to_string(timeout.count()) +
              " ms (WAIT): a failover now could lose it"),
        acked_(acked), wanted_(wanted) {}
  // The server refused the WAIT itself (an ACL without it, a replica): the write
  // stands on the master, no replica confirmed it.
  ReplicationError(int wanted, const std::string& refusal)
      : Error("cachet: the write is on the master, but WAIT was refused (" + refusal +
              "): no replica confirmed it"),
        acked_(0), wanted_(wanted) {}
  int acked() const noexcept { return acked_; }
  int wanted() const noexcept { return wanted_; }

 private:
  int acked_, wanted_;
};

// std::invalid_argument unless `r` can work over connections with `conn`'s
// timeout: WAIT 0 would block forever, and a WAIT outlasting the command
// timeout would be reported as a lost connection instead of ReplicationError.
// The policies and the lock guard check their options with it when made.
inline void check_replication(const Replication& r, const ConnectionOptions& conn) {
  if (r.replicas < 0) throw std::invalid_argument("cachet: Replication::replicas must be >= 0");
  if (!r.on()) return;
  if (r.timeout.count() <= 0) throw std::invalid_argument("cachet: Replication::timeout must be positive");
  if (conn.command_timeout.count() > 0 && r.timeout >= conn.command_timeout)
    throw std::invalid_argument("cachet: Replication::timeout (" + std::to_string(r.timeout.count()) +
                                " ms) must be below the connection's command_timeout (" +
                                std::to_string(conn.command_timeout.count()) + " ms)");
}

namespace detail {

// Throws ReplicationError when WAIT's answer falls short of `r`.
inline void require_replicas(const Replication& r, long long acked) {
  if (acked < r.replicas) throw ReplicationError(static_cast<int>(acked), r.replicas, r.timeout);
}

}  // namespace detail
}  // namespace cachet
