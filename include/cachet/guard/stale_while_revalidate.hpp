#pragma once
// Stale-while-revalidate: an entry past its soft TTL (TtlRule::fresh) but still
// in Redis (within fresh + stale) is returned at once, counted as a stale hit,
// and one background refresh replaces it. Put it outside the other guards:
//
//   GuardStack<StaleWhileRevalidate, SingleFlight, RedisLockGuard>
//
// so the refresh is single-flight in this process and takes the Redis lock: one
// process refreshes, the others keep serving the stale value meanwhile. A miss
// (nothing cached) passes through to the guards below.

#include <cachet/guard/detail/background_refresh.hpp>
#include <cachet/guard/concepts.hpp>

namespace cachet {

class StaleWhileRevalidate {
 public:
  template <class Task, class Next>
  auto run(Task& task, Next& next) -> decltype(next(task)) {
    if (task.why() == Why::stale && task.current() && !task.refresh_only()) return refresh_.serve_and_refresh(task, next);
    return next(task);
  }

  std::size_t refreshing() const { return refresh_.in_progress(); }

 private:
  detail::BackgroundRefresh refresh_;
};

static_assert(Guard<StaleWhileRevalidate>);

}  // namespace cachet
