#pragma once
// The stampede guard across processes: a miss takes the key's RedisLock
// (SET NX PX) before it loads, so one caller in all processes loads it.
//
// - The holder's lease is renewed while its load runs, and its cache write is
//   fenced: written and released in one script only while its token still holds
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
// - A background refresh that finds the lock taken leaves the refresh to its holder.
//
// Put SingleFlight in front (StampedeGuard) so a process sends one caller, not
// all of its threads, to the lock.

#include <cachet/guard/detail/lease_renewer.hpp>
#include <cachet/store/lock_notifier.hpp>
#include <cachet/guard/concepts.hpp>
#include <cachet/guard/errors.hpp>
#include <cachet/store/redis_lock.hpp>
#include <cachet/redis/pool.hpp>

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
};

class RedisLockGuard {
 public:
  // The pool must outlive the guard.
  explicit RedisLockGuard(Pool& pool, RedisLockGuardOptions options = {})
      : state_(std::make_unique<State>(pool, std::move(options))) {}

  template <class Task, class Next>
  auto run(Task& task, Next& next) -> decltype(next(task)) {
    if (!task.reachable()) return next(task);
    State& s = *state_;
    RedisLock lock(*s.pool, task.lock_key(), {.lease = s.options.lease, .notify_channel = s.options.channel});
    Watch watch(s.notifier, lock.key());
    const auto deadline = std::chrono::steady_clock::now() + s.options.wait;
    auto pause = s.options.poll_min;
    for (bool waited = false;; waited = true) {
      // A woken waiter looks first: the release it woke for published a value,
      // and taking the freed lock only to find it would be a lock round per waiter.
      if (waited)
        if (auto fresh = task.reread()) return std::move(*fresh);
      try {
        if (lock.try_acquire()) return hold(lock, task, next);
      } catch (const PoolTimeoutError&) {  // our own pool is busy: wait and try again
      } catch (const Error&) {
        task.count(Event::redis_error);
        return next(task);  // Redis failing now: load unguarded rather than fail
      }
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
    State(Pool& p, RedisLockGuardOptions o)
        : pool(&p),
          options(std::move(o)),
          notifier(p.connection_options(), options.channel),
          renewer(std::max(options.lease / 3, std::chrono::milliseconds(1))) {}
    Pool* pool;
    RedisLockGuardOptions options;
    LockNotifier notifier;
    detail::LeaseRenewer renewer;
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

  // The holder's write: value stored (and tagged) and lock released in one script.
  struct LockFence final : Fence {
    explicit LockFence(RedisLock& l) : lock(l) {}
    WriteResult write(const StoreWrite& w) override { return lock.write_and_release(w); }
    RedisLock& lock;
  };

  // Loads under the lock, renewing it meanwhile; releases it if the load did not.
  template <class Task, class Next>
  auto hold(RedisLock& lock, Task& task, Next& next) -> decltype(next(task)) {
    // Our lookup may predate the last holder's write: then there is nothing to load.
    if (auto fresh = task.reread()) {
      release(lock);
      return std::move(*fresh);
    }
    LockFence fence(lock);
    task.fence(&fence);
    state_->renewer.add(lock);
    struct Unhold {
      RedisLockGuard::State& s;
      RedisLock& lock;
      ~Unhold() {
        s.renewer.remove(lock);
        if (lock.held()) release(lock);
      }
    } unhold{*state_, lock};
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
