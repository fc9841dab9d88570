#pragma once
// Where cachet gets the time. Everything time-dependent takes a clock, so tests
// move time by hand instead of sleeping.
//
// Wall-clock time (system_clock) on purpose: expiry instants are stored in Redis
// and compared by other processes and machines.

#include <time.h>

#include <atomic>
#include <chrono>
#include <concepts>

namespace cachet {

template <class C>
concept Clock = requires(const C& c) {
  { c.now() } -> std::convertible_to<std::chrono::system_clock::time_point>;
};

struct SystemClock {
  std::chrono::system_clock::time_point now() const noexcept { return std::chrono::system_clock::now(); }
};

// Wall-clock time as of the kernel's last tick (CLOCK_REALTIME_COARSE): a
// fraction of system_clock::now()'s cost, for the in-process tier's hits. It
// is behind system_clock by less than resolution() (one tick: 4 ms on a
// HZ=250 kernel, 1 ms at HZ=1000), never ahead, so a deadline judged by it is
// passed by less than resolution() before it is noticed.
struct CoarseSystemClock {
  static std::chrono::system_clock::time_point now() noexcept {
#ifdef CLOCK_REALTIME_COARSE
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
#else
    return std::chrono::system_clock::now();
#endif
  }
  static std::chrono::nanoseconds resolution() noexcept {
#ifdef CLOCK_REALTIME_COARSE
    timespec ts{};
    if (::clock_getres(CLOCK_REALTIME_COARSE, &ts) == 0)
      return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
#endif
    return std::chrono::nanoseconds(1);
  }
};

// A clock that moves only when told; safe to read and advance from many threads.
class ManualClock {
 public:
  using time_point = std::chrono::system_clock::time_point;

  explicit ManualClock(time_point start = time_point(std::chrono::hours(24 * 365 * 50))) : ns_(to_ns(start)) {}

  time_point now() const noexcept {
    return time_point(std::chrono::duration_cast<time_point::duration>(std::chrono::nanoseconds(ns_.load())));
  }
  void advance(std::chrono::nanoseconds d) noexcept { ns_ += d.count(); }
  void set(time_point t) noexcept { ns_ = to_ns(t); }

 private:
  static long long to_ns(time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }
  std::atomic<long long> ns_;
};

// Refers to a clock owned elsewhere (a ManualClock a test advances) by pointer,
// for components that take their clock by value.
template <Clock C>
class ClockRef {
 public:
  explicit ClockRef(const C& clock) noexcept : clock_(&clock) {}
  std::chrono::system_clock::time_point now() const noexcept { return clock_->now(); }

 private:
  const C* clock_;
};

}  // namespace cachet
