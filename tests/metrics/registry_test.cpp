#include <cachet/metrics/registry.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using cachet::CacheMetrics;
using cachet::Event;

TEST_CASE("8 threads counting at once lose nothing, while the registry renders") {
  cachet::MetricsRegistry registry;
  const auto m = registry.add("hot", "ns:hot");
  constexpr int threads = 8;
  constexpr std::uint64_t per_thread = 50'000;
  std::atomic<int> ready{0};
  std::atomic<bool> done{false};

  cachet::test::Thread reader([&] {  // scrapes race with the counting
    std::size_t scrapes = 0;
    while (!done.load() || scrapes == 0) {
      if (registry.prometheus().find("cachet_hits_total") != std::string::npos) ++scrapes;
    }
  });
  const cachet::test::RaiseOnExit stop_reader(done);
  std::vector<cachet::test::Thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();
      for (std::uint64_t i = 0; i < per_thread; ++i) {
        m->count(Event::hit);
        if (i % 4 == 0) m->count(Event::miss, 2);
        m->get_latency().observe(std::chrono::microseconds(t * 100 + static_cast<int>(i % 7)));
      }
    });
  for (auto& w : workers) w.join();
  done = true;
  reader.join();

  CHECK(m->value(Event::hit) == threads * per_thread);
  CHECK(m->value(Event::miss) == threads * per_thread / 2);
  const auto s = m->get_latency().snapshot();
  CHECK(s.count == threads * per_thread);
  std::chrono::nanoseconds expected_sum{0};
  for (int t = 0; t < threads; ++t)
    for (std::uint64_t i = 0; i < per_thread; ++i)
      expected_sum += std::chrono::microseconds(t * 100 + static_cast<int>(i % 7));
  CHECK(s.sum == expected_sum);
  CHECK(m->hit_ratio() == Approx(2.0 / 3.0));
}

TEST_CASE("the registry adds, shares and removes caches") {
  cachet::MetricsRegistry registry;
  CHECK(registry.prometheus().empty());
  CHECK(&cachet::MetricsRegistry::global() == &cachet::MetricsRegistry::global());

  const auto products = registry.add("products", "shop:product");
  const auto users = registry.add("users", "shop:user");
  CHECK(products != users);
  products->count(Event::hit);
  REQUIRE(registry.metrics().size() == 2);
  CHECK(registry.metrics()[0] == products);  // ordered by cache, prefix
  CHECK(registry.prometheus().find("cachet_hits_total{cache=\"products\",prefix=\"shop:product\"} 1\n") !=
        std::string::npos);

  // The same labels again: the same metrics, released by the last remove().
  const auto again = registry.add("products", "shop:product");
  CHECK(again == products);
  registry.remove(again);
  CHECK(registry.metrics().size() == 2);
  registry.remove(products);
  CHECK(registry.metrics().size() == 1);
  CHECK(registry.prometheus().find("cache=\"products\"") == std::string::npos);
  CHECK(products->value(Event::hit) == 1);  // the cache keeps its own reference

  // Pointers the registry does not hold are ignored.
  registry.remove(nullptr);
  registry.remove(std::make_shared<CacheMetrics>("users", "shop:user"));
  registry.remove(products);
  REQUIRE(registry.metrics().size() == 1);
  CHECK(registry.metrics()[0] == users);
  registry.remove(users);
  CHECK(registry.metrics().empty());
  CHECK(registry.prometheus().empty());
}
