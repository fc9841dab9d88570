#pragma once
// What a cache counts: one Event per thing that happened (a hit, a load, a
// refused write ...), each a counter of CacheMetrics and a Prometheus series.

#include <cstddef>
#include <cstdint>

namespace cachet {

enum class Event : std::uint8_t {
  hit,                // a fresh value from the cache
  miss,               // nothing usable in the cache
  negative_hit,       // a cached "does not exist"
  stale_hit,          // a stale value served (stale-while-revalidate, fail-safe)
  load,               // a loader call
  load_error,         // a loader call that threw
  decode_error,       // cached bytes that did not decode (served as a miss)
  redis_error,        // a failed Redis command
  redis_skipped,      // a Redis command not sent: the circuit breaker was open
  cache_write_error,  // a failed write to the cache
  breaker_open,       // circuit breaker transitions, by the state entered
  breaker_half_open,
  breaker_close,
  lock_wait,          // waited for another caller's load of the same key
  fenced_out,         // a load's write refused: its lock had expired and passed on
  refresh,            // a background refresh started (stale-while-revalidate, early expiration)
  background_rejected,  // background work refused: the executor's queue was full
  write,              // a write through a write policy (write-through put, write-behind write, counter increment)
  write_error,        // a database write that failed (write-through writer, write-behind batch)
  stale_write_refused,  // a cache write refused as older: a newer version is cached, or a put overtook the load
  write_unrepaired,   // a written key neither updated nor deleted in the cache: stale until its TTL
  queue_full,         // a write-behind write that found its queue at its bound
  flushed,            // queued writes (or counter totals) written to the database
  coalesced,          // queued writes superseded by a later write of the same key before their flush
  dead_lettered,      // queued writes moved to the dead-letter stream
  reclaimed,          // queued writes taken over from a flusher that stopped (XAUTOCLAIM)
  l1_hit,             // a lookup answered by the in-process tier (also counted as a hit or negative hit)
};

inline constexpr std::size_t event_count = static_cast<std::size_t>(Event::l1_hit) + 1;

}  // namespace cachet
