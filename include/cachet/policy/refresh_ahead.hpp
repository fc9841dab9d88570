#pragma once
// Refresh-ahead: a read-through whose hot keys never expire. A read that finds
// less than 20 % (RefreshAheadOptions::fraction) of an entry's fresh life left
// returns it at once and schedules one background refresh, one per key across
// processes through the Redis lock; so a key that keeps being read is always
// replaced before it expires, and no reader waits for its load.
//
//   cachet::RefreshAhead<Quote, decltype(load)> quotes(pool, {.ns = "fx", .name = "quote"}, load);
//   Quote q = quotes.get("EURUSD");
//
// It is ReadThrough with GuardStack<RefreshAheadGuard, SingleFlight, RedisLockGuard>;
// use that stack on a CacheAside for the same behaviour with per-call loaders.
// The refresh runs a copy of the loader on the cache's executor.

#include <cachet/guard/redis_lock_guard.hpp>
#include <cachet/guard/refresh_ahead_guard.hpp>
#include <cachet/guard/single_flight.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/policy/read_through.hpp>

#include <concepts>
#include <utility>

namespace cachet {

using RefreshAheadStack = GuardStack<RefreshAheadGuard, SingleFlight, RedisLockGuard>;

// Parameters in every policy's order (<V, Loader, Codec, Guard, Store, Clock>), without the fixed guard.
template <class V, class L, Codec C = JsonCodec<V>, RedisBacked S = RedisStore, Clock Clk = SystemClock>
  requires Loader<L, V>
class RefreshAhead : public ReadThrough<V, L, C, RefreshAheadStack, S, Clk> {
  using Base = ReadThrough<V, L, C, RefreshAheadStack, S, Clk>;

 public:
  // The pool must outlive the cache.
  RefreshAhead(Pool& pool, CacheOptions options, L loader, RefreshAheadOptions ahead = {},
               RedisLockGuardOptions lock = {}, C codec = {}, Clk clock = {})
    requires std::same_as<S, RedisStore>
      : RefreshAhead(RedisStore(pool), std::move(options), std::move(loader), ahead, std::move(lock),
                     std::move(codec), std::move(clock)) {}

  // Over a TieredStore; the lock is taken on the store's Redis (redis()), whose
  // pool must outlive the cache.
  RefreshAhead(S store, CacheOptions options, L loader, RefreshAheadOptions ahead = {},
               RedisLockGuardOptions lock = {}, C codec = {}, Clk clock = {})
      : RefreshAhead{RedisLockGuard(store.redis(), std::move(lock)), std::move(store), std::move(options),
                     std::move(loader), ahead, std::move(codec), std::move(clock)} {}  // braces: the guard is made before the store moves

 private:
  RefreshAhead(RedisLockGuard lock, S store, CacheOptions options, L loader, RefreshAheadOptions ahead, C codec,
               Clk clock)
      : Base(std::move(store), std::move(options), std::move(loader), std::move(codec),
             RefreshAheadStack(RefreshAheadGuard(ahead), SingleFlight{}, std::move(lock)), std::move(clock)) {}
};

}  // namespace cachet
