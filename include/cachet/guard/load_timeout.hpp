#pragma once
// Loader timeouts. A load runs on the cache's executor while its caller waits:
//
// - past `soft`, a caller holding a stale value gets it (a stale hit) and the
//   load goes on in the background, caching its value when it finishes;
// - past `hard`, the caller gets LoadTimeoutError; the load goes on likewise.
//
// A C++ function cannot be interrupted, so a timed-out load keeps an executor
// worker until it returns: size CacheOptions::background.threads for the loads
// you expect to be running at once. Put it outside SingleFlight and the lock
// (GuardStack<LoadTimeout, SingleFlight, RedisLockGuard>) so a waiter's wait is
// bounded too. Zero disables a timeout.

#include <cachet/guard/detail/outcome.hpp>
#include <cachet/guard/concepts.hpp>
#include <cachet/guard/errors.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace cachet {

struct LoadTimeoutOptions {
  std::chrono::milliseconds soft{0};
  std::chrono::milliseconds hard{0};
};

class LoadTimeout {
 public:
  explicit LoadTimeout(LoadTimeoutOptions options) : options_(options) {}

  template <class Task, class Next>
  auto run(Task& task, Next& next) -> decltype(next(task)) {
    using R = decltype(next(task));
    const bool soft = options_.soft.count() > 0 && task.current();
    if (task.refresh_only() || (!soft && options_.hard.count() == 0)) return next(task);  // nobody to time out

    const auto started = std::chrono::steady_clock::now();
    // A finite "never": condition variables misbehave near time_point::max().
    const auto hard = started + (options_.hard.count() > 0 ? options_.hard : std::chrono::hours(24 * 365));
    auto outcome = std::make_shared<detail::Outcome<R>>();
    auto job = [outcome, t = task.detach(false), next]() mutable { outcome->run([&] { return next(t); }); };
    if (!task.executor().submit_until(std::move(job), hard)) {
      task.count(Event::background_rejected);
      throw LoadTimeoutError("cachet: no executor worker free to load " + task.key() + " within the hard timeout");
    }
    if (soft && !outcome->wait_until(started + options_.soft)) return task.serve_current();
    if (!outcome->wait_until(hard))
      throw LoadTimeoutError("cachet: loading " + task.key() + " took longer than " +
                             std::to_string(options_.hard.count()) + " ms");
    return outcome->take();
  }

 private:
  LoadTimeoutOptions options_;
};

static_assert(Guard<LoadTimeout>);

}  // namespace cachet
