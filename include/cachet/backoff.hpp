#pragma once
// How retries are paced (reconnection, write-behind rounds).

#include <chrono>

namespace cachet {

// Capped exponential back-off with jitter: attempt n waits
// min(max, initial * multiplier^n), shortened by up to `jitter` (0..1) at random
// so that many clients that failed together do not retry together.
struct BackoffOptions {
  std::chrono::milliseconds initial{20};
  std::chrono::milliseconds max{2000};
  double multiplier = 2.0;
  double jitter = 0.5;
};

}  // namespace cachet
