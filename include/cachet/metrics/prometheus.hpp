#pragma once
// The Prometheus text (0.0.4) of caches' metrics: cachet_<event>s_total{cache,prefix}
// counters (breaker changes are cachet_breaker_transitions_total{...,to="open|half_open|closed"}),
// the cachet_get_duration_seconds and cachet_load_duration_seconds histograms,
// and the cachet_hit_ratio gauge.

#include <cachet/metrics/cache_metrics.hpp>
#include <cachet/metrics/event.hpp>
#include <cachet/metrics/histogram.hpp>
#include <cachet/metrics/detail/histogram_text.hpp>
#include <cachet/metrics/detail/prometheus_text.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

namespace detail {

struct CounterSeries {
  Event event;
  std::string_view family;
  std::string_view help;
  std::string_view to;  // breaker transitions: the state entered
};

// In Event order; the series of one family are adjacent.
inline constexpr std::array<CounterSeries, event_count> counter_series{{
    {Event::hit, "cachet_hits_total", "Lookups answered with a fresh value from the cache.", {}},
    {Event::miss, "cachet_misses_total", "Lookups that found nothing usable in the cache.", {}},
    {Event::negative_hit, "cachet_negative_hits_total", "Lookups answered by a cached \"does not exist\".", {}},
    {Event::stale_hit, "cachet_stale_hits_total", "Lookups answered with a stale value.", {}},
    {Event::load, "cachet_loads_total", "Loader calls.", {}},
    {Event::load_error, "cachet_load_errors_total", "Loader calls that threw.", {}},
    {Event::decode_error, "cachet_decode_errors_total", "Cached values that failed to decode.", {}},
    {Event::redis_error, "cachet_redis_errors_total", "Redis commands that failed.", {}},
    {Event::redis_skipped, "cachet_redis_skipped_total", "Redis commands not sent because the circuit breaker was open.", {}},
    {Event::cache_write_error, "cachet_cache_write_errors_total", "Writes to the cache that failed.", {}},
    {Event::breaker_open, "cachet_breaker_transitions_total", "Circuit breaker transitions, by state entered.", "open"},
    {Event::breaker_half_open, "cachet_breaker_transitions_total", "", "half_open"},
    {Event::breaker_close, "cachet_breaker_transitions_total", "", "closed"},
    {Event::lock_wait, "cachet_lock_waits_total", "Waits for another caller's load of the same key.", {}},
    {Event::fenced_out, "cachet_fenced_out_total", "Cache writes refused because the writer's lock had passed on.", {}},
    {Event::refresh, "cachet_refreshes_total", "Background refreshes started.", {}},
    {Event::background_rejected, "cachet_background_rejected_total", "Background work refused by a full executor.", {}},
    {Event::write, "cachet_writes_total", "Writes through a write policy.", {}},
    {Event::write_error, "cachet_write_errors_total", "Database writes that failed.", {}},
    {Event::stale_write_refused, "cachet_stale_writes_refused_total",
     "Cache writes refused as stale: a newer version cached, a put or a tag invalidation during the load.", {}},
    {Event::write_unrepaired, "cachet_writes_unrepaired_total",
     "Written keys that could be neither updated nor deleted in the cache (stale until their TTL).", {}},
    {Event::queue_full, "cachet_queue_full_total", "Write-behind writes that found the queue at its bound.", {}},
    {Event::flushed, "cachet_flushed_total", "Queued writes written to the database.", {}},
    {Event::coalesced, "cachet_coalesced_total", "Queued writes superseded by a later write of the same key.", {}},
    {Event::dead_lettered, "cachet_dead_lettered_total", "Queued writes moved to the dead-letter stream.", {}},
    {Event::reclaimed, "cachet_reclaimed_total", "Queued writes taken over from a flusher that stopped.", {}},
    {Event::l1_hit, "cachet_l1_hits_total", "Lookups answered by the in-process tier (also counted as hits).", {}},
}};

static_assert([] {
  for (std::size_t i = 0; i < event_count; ++i)
    if (static_cast<std::size_t>(counter_series[i].event) != i) return false;
  return true;
}());

// A cache in one scrape, with its cache and prefix labels escaped once.
struct CacheSeries {
  explicit CacheSeries(const CacheMetrics& metrics) : m(&metrics) {
    append_label(labels, "cache", m->cache());
    labels += ',';
    append_label(labels, "prefix", m->prefix());
  }
  const CacheMetrics* m;
  std::string labels;
};
using Caches = std::span<const CacheSeries>;

inline PrometheusWriter& start_sample(PrometheusWriter& w, std::string_view name, std::string_view suffix,
                                      const CacheSeries& c) {
  return w.sample(name, suffix).escaped_labels(c.labels);
}

inline void write_counters(PrometheusWriter& w, Caches caches) {
  for (std::size_t first = 0, last = 0; first < event_count; first = last) {
    const std::string_view family = counter_series[first].family;
    while (last < event_count && counter_series[last].family == family) ++last;
    w.family(family, "counter", counter_series[first].help);
    for (const CacheSeries& c : caches)
      for (std::size_t i = first; i < last; ++i) {
        PrometheusWriter& s = start_sample(w, family, {}, c);
        if (!counter_series[i].to.empty()) s.label("to", counter_series[i].to);
        s.value(c.m->value(counter_series[i].event));
      }
  }
}

inline void write_histogram(PrometheusWriter& w, Caches caches, std::string_view name, std::string_view help,
                            const LatencyHistogram& (CacheMetrics::*which)() const noexcept) {
  w.family(name, "histogram", help);
  for (const CacheSeries& c : caches)
    write_histogram_samples((c.m->*which)().snapshot(),
                            [&](std::string_view suffix) -> PrometheusWriter& { return start_sample(w, name, suffix, c); });
}

// About the size of the text (a little over): reserved up front, so the
// string is not copied a dozen times as it grows.
inline std::size_t text_size_hint(Caches caches) {
  constexpr std::size_t samples = event_count + 2 * (LatencyHistogram::bucket_count + 3) + 1;
  constexpr std::size_t rest = 48;  // a sample's name, the `le` label, the value
  std::size_t bytes = 8192;        // the families' HELP and TYPE lines
  for (const CacheSeries& c : caches) bytes += samples * (c.labels.size() + rest);
  return bytes;
}

inline void write_hit_ratio(PrometheusWriter& w, Caches caches) {
  w.family("cachet_hit_ratio", "gauge", "Lookups answered from the cache (fresh, negative or stale) over all lookups.");
  for (const CacheSeries& c : caches) start_sample(w, "cachet_hit_ratio", {}, c).value(c.m->hit_ratio());
}

}  // namespace detail

// Renders the metrics of these caches (null pointers skipped), one HELP and TYPE
// per family; empty when there are none. Give each cache its own labels: two
// with the same cache and prefix would be duplicate series.
inline std::string to_prometheus(std::span<const std::shared_ptr<CacheMetrics>> caches) {
  std::vector<detail::CacheSeries> list;
  list.reserve(caches.size());
  for (const auto& m : caches)
    if (m) list.emplace_back(*m);
  if (list.empty()) return {};
  detail::PrometheusWriter w;
  w.reserve(detail::text_size_hint(list));
  detail::write_counters(w, list);
  detail::write_histogram(w, list, "cachet_get_duration_seconds", "Duration of cache lookups.",
                          &CacheMetrics::get_latency);
  detail::write_histogram(w, list, "cachet_load_duration_seconds", "Duration of loader calls.",
                          &CacheMetrics::load_latency);
  detail::write_hit_ratio(w, list);
  return std::move(w).take();
}

}  // namespace cachet
