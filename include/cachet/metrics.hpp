#pragma once
// Cache metrics, the umbrella of metrics/ (one idea per header there): per
// cache and key prefix, a counter per Event, latency histograms for gets and
// loads, and the hit ratio, rendered in the Prometheus text format (0.0.4). Counting is a relaxed atomic increment on the calling
// thread's copy of the counter (detail::StripedCounters), so the hit path takes
// no lock and threads rarely share a line; only adding and removing caches in
// the registry takes a lock.
//
//   auto metrics = cachet::MetricsRegistry::global().add("products", "shop:product");
//   metrics->count(cachet::Event::hit);
//   metrics->get_latency().observe(elapsed);
//   std::string body = cachet::MetricsRegistry::global().prometheus();  // GET /metrics
//
// Families: cachet_<event>s_total{cache,prefix} counters (breaker changes are
// cachet_breaker_transitions_total{...,to="open|half_open|closed"}),
// cachet_get_duration_seconds and cachet_load_duration_seconds histograms, and
// the cachet_hit_ratio gauge; then each connection pool's cachet_pool_* families
// ({pool}: connections by state, waiting, waits, wait time, timeouts, created,
// discarded).

#include <cachet/metrics/cache_metrics.hpp>  // CacheMetrics, one cache's counters and histograms
#include <cachet/metrics/event.hpp>          // Event, what a cache counts
#include <cachet/metrics/histogram.hpp>      // LatencyHistogram
#include <cachet/metrics/label.hpp>          // MetricsLabelError
#include <cachet/metrics/limiter.hpp>        // LimiterFigures, a rate limiter's figures
#include <cachet/metrics/pool.hpp>           // PoolFigures, a connection pool's figures
#include <cachet/metrics/prometheus.hpp>     // to_prometheus, the caches' exposition
#include <cachet/metrics/registry.hpp>       // MetricsRegistry, a process's caches and pools
