#pragma once
// What the two-tier tests, their worker and the guard tests run with the tier
// share: a string cache over a TieredStore, and tracking quick to notice a loss.

#include <cachet/codec/string.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/redis/tracking.hpp>
#include <cachet/store/tiered_store.hpp>

#include <chrono>
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

}  // namespace cachet::test
