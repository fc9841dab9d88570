#pragma once
// Error replies that mean the server cannot decide now, not that the call is
// wrong: the limiters treat them as Redis down and apply their policy.

#include <cachet/breaker.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/reply.hpp>

#include <algorithm>
#include <iterator>
#include <optional>
#include <string_view>

namespace cachet::detail {

// A replica after a failover (READONLY), a server loading its data (LOADING), a
// replica without its master (MASTERDOWN), a long script running (BUSY), a cluster
// down or resharding (CLUSTERDOWN, TRYAGAIN), a server refusing writes (OOM at
// maxmemory with noeviction, MISCONF after a failed save, NOREPLICAS under
// min-replicas-to-write). Others (WRONGTYPE, a script's bug) are bugs.
inline bool means_unavailable(const ReplyError& e) noexcept {
  static constexpr std::string_view codes[] = {"READONLY",  "LOADING", "MASTERDOWN", "BUSY",      "CLUSTERDOWN",
                                               "TRYAGAIN",  "OOM",     "MISCONF",    "NOREPLICAS"};
  return std::find(std::begin(codes), std::end(codes), e.code()) != std::end(codes);
}

// Runs `call` (one round trip) under `breaker` (may be null); nullopt when Redis
// cannot decide now (the breaker is open, the connection or pool failed, or a
// reply above), which the limiter answers by its Redis-down policy.
template <class Call>
std::optional<Reply> call_unless_down(CircuitBreaker* breaker, Call&& call) {
  if (breaker && !breaker->allow()) return std::nullopt;
  try {
    Reply reply = call();
    if (breaker) breaker->success();
    return reply;
  } catch (const ConnectionError&) {  // TimeoutError too
    if (breaker) breaker->failure();
  } catch (const PoolTimeoutError&) {
  } catch (const ReplyError& e) {
    if (!means_unavailable(e)) throw;
    if (breaker) breaker->failure();
  }
  return std::nullopt;
}

}  // namespace cachet::detail
