#pragma once
// What the two-tier tests, their worker and the guard tests run with the tier
// share: a string cache over a TieredStore, and tracking quick to notice a loss.

#include <cachet/codec/string.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/redis/tracking.hpp>
#include <cachet/store/tiered_store.hpp>

#include <support/server.hpp>

#include <chrono>
#include <concepts>
#include <stdexcept>
#include <string>

namespace cachet::test {

using StringTier = TieredStore<ValueStore<std::string>>;
template <class G = NoGuard, class Clk = SystemClock>
using TieredStringCache = CacheAside<std::string, StringCodec, G, StringTier, Clk>;

// Keys of the tests' caches start with "t:"; a lost subscriber is noticed within 250 ms.
inline TrackingOptions quick_tracking() {
  return {.prefixes = {"t:"}, .ping_interval = std::chrono::milliseconds(50), .ping_timeout = std::chrono::milliseconds(200)};
}

inline StringTier string_tier(Pool& pool, Tracking* tracking, TieredOptions options = {}) {
  return StringTier(ValueStore<std::string>({.max_entries = 10'000}), RedisStore(pool), tracking, options);
}

// One tracking per test process, on the shared test server, for the tests
// that run both with and without the tier.
inline Tracking& shared_tracking() {
  static Tracking tracking(server().connection_options(), quick_tracking());
  if (!tracking.wait_live(std::chrono::seconds(5))) throw std::runtime_error("tracking did not come up");
  return tracking;
}

// The store of such a test: RedisStore, or the tier over it.
template <class S>
S test_store(Pool& pool) {
  if constexpr (std::same_as<S, StringTier>) return string_tier(pool, &shared_tracking());
  else return RedisStore(pool);
}

}  // namespace cachet::test
