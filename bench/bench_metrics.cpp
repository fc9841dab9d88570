// The Prometheus exposition of a process's metrics: to_prometheus over 20
// caches, each with every counter and both histograms filled, as one scrape of
// GET /metrics renders it. No Redis: the cost is the text alone.
//   taskset -c 0 build/bench/bench/bench_metrics --benchmark_repetitions=10
//       --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true

#include <cachet/metrics.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace {

std::vector<std::shared_ptr<cachet::CacheMetrics>> filled_caches(std::size_t n) {
  std::vector<std::shared_ptr<cachet::CacheMetrics>> caches;
  for (std::size_t i = 0; i < n; ++i) {
    auto m = std::make_shared<cachet::CacheMetrics>("shop:cache" + std::to_string(i), "shop:name" + std::to_string(i));
    for (std::size_t e = 0; e < cachet::event_count; ++e) m->count(static_cast<cachet::Event>(e), 1000 * (e + 1) + i);
    for (std::size_t k = 0; k < 200; ++k) {
      m->get_latency().observe(std::chrono::microseconds(37 * k + i));
      m->load_latency().observe(std::chrono::microseconds(911 * k + i));
    }
    caches.push_back(std::move(m));
  }
  return caches;
}

void prometheus_20_caches(benchmark::State& state) {
  const auto caches = filled_caches(20);
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string text = cachet::to_prometheus(caches);
    bytes = text.size();
    benchmark::DoNotOptimize(text);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}
BENCHMARK(prometheus_20_caches);

}  // namespace

BENCHMARK_MAIN();
