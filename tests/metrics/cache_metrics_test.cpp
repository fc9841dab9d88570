#include <cachet/metrics/cache_metrics.hpp>

#include <catch2/catch.hpp>

#include <cstddef>

using cachet::CacheMetrics;
using cachet::Event;

TEST_CASE("events are counted per cache and the hit ratio follows them") {
  CacheMetrics m("products", "shop:product");
  CHECK(m.cache() == "products");
  CHECK(m.prefix() == "shop:product");
  CHECK(m.hit_ratio() == 0.0);  // no lookups yet
  for (std::size_t i = 0; i < cachet::event_count; ++i) CHECK(m.value(static_cast<Event>(i)) == 0);

  m.count(Event::miss, 4);
  CHECK(m.hit_ratio() == 0.0);
  m.count(Event::hit);
  m.count(Event::hit, 2);
  m.count(Event::negative_hit);
  m.count(Event::stale_hit);
  m.count(Event::load, 7);  // not a lookup
  CHECK(m.value(Event::hit) == 3);
  CHECK(m.value(Event::miss) == 4);
  CHECK(m.value(Event::load) == 7);
  CHECK(m.value(Event::lock_wait) == 0);
  CHECK(m.hit_ratio() == Approx(5.0 / 8.0));  // the stale hit's lookup is one of the misses
}

TEST_CASE("an in-process answer counts once and reads back as a hit (or negative hit) and an l1_hit") {
  CacheMetrics m("products", "shop:product");
  m.count(Event::hit, 2);  // from Redis
  m.count_l1(Event::hit);
  m.count_l1(Event::hit);
  m.count_l1(Event::negative_hit);
  m.count(Event::negative_hit);
  m.count(Event::miss);
  CHECK(m.value(Event::hit) == 4);
  CHECK(m.value(Event::negative_hit) == 2);
  CHECK(m.value(Event::l1_hit) == 3);
  CHECK(m.value(Event::miss) == 1);
  CHECK(m.value(Event::stale_hit) == 0);
  CHECK(m.hit_ratio() == Approx(6.0 / 7.0));
  m.count(Event::l1_hit);  // counting the event itself still counts it alone
  CHECK(m.value(Event::l1_hit) == 4);
  CHECK(m.value(Event::hit) == 4);
}
