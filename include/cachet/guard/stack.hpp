#pragma once
// Guards composed: GuardStack<A, B, C> runs A, whose `next` runs B, whose `next`
// runs C, whose `next` is the load. The outermost guard sees a call first:
//
//   GuardStack<StaleWhileRevalidate, SingleFlight, RedisLockGuard>
//
// serves stale values at once; a miss is loaded once per process (single-flight)
// and once across processes (the lock). StampedeGuard is that default pair.

#include <cachet/guard/concepts.hpp>
#include <cachet/guard/redis_lock_guard.hpp>
#include <cachet/guard/single_flight.hpp>

#include <tuple>
#include <utility>

namespace cachet {

template <Guard... Gs>
class GuardStack {
 public:
  GuardStack() = default;
  explicit GuardStack(Gs... guards) : guards_(std::move(guards)...) {}

  template <class Task, class Next>
  auto run(Task& task, Next& next) -> decltype(next(task)) {
    return run_from<0>(task, next);
  }

  // True when any layer picks this fresh entry for early recomputation.
  bool refresh_early(const EntryMeta& meta, EntryMeta::time_point now)
    requires(EarlyRefreshing<Gs> || ...)
  {
    return std::apply([&](auto&... g) { return (early(g, meta, now) || ...); }, guards_);
  }

  template <std::size_t I>
  auto& get() noexcept {
    return std::get<I>(guards_);
  }

 private:
  // Layer I runs with a `next` that runs layer I+1; the last layer's is the caller's.
  // A `next` holds only pointers, so a background job may copy it.
  template <std::size_t I, class Task, class Next>
  auto run_from(Task& task, Next& next) -> decltype(next(task)) {
    if constexpr (I + 1 == sizeof...(Gs)) {
      return std::get<I>(guards_).run(task, next);
    } else {
      auto inner = [self = this, tail = next](auto& t) { return self->template run_from<I + 1>(t, tail); };
      return std::get<I>(guards_).run(task, inner);
    }
  }

  template <class G>
  static bool early(G& g, const EntryMeta& meta, EntryMeta::time_point now) {
    if constexpr (EarlyRefreshing<G>) return g.refresh_early(meta, now);
    else return false;
  }

  std::tuple<Gs...> guards_;
};

// One load per key per process, then one across processes.
using StampedeGuard = GuardStack<SingleFlight, RedisLockGuard>;

// The stampede guard over `pool`'s Redis lock: cachet::stampede_guard(pool).
inline StampedeGuard stampede_guard(Pool& pool, RedisLockGuardOptions options = {}) {
  return StampedeGuard(SingleFlight{}, RedisLockGuard(pool, std::move(options)));
}
// The same over a store's Redis: cachet::stampede_guard(tiered.redis()).
inline StampedeGuard stampede_guard(const RedisStore& store, RedisLockGuardOptions options = {}) {
  return StampedeGuard(SingleFlight{}, RedisLockGuard(store, std::move(options)));
}

}  // namespace cachet
