#pragma once
// Polling with a doubling pause: for waits on a state that only polling can see
// (a queue's length, room in a bounded queue).

#include <algorithm>
#include <chrono>
#include <thread>

namespace cachet::detail {

// Calls `done()` until it returns true, pausing between calls from `pause_min`,
// doubling up to `pause_max`, never past `deadline`. The last call starts at or
// after the deadline, so a wait that ends late still looks once more. Returns
// whether `done()` returned true.
template <class Done>
bool poll_until(std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds pause_min,
                std::chrono::milliseconds pause_max, Done done) {
  using clock = std::chrono::steady_clock;
  for (auto pause = pause_min;; pause = std::min(pause * 2, pause_max)) {
    const bool late = clock::now() >= deadline;
    if (done()) return true;
    if (late) return false;
    const auto now = clock::now();
    if (now < deadline) std::this_thread::sleep_for(std::min<clock::duration>(pause, deadline - now));
  }
}

}  // namespace cachet::detail
