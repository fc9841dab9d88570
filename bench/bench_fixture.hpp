#pragma once
// What the benchmark suites share: one redis-server over TCP loopback for the
// whole program, started on first use, and the options of a benchmark's cache.

#include <cachet/policy/cache_aside.hpp>
#include <cachet/testing/redis_server.hpp>

#include <chrono>
#include <string>
#include <utility>

namespace cachet::bench {

inline testing::RedisServer& server() {
  static testing::RedisServer instance({.tcp = true});
  return instance;
}

// Keys bench:{name}:{id}, fresh for an hour: nothing expires during a run.
inline CacheOptions cache_options(std::string name) {
  CacheOptions o;
  o.ns = "bench";
  o.name = std::move(name);
  o.ttl = TtlPolicy({.fresh = std::chrono::hours(1)});
  return o;
}

}  // namespace cachet::bench
