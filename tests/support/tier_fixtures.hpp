#pragma once
// What the two-tier tests, their worker and the guard tests run with the tier
// share: a string cache over a TieredStore, and tracking quick to notice a loss.

#include <cachet/codec/string.hpp>
#include <cachet/testing/detail/spawner.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/redis/tracking.hpp>
#include <cachet/store/tiered_store.hpp>

#include <support/concurrency.hpp>
#include <support/server.hpp>

#include <chrono>
#include <concepts>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cachet::test {

using StringTier = TieredStore<ValueStore<std::string>>;
template <class G = NoGuard, class Clk = SystemClock>
using TieredStringCache = CacheAside<std::string, StringCodec, G, StringTier, Clk>;

// Keys of the tests' caches start with "t:"; a lost subscriber is noticed within 250 ms.
inline TrackingOptions quick_tracking() {
  return {.prefixes = {"t:"}, .ping_interval = std::chrono::milliseconds(50), .ping_timeout = std::chrono::milliseconds(200)};
}

// The tests' cache: keys t:item:{id}, fresh for 5 minutes; its own metrics label.
inline CacheOptions tier_options(std::string label, Format format = Format::envelope) {
  CacheOptions o;
  o.ns = "t";
  o.name = "item";
  o.format = format;
  o.metrics_label = std::move(label);
  o.ttl = TtlPolicy({.fresh = std::chrono::minutes(5), .jitter = 0});
  return o;
}

// Connection options whose first reconnect waits `first`: a test that checks what
// happens while tracking is lost keeps it lost that long, however slow the machine.
inline ConnectionOptions slow_reconnect(ConnectionOptions o, std::chrono::milliseconds first) {
  o.reconnect = {.initial = first, .max = first * 4, .multiplier = 2.0, .jitter = 0};
  return o;
}

// The shared test server, emptied, with a pool and a live tracking of "t:".
struct Tracked {
  testing::RedisServer& server = clean_server();
  Pool pool{server.connection_options()};
  Tracking tracking;
  explicit Tracked(std::optional<std::chrono::milliseconds> first_reconnect = {})
      : tracking(first_reconnect ? slow_reconnect(server.connection_options(), *first_reconnect)
                                 : server.connection_options(),
                 quick_tracking()) {
    if (!tracking.wait_live(std::chrono::seconds(5))) throw std::runtime_error("tracking did not come up");
  }
};

// Runs redis-cli against `server` (exec'd, as any other client would be); its exit code.
inline int redis_cli(const testing::RedisServer& server, std::vector<std::string> args) {
  args.insert(args.begin(), {"redis-cli", "-s", server.socket_path()});
  return wait_exit(cachet::detail::Spawner::spawn(args, server.directory() + "/redis-cli.log"));
}

inline StringTier string_tier(Pool& pool, Tracking* tracking, TieredOptions options = {}) {
  return StringTier(ValueStore<std::string>({.max_entries = 10'000}), RedisStore(pool), tracking, options);
}

// The store of a test that runs both with and without the tier, over the
// test's `pool`: RedisStore, or the tier with its own tracking of `pool` (on a
// cluster every master of the pool's slot map; TieredStore requires it to be
// the store's own pool there). Declare it before the cache: it outlives it.
template <class S>
class TestStore {
 public:
  explicit TestStore(Pool& pool) : pool_(pool) {
    if constexpr (std::same_as<S, StringTier>) {
      tracking_.emplace(pool, quick_tracking());
      if (!tracking_->wait_live(std::chrono::seconds(10))) throw std::runtime_error("tracking did not come up");
    }
  }
  S make() {
    if constexpr (std::same_as<S, StringTier>) return string_tier(pool_, &*tracking_);
    else return RedisStore(pool_);
  }

 private:
  Pool& pool_;
  std::optional<Tracking> tracking_;
};

}  // namespace cachet::test
