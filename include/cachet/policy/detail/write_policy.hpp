#pragma once
// What WriteThrough and WriteBehind share: the CacheAside they are built on (over
// Redis, or a TieredStore over it: their writes are scripts) and the writer they own.

#include <cachet/policy/cache_aside.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace cachet::detail {

template <class V, class W, Codec C, Guard G, Clock Clk, RedisBacked S>
class WritePolicy {
 public:
  using value_type = V;
  using Cache = CacheAside<V, C, G, S, Clk>;

  WritePolicy(const WritePolicy&) = delete;
  WritePolicy& operator=(const WritePolicy&) = delete;

  Cache& cache() noexcept { return cache_; }
  std::string key(std::string_view id) const { return cache_.key(id); }

 protected:
  // The store's pool must outlive the policy.
  WritePolicy(S store, CacheOptions options, W writer, C codec, G guard, Clk clock)
      : cache_(std::move(store), std::move(options), std::move(codec), std::move(guard), std::move(clock)),
        writer_(std::move(writer)) {}
  ~WritePolicy() = default;

  Pool& pool() noexcept { return cache_.store().pool(); }

  Cache cache_;
  W writer_;
};

}  // namespace cachet::detail
