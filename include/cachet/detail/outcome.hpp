#pragma once
// The outcome of one computation that other threads wait for: a value or an
// exception, published once. Shared by single-flight (the callers of a flight)
// and load timeouts (a caller waiting for a load running on the executor).

#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <utility>

namespace cachet::detail {

struct OutcomeBase {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  std::exception_ptr error;

  void wait() {
    std::unique_lock lock(mutex);
    done_cv.wait(lock, [&] { return done; });
  }
  // False if it was not published by `deadline`.
  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline) {
    std::unique_lock lock(mutex);
    return done_cv.wait_until(lock, deadline, [&] { return done; });
  }
};

template <class R>
struct Outcome : OutcomeBase {
  std::optional<R> value;

  // What `f` returns or throws.
  template <class F>
  static std::pair<std::optional<R>, std::exception_ptr> attempt(F&& f) {
    try {
      return {std::optional<R>(f()), nullptr};
    } catch (...) {
      return {std::nullopt, std::current_exception()};
    }
  }

  // Runs `f` and publishes what it returns or throws.
  template <class F>
  void run(F&& f) {
    auto [v, e] = attempt(std::forward<F>(f));
    publish(std::move(v), e);
  }

  void publish(std::optional<R> v, std::exception_ptr e) {
    {
      std::lock_guard lock(mutex);
      value = std::move(v);
      error = e;
      done = true;
    }
    done_cv.notify_all();
  }

  // Waits, then returns a copy of the value or rethrows. The value is never
  // touched after `done`, so copies made by many waiters do not race.
  R get() {
    wait();
    if (error) std::rethrow_exception(error);
    return *value;
  }
};

}  // namespace cachet::detail
