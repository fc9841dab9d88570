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
    publish(std::move(v), std::move(e));
  }

  void publish(std::optional<R> v, std::exception_ptr e) {
    {
      std::lock_guard lock(mutex);
      value = std::move(v);
      error = std::move(e);  // the publisher keeps no reference to release later
      done = true;
    }
    done_cv.notify_all();
  }

  // For the one waiter there is: waits, then moves the value out or rethrows
  // the error, taken out too, so the exception is released in the waiter's
  // thread (its count lives in libstdc++, where ThreadSanitizer cannot see it).
  R take() {
    wait();
    std::exception_ptr e;
    {
      std::lock_guard lock(mutex);
      e = std::exchange(error, nullptr);
    }
    if (e) std::rethrow_exception(e);
    return std::move(*value);
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
