#pragma once
// The stampede guard across processes: a miss takes the key's RedisLock
// (SET NX PX) before it loads, so one caller in all processes loads it.
//
// - The holder's lease is renewed while its load runs, and its cache write is
//   fenced: the guard attaches the lock's check to it (Task::hold), and the
//   store writes and releases in one script only while its token still holds
//   the lock, so a load that outlived its lease cannot overwrite its successor.
// - Waiters never sleep a fixed time and never recurse: the release PUBLISHes
//   the lock key, which wakes them to re-read the cache at once; a short
//   back-off (1 ms doubling to 50 ms by default) covers lost notifications.
//   A woken waiter re-reads first and takes the lock only if the value is still
//   missing, so the waiters a release wakes do not each take and release it.
// - The release channel is subscribed when the guard is made (in the
//   background, retried while Redis is down), not by the first waiter.
// - At `wait` a waiter gives up: it loads itself (LockTimeout::load, the
//   default) or throws LockTimeoutError (LockTimeout::raise).
// - A holder that dies is replaced once its lease runs out.
// - Redis unreachable: the lock is skipped and the caller loads (degraded, not down).
//   So is a replicated lock (`replication`) too few replicas confirmed in time.
// - A background refresh that finds the lock taken leaves the refresh to its holder.
//
// Put SingleFlight in front (StampedeGuard) so a process sends one caller, not
// all of its threads, to the lock.

#include <cachet/guard/detail/lease_renewer.hpp>
#include <cachet/store/lock_notifier.hpp>
#include <cachet/guard/concepts.hpp>
#include <cachet/guard/errors.hpp>
#include <cachet/store/redis_lock.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/store/replication.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

namespace cachet {

enum class LockTimeout { load, raise };

struct RedisLockGuardOptions {
  std::chrono::milliseconds lease{5000};      // renewed every lease/3 while the load runs
  std::chrono::milliseconds wait{10000};      // a waiter's deadline
  LockTimeout on_timeout = LockTimeout::load;
  std::chrono::milliseconds poll_min{1};      // the back-off between re-reads when no notification comes
  std::chrono::milliseconds poll_max{50};
  std::string channel = "cachet:lock-released";  // where releases are published
  // A lock counts as taken only once this many replicas have it (WAIT); when
  // fewer confirm it, it is released and the caller loads unguarded, as when
  // Redis fails (counted as redis_error). 0: no wait. See docs/durability.md.
  Replication replication{};
};

class RedisLockGuard {
 public:
  // Locks on the store's Redis (RedisStore::redis(), TieredStore::redis());
  // its pool must outlive the guard.
  explicit RedisLockGuard(const RedisStore& store, RedisLockGuardOptions options = {})
      : state_(std::make_unique<State>(store, std::move(options))) {}
  // The pool must outlive the guard.
  explicit RedisLockGuard(Pool& pool, RedisLockGuardOptions options = {})
      : RedisLockGuard(RedisStore(pool), std::move(options)) {}

  template <class Task, class Next>
  auto run(Task& task, Next& next) -> decltype(next(task)) {
    if (!task.reachable()) return next(task);
    State& s = *state_;
    RedisLock lock(s.store, task.lock_key(),
                   {.lease = s.options.lease, .notify_channel = s.options.channel,
                    .replication = s.options.replication});
    Watch watch(s.notifier, lock.key());
    const auto deadline = std::chrono::steady_clock::now() + s.options.wait;
    auto pause = s.options.poll_min;
    for (bool waited = false;; waited = true) {
      // A woken waiter looks first: the release it woke for published a value,
      // and taking the freed lock only to find it would be a lock round per waiter.
      if (waited)
        if (auto fresh = task.reread()) return std::move(*fresh);
      bool acquired = false;
      try {
        acquired = lock.try_acquire();
      } catch (const PoolTimeoutError&) {  // our own pool is busy: wait and try again
      } catch (const Error&) {
        task.count(Event::redis_error);
        return next(task);  // Redis failing now: load unguarded rather than fail
      }
      if (acquired) return hold(lock, task, next);  // outside the try: the load's own errors are the caller's
      if (task.refresh_only()) return task.skip();
      if (!waited) {
        task.count(Event::lock_wait);
        if (auto fresh = task.reread()) return std::move(*fresh);  // written since our lookup
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return timed_out(task, next);
      watch.wait(std::min(deadline, now + pause));
      pause = std::min(pause * 2, s.options.poll_max);
    }
  }

  const RedisLockGuardOptions& options() const noexcept { return state_->options; }
  // Lease renewals made so far (for tests and diagnostics).
  std::size_t renewals() const noexcept { return state_->renewer.renewals(); }

 private:
  struct State {
    State(const RedisStore& st, RedisLockGuardOptions o)
        : store(st),
          options(checked(std::move(o), st)),
          notifier(store, options.channel),
          renewer(std::max(options.lease / 3, std::chrono::milliseconds(1))) {}
    RedisStore store;
    RedisLockGuardOptions options;
    LockNotifier notifier;
    detail::LeaseRenewer renewer;

    static RedisLockGuardOptions checked(RedisLockGuardOptions o, const RedisStore& st) {
      check_replication(o.replication, st.pool().connection_options());
      return o;
    }
  };

  // A waiter's interest in one lock's release.
  class Watch {
   public:
    Watch(LockNotifier& n, const std::string& key) : n_(n), key_(key), seen_(n.watch(key)) {}
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    ~Watch() { n_.unwatch(key_); }
    void wait(std::chrono::steady_clock::time_point until) { seen_ = n_.wait(key_, seen_, until); }

   private:
    LockNotifier& n_;
    const std::string& key_;
    std::uint64_t seen_;
  };

  // Loads under the lock, renewing it meanwhile; the load's cache write carries
  // the lock's check and releases it in the same script, else it is released here.
  template <class Task, class Next>
  auto hold(RedisLock& lock, Task& task, Next& next) -> decltype(next(task)) {
    // Our lookup may predate the last holder's write: then there is nothing to load.
    if (auto fresh = task.reread()) {
      release(lock);
      return std::move(*fresh);
    }
    const LockCheck check = lock.check(true);
    state_->renewer.add(lock);
    struct Unhold {
      RedisLockGuard::State& s;
      RedisLock& lock;
      Task& task;
      ~Unhold() {
        s.renewer.remove(lock);
        task.hold(nullptr);  // `check` goes with this frame
        if (task.hold_sent()) lock.released_by_write();
        else if (lock.held()) release(lock);
      }
    } unhold{*state_, lock, task};
    task.hold(&check);  // after anything that may throw: Unhold detaches it before `check` goes
    return next(task);
  }

  // Wakes the waiters to look (and, finding nothing, to take over).
  static void release(RedisLock& lock) noexcept {
    try {
      lock.release();
    } catch (...) {  // the lease bounds it
    }
  }

  template <class Task, class Next>
  auto timed_out(Task& task, Next& next) -> decltype(next(task)) {
    if (state_->options.on_timeout == LockTimeout::raise)
      throw LockTimeoutError("cachet: gave up waiting for the lock of " + task.key() + " after " +
                             std::to_string(state_->options.wait.count()) + " ms");
    return next(task);
  }

  std::unique_ptr<State> state_;
};

static_assert(Guard<RedisLockGuard>);

}  // namespace cachet
