#pragma once
// CacheMetrics: one cache's counters per Event, its get and load latency
// histograms and its hit ratio. Counting is a relaxed atomic increment on the
// calling thread's copy of the counter, so the hit path takes no lock.

#include <cachet/metrics/event.hpp>
#include <cachet/metrics/histogram.hpp>
#include <cachet/metrics/label.hpp>
#include <cachet/metrics/detail/striped_counters.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace cachet {

// One cache's metrics, shared by every thread using the cache.
class CacheMetrics {
 public:
  // Throws MetricsLabelError if a label is not valid UTF-8.
  CacheMetrics(std::string cache, std::string prefix)
      : cache_(detail::checked_label("cache", std::move(cache))),
        prefix_(detail::checked_label("prefix", std::move(prefix))) {}
  CacheMetrics(const CacheMetrics&) = delete;
  CacheMetrics& operator=(const CacheMetrics&) = delete;

  void count(Event e, std::uint64_t n = 1) noexcept {
    counters_.add(static_cast<std::size_t>(e), n);
  }
  // An in-process tier's answer, `e` being hit or negative_hit: counted as `e`
  // and as l1_hit by one increment (value() adds it to both), as it is on every L1 hit.
  void count_l1(Event e) noexcept { counters_.add(e == Event::hit ? l1_values : l1_negatives, 1); }
  std::uint64_t value(Event e) const noexcept {
    std::uint64_t v = counters_.load(static_cast<std::size_t>(e));
    if (e == Event::hit || e == Event::l1_hit) v += counters_.load(l1_values);
    if (e == Event::negative_hit || e == Event::l1_hit) v += counters_.load(l1_negatives);
    return v;
  }

  LatencyHistogram& get_latency() noexcept { return get_; }
  const LatencyHistogram& get_latency() const noexcept { return get_; }
  LatencyHistogram& load_latency() noexcept { return load_; }
  const LatencyHistogram& load_latency() const noexcept { return load_; }

  // Lookups answered from the cache (hits, negative and stale hits) over all
  // lookups; 0 before the first.
  double hit_ratio() const noexcept {
    // Every lookup is one hit, negative hit or miss; a stale value served was a lookup's miss.
    const std::uint64_t answered = value(Event::hit) + value(Event::negative_hit);
    const std::uint64_t served = answered + value(Event::stale_hit);
    const std::uint64_t lookups = answered + value(Event::miss);
    return lookups == 0 ? 0.0 : static_cast<double>(served) / static_cast<double>(lookups);
  }

  const std::string& cache() const noexcept { return cache_; }
  const std::string& prefix() const noexcept { return prefix_; }

 private:
  // The counters and each histogram start their own cache line, so a thread
  // counting hits does not steal the line of one recording load times.
  static constexpr std::size_t cache_line = 64;

  // count_l1's counters, after the events'.
  static constexpr std::size_t l1_values = event_count, l1_negatives = event_count + 1;

  std::string cache_;
  std::string prefix_;
  detail::StripedCounters<event_count + 2> counters_;
  alignas(cache_line) LatencyHistogram get_;
  alignas(cache_line) LatencyHistogram load_;
};

}  // namespace cachet
