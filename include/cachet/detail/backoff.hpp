#pragma once
// Tracks consecutive failures and when the next attempt is allowed.
// Not thread-safe: the owner serialises access.

#include <cachet/backoff.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>

namespace cachet::detail {

class Backoff {
 public:
  using clock = std::chrono::steady_clock;

  explicit Backoff(BackoffOptions options = {})
      : options_(options), rng_(std::random_device{}()) {}

  // The delay before attempt number `failures` (1 = first retry), jitter applied.
  std::chrono::milliseconds delay(std::uint32_t failures) {
    if (failures == 0) return std::chrono::milliseconds{0};
    const double base = std::min<double>(
        static_cast<double>(options_.max.count()),
        static_cast<double>(options_.initial.count()) *
            std::pow(options_.multiplier, static_cast<double>(std::min<std::uint32_t>(failures - 1, 63))));
    const double jitter = std::clamp(options_.jitter, 0.0, 1.0);
    std::uniform_real_distribution<double> cut(0.0, jitter);
    return std::chrono::milliseconds{static_cast<std::int64_t>(base * (1.0 - cut(rng_)))};
  }

  void record_failure(clock::time_point now = clock::now()) {
    ++failures_;
    next_attempt_ = now + delay(failures_);
  }

  void reset() noexcept {
    failures_ = 0;
    next_attempt_ = {};
  }

  bool ready(clock::time_point now = clock::now()) const noexcept { return now >= next_attempt_; }
  clock::time_point next_attempt() const noexcept { return next_attempt_; }
  std::uint32_t failures() const noexcept { return failures_; }

 private:
  BackoffOptions options_;
  std::minstd_rand rng_;
  std::uint32_t failures_ = 0;
  clock::time_point next_attempt_{};
};

}  // namespace cachet::detail
