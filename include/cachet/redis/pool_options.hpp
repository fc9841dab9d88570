#pragma once
// The options and figures of a connection pool (redis/pool.hpp), apart so that
// the cluster router (redis/detail/cluster_router.hpp) can name them too.

#include <cachet/redis/errors.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace cachet {

// Whether a command may run twice: after an I/O error or a timeout it may have
// run once already, so only an idempotent one (a read, a SET of the same bytes)
// is sent again.
enum class Idempotent : bool { no, yes };

struct PoolOptions {
  std::size_t size = 8;                           // at most this many connections exist
  std::chrono::milliseconds wait_timeout{100};    // how long acquire() waits for a free one
  bool eager = false;                             // open every connection in the constructor
  std::chrono::milliseconds idle_check_after{30'000};  // PING before reusing one idle this long
  // The `pool` label of its cachet_pool_* metrics; defaults to the unix socket's
  // path or host:port. Pools with one label are summed into one series.
  std::string metrics_label{};
  bool verify = true;  // the constructor opens and PINGs one connection; a misconfiguration throws ConfigError
  // Called when the server refuses a new connection's set-up (a password rotated
  // under a running pool), once until a connection opens again; from the acquiring
  // thread; never from the constructor's check (`verify`).
  std::function<void(const HandshakeError&)> on_handshake_error{};
};

struct PoolStats {
  std::size_t in_use = 0;       // leased out right now
  std::size_t idle = 0;         // open and free
  std::uint64_t created = 0;    // connections opened over the pool's life
  std::uint64_t discarded = 0;  // broken or failed a health check, and closed
  std::size_t waiting = 0;      // threads blocked in acquire() right now
  std::uint64_t waits = 0;      // acquires that had to wait for a free connection
  std::uint64_t timeouts = 0;   // acquires that gave up (PoolTimeoutError)
  std::chrono::nanoseconds wait_time{0};      // total time spent waiting
  std::chrono::nanoseconds max_wait_time{0};
};

inline PoolStats& operator+=(PoolStats& a, const PoolStats& b) noexcept {
  a.in_use += b.in_use, a.idle += b.idle, a.created += b.created, a.discarded += b.discarded;
  a.waiting += b.waiting, a.waits += b.waits, a.timeouts += b.timeouts, a.wait_time += b.wait_time;
  a.max_wait_time = std::max(a.max_wait_time, b.max_wait_time);
  return a;
}

}  // namespace cachet
