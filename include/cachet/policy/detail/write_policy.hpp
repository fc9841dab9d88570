#pragma once
// What WriteThrough and WriteBehind share: the cache they attach to (a
// CacheAside over Redis, or over a TieredStore in front of it: their writes are
// scripts), held by reference, and the writer they own.

#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/detail/write_access.hpp>

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace cachet::detail {

// A cache a write policy can attach to: a CacheAside whose store reaches Redis
// and runs conditional writes (a load's watched write must not become a plain SET).
template <class C>
concept AttachableCache = requires(C& c) {
  typename C::value_type;
  c.key(std::string_view{});
} && RedisBacked<std::remove_reference_t<decltype(std::declval<C&>().store())>> &&
                          ConditionalStore<std::remove_reference_t<decltype(std::declval<C&>().store())>>;

template <AttachableCache Cache, class W>
class WritePolicy {
 public:
  using value_type = typename Cache::value_type;
  using cache_type = Cache;

  WritePolicy(const WritePolicy&) = delete;
  WritePolicy& operator=(const WritePolicy&) = delete;

  // The cache this policy is attached to: its reads, invalidations and metrics.
  Cache& cache() const noexcept { return cache_; }
  std::string key(std::string_view id) const { return cache_.key(id); }

 protected:
  // Attaching switches on write-version watching: a load that read the old row
  // cannot overwrite what a write put in the cache. The cache must outlive the policy.
  WritePolicy(Cache& cache, W writer) : cache_(cache), access_(cache), writer_(std::move(writer)) {
    access_.watch_writes();
  }
  ~WritePolicy() = default;

  Cache& cache_;
  WriteAccess<Cache> access_;  // what the policy reaches past the cache's user API
  W writer_;
};

}  // namespace cachet::detail
