#pragma once
// What the read-path suites measure: a ~100-byte JSON value (94 bytes as
// JsonCodec writes it), and the options of their caches.

#include <cachet/policy/cache_aside.hpp>

#include <chrono>
#include <cstdint>
#include <string>

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

// Keys bench:{name}:{id}, fresh for an hour.
inline CacheOptions options(std::string name) {
  CacheOptions o;
  o.ns = "bench";
  o.name = std::move(name);
  o.ttl = TtlPolicy({.fresh = std::chrono::hours(1)});
  return o;
}

}  // namespace cachet::bench
