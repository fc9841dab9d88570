#pragma once
// Reaching a Redis master (or, opted in, a replica) through Redis Sentinel: the
// master's name and the sentinels to ask. See docs/sentinel.md.

#include <cachet/redis/errors.hpp>
#include <cachet/redis/tls_options.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace cachet {

struct SentinelAddress {
  std::string host = "127.0.0.1";
  int port = 26379;
};

// Which server of the group a connection goes to.
enum class SentinelRole {
  master,   // the default: reads and writes
  replica,  // explicit opt-in, for plain reads only (a replica lags, and has no tracking state)
};

struct SentinelOptions {
  std::string master_name{};  // empty: Sentinel is off and ConnectionOptions::host/port/path are used
  std::vector<SentinelAddress> sentinels{};  // asked in this order; one that does not answer is asked last
  // The sentinels' own AUTH (`requirepass` in sentinel.conf); the data servers'
  // credentials stay ConnectionOptions::user/password.
  std::string user{};
  std::string password{};
  // TLS to the sentinels (off by default); the data servers' is ConnectionOptions::tls.
  TlsOptions tls{};
  SentinelRole role = SentinelRole::master;
  // At most one rediscovery (a round of questions to the sentinels, asked by one
  // thread while the others use the last known address) per interval, counted
  // from the end of the last round; a +switch-master announcement is applied at once.
  std::chrono::milliseconds rediscover_interval{100};

  bool enabled() const noexcept { return !master_name.empty(); }
};

// For the in-process tier (Tracking, TieredStore): it fills from the master only, as a replica lags.
inline void require_master_role(const SentinelOptions& s, const std::string& who) {
  if (s.enabled() && s.role != SentinelRole::master)
    throw ConfigError(who + ": SentinelOptions::role is replica; the in-process tier fills from the master only");
}

}  // namespace cachet
