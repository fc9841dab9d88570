#pragma once
// What a stampede guard is: it decides how a lookup that found no fresh value
// turns into a load. A policy calls
//
//   guard.run(task, next)        // returns what the loader returns, R
//
// and the guard either calls `next(task)` (the rest of the stack, ending in the
// load and the cache write), waits for someone else's load, serves a stale
// value, or hands the work to the cache's executor. Guards stack: GuardStack<A, B>
// gives A a `next` that runs B (see stack.hpp).
//
// The task a guard is given (R is V or std::optional<V>, as the loader returns):
//
//   t.load()           the end of every stack: call the loader, write the cache
//   t.key()            the value's Redis key
//   t.flight_key()     what a load shared in process is filed under: the key, and in
//                      a write-through cache its write version as this caller read it
//   t.lock_key()       the key of its lock (KeyBuilder::lock)
//   t.why()            Why::miss, Why::stale (past its soft TTL, still cached),
//                      or Why::early (fresh, but picked for early recomputation)
//   t.current()        the value in hand for stale/early, else nullptr
//   t.age()            how long ago the value in hand was computed
//   t.reachable()      whether Redis answered the lookup
//   t.refresh_only()   a background refresh: nobody waits for its result
//   t.reread()         std::optional<R>: a fresh value written since (no counting)
//   t.serve_current()  R from the value in hand, counted as a stale hit if stale
//   t.skip()           R from the value in hand, uncounted (a refresh that is not needed)
//   t.hold(check)      attach `const LockCheck* check` (store/write.hpp) to the load's
//                      cache write: written only while that lock is held (and
//                      released with it when check->release); the store executes it;
//                      t.hold(nullptr) detaches it
//   t.hold_sent()      whether a cache write carrying a releasing check was sent (the lock
//                      is then released or lost: not the guard's to release)
//   t.detach(refresh)  an owning copy for a background job (copies the loader)
//   t.executor()       the cache's Executor
//   t.now()            the cache's clock
//   t.count(event)     the cache's metrics

#include <cachet/codec/envelope.hpp>
#include <cachet/store/write.hpp>
#include <cachet/executor.hpp>
#include <cachet/metrics.hpp>

#include <chrono>
#include <concepts>
#include <optional>
#include <string>
#include <string_view>

namespace cachet {

enum class Why { miss, stale, early };

namespace detail {

// The task protocol above with R = int: what the Guard concept checks against.
struct TaskArchetype {
  const std::string& key() const;
  std::string flight_key();
  std::string lock_key() const;
  Why why() const;
  const int* current() const;
  std::chrono::nanoseconds age() const;
  bool reachable() const;
  bool refresh_only() const;
  std::optional<int> reread();
  int serve_current();
  int skip();
  void hold(const LockCheck*);
  bool hold_sent() const;
  TaskArchetype detach(bool refresh_only) const;
  Executor& executor();
  EntryMeta::time_point now() const;
  void count(Event);
  int load();
};

struct NextArchetype {
  template <class T>
  int operator()(T& task) const {
    return task.load();
  }
};

}  // namespace detail

template <class G>
concept Guard = requires(G& guard, detail::TaskArchetype& task, detail::NextArchetype next) {
  { guard.run(task, next) } -> std::same_as<int>;
};

// A guard that may pick fresh entries for early recomputation (EarlyExpiration).
template <class G>
concept EarlyRefreshing = Guard<G> && requires(G& guard, const EntryMeta& meta, EntryMeta::time_point now) {
  { guard.refresh_early(meta, now) } -> std::same_as<bool>;
};

}  // namespace cachet
