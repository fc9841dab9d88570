#pragma once
// How a rate limiter names its keys and behaves when Redis is down.

#include <cachet/breaker.hpp>
#include <cachet/limit/algorithms.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

namespace cachet {

// What a limiter answers while Redis is unreachable (ConnectionError,
// TimeoutError, PoolTimeoutError, an error reply such as READONLY, LOADING or OOM
// that says the server cannot decide now, or its circuit breaker open).
enum class OnRedisDown {
  fail_open,    // allow every request (availability over protection)
  fail_closed,  // deny every request, retry_after = closed_retry_after
  local,        // decide with an in-process GCRA, per process (N processes: up to N x the limit)
};

struct RateLimiterOptions {
  std::string prefix = "rl";  // keys are {prefix}:{name}:{{id}}
  // The limit's name in its keys; empty: the algorithm and period ("gcra-1000ms").
  // Two limiters with one name and prefix share their counts: name them when
  // their algorithm and period are the same but they limit different things.
  std::string name{};
  // Identities remembered as blocked until their retry_after, answered without
  // Redis (0: no deny cache). Denials another process caused are not seen.
  std::size_t deny_cache = 0;
  OnRedisDown on_redis_down = OnRedisDown::fail_open;
  std::optional<Gcra> local_limit{};  // OnRedisDown::local's limit; default: the limiter's own rate and burst
  std::size_t local_max_entries = 100'000;  // identities the deny cache and the local limiter keep at most
  std::chrono::milliseconds closed_retry_after{1000};
  // Skips Redis after repeated failures instead of paying a timeout each (nullopt: always try).
  std::optional<BreakerOptions> breaker = BreakerOptions{};
  std::string metrics_label{};  // the `limiter` label; default: prefix:name
  // allow_all refuses keys in different cluster slots (CrossSlotError), also on a single server
  // (false: only on Redis Cluster, where one script cannot span slots).
  bool one_slot = true;
};

}  // namespace cachet
