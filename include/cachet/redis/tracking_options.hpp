#pragma once
// Tracking's options, states and figures (redis/tracking.hpp).

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace cachet {

struct TrackingOptions {
  // BCAST PREFIX each of these; empty: every key of the server. Cover the
  // namespaces whose values are kept in process ("shop:" for shop:product:42
  // and for the version counters shop:ver:*).
  std::vector<std::string> prefixes{};
  // Health check of the subscriber: a PING every `ping_interval`; no answer
  // within `ping_timeout` drops the connection. Their sum bounds how long a
  // silently lost subscriber can leave stale values in process.
  std::chrono::milliseconds ping_interval{200};
  std::chrono::milliseconds ping_timeout{300};
  // On a cluster: how often the pool is asked to reload its slot map (also at
  // once whenever a master's tracking connection drops), so that a failover
  // this process sends nothing to is learned within about this.
  std::chrono::milliseconds map_refresh{5000};
};

enum class TrackingState : std::uint8_t {
  connecting,  // not yet registered: nothing may be kept
  live,        // invalidations arrive: values may be kept
  lost,        // the subscriber is gone and is reconnecting: nothing may be kept
  refused,     // the server refused CLIENT TRACKING (old server, ACL): values may be kept, bounded by TTL alone
};

struct TrackingStats {
  std::uint64_t messages = 0;  // invalidation messages received
  std::uint64_t keys = 0;      // keys named in them
  std::uint64_t flushes = 0;   // "drop everything": null-key messages (FLUSHALL) and changes of state
  std::uint64_t registrations = 0;  // successful CLIENT TRACKING registrations (1 + reconnects)
};

}  // namespace cachet
