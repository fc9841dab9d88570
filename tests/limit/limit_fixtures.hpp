#pragma once
// What the rate-limit tests and their worker processes share.

#include <cachet/limit/concurrency_limiter.hpp>
#include <cachet/limit/rate_limiter.hpp>
#include <cachet/testing/detail/spawner.hpp>

#include <chrono>
#include <string>

namespace cachet::test {

using namespace std::chrono_literals;

// The limit the 4-process test shares: 100 at once, refilled one per 864 s (none during the test).
inline constexpr Gcra hundred_a_day{.rate = 100, .period = std::chrono::hours(24), .burst = 100};
inline constexpr TokenBucket hundred_tokens{.capacity = 100, .refill = 100, .period = std::chrono::hours(24)};
// The concurrency limit a SIGKILLed holder leaves behind.
inline constexpr ConcurrencyLimit one_in_flight{.limit = 1, .lease = 2s};

inline PoolOptions roomy_pool() { return {.size = 8, .wait_timeout = std::chrono::milliseconds(10'000)}; }

#ifdef CACHET_LIMIT_WORKER
inline pid_t start_limit_worker(const std::string& mode, const std::string& target, const std::string& arg,
                                const std::string& log) {
  return detail::Spawner::spawn({CACHET_LIMIT_WORKER, mode, target, arg}, log);
}
#endif

}  // namespace cachet::test
