#pragma once
// A monotonic clock with millisecond-ish resolution that costs a quarter of
// steady_clock::now() (about 5 ns instead of 19 here), for time stamps taken on
// every operation where a few milliseconds of error do not matter.

#include <time.h>

#include <chrono>

namespace cachet::detail {

struct CoarseClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<CoarseClock>;
  static constexpr bool is_steady = true;

  static time_point now() noexcept {
#ifdef CLOCK_MONOTONIC_COARSE
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
#else
    return time_point(std::chrono::steady_clock::now().time_since_epoch());
#endif
  }
};

}  // namespace cachet::detail
