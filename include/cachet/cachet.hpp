#pragma once
// cachet: Redis caching strategies for C++20. This umbrella header includes the
// public headers; include the individual ones to compile less.

#include <cachet/error.hpp>
#include <cachet/version.hpp>

#include <cachet/redis/arg.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/pipeline.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/reply.hpp>
#include <cachet/redis/script.hpp>
#include <cachet/redis/sentinel.hpp>
#include <cachet/redis/tracking.hpp>

#include <cachet/clock.hpp>
#include <cachet/keys.hpp>
#include <cachet/ttl.hpp>

#include <cachet/invalidation/dependencies.hpp>
#include <cachet/invalidation/namespace_version.hpp>
#include <cachet/invalidation/pattern_invalidation.hpp>
#include <cachet/invalidation/tags.hpp>

#include <cachet/codec/concepts.hpp>
#include <cachet/codec/encrypted.hpp>
#include <cachet/codec/entry.hpp>
#include <cachet/codec/envelope.hpp>
#include <cachet/codec/errors.hpp>
#include <cachet/codec/json.hpp>
#include <cachet/codec/msgpack.hpp>
#include <cachet/codec/string.hpp>
#ifdef CACHET_HAS_ZSTD
#include <cachet/codec/compressed.hpp>
#endif

#include <cachet/breaker.hpp>
#include <cachet/metrics.hpp>

#include <cachet/limit/algorithms.hpp>
#include <cachet/limit/concurrency_limiter.hpp>
#include <cachet/limit/errors.hpp>
#include <cachet/limit/options.hpp>
#include <cachet/limit/rate_limiter.hpp>
#include <cachet/limit/result.hpp>

#include <cachet/executor.hpp>
#include <cachet/guard/concepts.hpp>
#include <cachet/guard/early_expiration.hpp>
#include <cachet/guard/errors.hpp>
#include <cachet/guard/fail_safe.hpp>
#include <cachet/guard/load_timeout.hpp>
#include <cachet/guard/no_guard.hpp>
#include <cachet/store/redis_lock.hpp>
#include <cachet/guard/redis_lock_guard.hpp>
#include <cachet/guard/refresh_ahead_guard.hpp>
#include <cachet/guard/single_flight.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/guard/stale_while_revalidate.hpp>

#include <cachet/store/concepts.hpp>
#include <cachet/store/memory_store.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/store/replication.hpp>
#include <cachet/store/tiered_store.hpp>
#include <cachet/store/value_store.hpp>

#include <cachet/session/errors.hpp>
#include <cachet/session/options.hpp>
#include <cachet/session/session.hpp>
#include <cachet/session/session_store.hpp>

#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/make.hpp>
#include <cachet/policy/read_through.hpp>
#include <cachet/policy/refresh_ahead.hpp>
#include <cachet/policy/warm.hpp>
#include <cachet/policy/write_behind.hpp>
#include <cachet/policy/write_behind_counters.hpp>
#include <cachet/policy/write_queue.hpp>
#include <cachet/policy/write_through.hpp>
