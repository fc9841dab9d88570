#pragma once
// What the benchmark suites share: one redis-server over TCP loopback for the
// whole program, started on first use, the options of a benchmark's cache, and
// the value the read-path suites measure (~100 bytes: 97 as JsonCodec writes it).

#include <cachet/policy/cache_aside.hpp>
#include <cachet/testing/redis_server.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

namespace cachet::bench {

struct Item {
  std::int64_t id = 0;
  std::string name;
  std::int64_t price = 0;
  std::string currency;
  bool in_stock = false;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Item, id, name, price, currency, in_stock)

inline Item item(std::int64_t id) { return {id, "Ergonomic chair, graphite, large", 19999, "EUR", true}; }

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
