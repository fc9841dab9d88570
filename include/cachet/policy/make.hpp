#pragma once
// The common caches in one line, safe by default: stampede-guarded (one load
// per key per process, then one across processes through the Redis lock), the
// pool named once.
//
//   cachet::Pool pool(redis);
//   auto products = cachet::make_cache<Product>(pool, {.ns = "shop", .name = "product"});
//   Product p = products.get_or_load("42", [&](std::string_view id) { return db.product(id); });
//
// Each returns the cache itself (not movable: keep it where it is made); the
// pool, and the tracking of a tiered cache, must outlive it. For another guard,
// store or clock, construct CacheAside (or ReadThrough) directly.

#include <cachet/guard/redis_lock_guard.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/loader.hpp>
#include <cachet/policy/read_through.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/tracking.hpp>
#include <cachet/store/memory_options.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/store/tiered_store.hpp>
#include <cachet/store/value_store.hpp>

#include <type_traits>
#include <utility>

namespace cachet {

// The default cache: cache-aside over Redis behind the stampede guard.
template <class V, Codec C = JsonCodec<V>>
using Cache = CacheAside<V, C, StampedeGuard>;

// The same with an in-process tier in front of Redis (TieredStore over a ValueStore<V>).
template <class V, Codec C = JsonCodec<V>, Guard G = StampedeGuard, Clock Clk = SystemClock>
using TieredCache = CacheAside<V, C, G, TieredStore<ValueStore<V>>, Clk>;

template <class V, Codec C = JsonCodec<V>>
  requires CodecFor<C, V>
Cache<V, C> make_cache(Pool& pool, CacheOptions options, RedisLockGuardOptions lock = {}, C codec = {}) {
  return Cache<V, C>(RedisStore(pool), std::move(options), std::move(codec), stampede_guard(pool, std::move(lock)));
}

// `tracking` (which must cover the cache's keys) keeps every process's in-process
// tier coherent with Redis; `l1` bounds this process's tier.
template <class V, Codec C = JsonCodec<V>>
  requires CodecFor<C, V>
TieredCache<V, C> make_tiered_cache(Pool& pool, Tracking& tracking, CacheOptions options, MemoryStoreOptions l1 = {},
                                    TieredOptions tier = {}, RedisLockGuardOptions lock = {}, C codec = {}) {
  return TieredCache<V, C>(TieredStore(ValueStore<V>(std::move(l1)), RedisStore(pool), &tracking, tier),
                           std::move(options), std::move(codec), stampede_guard(pool, std::move(lock)));
}

// A read-through cache (the loader bound once) over Redis behind the stampede guard:
//   auto products = cachet::make_read_through<Product>(pool, {.ns = "shop", .name = "product"}, load_product);
template <class V, Codec C = JsonCodec<V>, class L>
  requires Loader<std::decay_t<L>, V> && CodecFor<C, V>
ReadThrough<V, std::decay_t<L>, C, StampedeGuard> make_read_through(Pool& pool, CacheOptions options, L&& loader,
                                                                     RedisLockGuardOptions lock = {}, C codec = {}) {
  return {RedisStore(pool), std::move(options), std::forward<L>(loader), std::move(codec),
          stampede_guard(pool, std::move(lock))};
}

}  // namespace cachet
