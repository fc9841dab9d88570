#pragma once
// Cache metrics: per cache and key prefix, a counter per Event, latency
// histograms for gets and loads, and the hit ratio, rendered in the Prometheus
// text format (0.0.4). Counting is a relaxed atomic increment on the calling
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

#include <cachet/detail/prometheus_text.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

enum class Event : std::uint8_t {
  hit,                // a fresh value from the cache
  miss,               // nothing usable in the cache
  negative_hit,       // a cached "does not exist"
  stale_hit,          // a stale value served (stale-while-revalidate, fail-safe)
  load,               // a loader call
  load_error,         // a loader call that threw
  decode_error,       // cached bytes that did not decode (served as a miss)
  redis_error,        // a failed Redis command
  redis_skipped,      // a Redis command not sent: the circuit breaker was open
  cache_write_error,  // a failed write to the cache
  breaker_open,       // circuit breaker transitions, by the state entered
  breaker_half_open,
  breaker_close,
  lock_wait,          // waited for another caller's load of the same key
  fenced_out,         // a load's write refused: its lock had expired and passed on
  refresh,            // a background refresh started (stale-while-revalidate, early expiration)
  background_rejected,  // background work refused: the executor's queue was full
  write,              // a write through a write policy (write-through put, write-behind write, counter increment)
  write_error,        // a database write that failed (write-through writer, write-behind batch)
  stale_write_refused,  // a cache write refused as older: a newer version is cached, or a put overtook the load
  write_unrepaired,   // a written key neither updated nor deleted in the cache: stale until its TTL
  queue_full,         // a write-behind write that found its queue at its bound
  flushed,            // queued writes (or counter totals) written to the database
  coalesced,          // queued writes superseded by a later write of the same key before their flush
  dead_lettered,      // queued writes moved to the dead-letter stream
  reclaimed,          // queued writes taken over from a flusher that stopped (XAUTOCLAIM)
  l1_hit,             // a lookup answered by the in-process tier (also counted as a hit or negative hit)
};

inline constexpr std::size_t event_count = static_cast<std::size_t>(Event::l1_hit) + 1;

namespace detail {

// N counters kept in a few copies, each on its own cache lines: a thread adds
// to its own copy (threads take copies in turn), a read sums the copies. With
// one copy, two threads hitting one cache in process spent most of each hit
// moving the counters' line between their cores.
template <std::size_t N>
class StripedCounters {
 public:
  static constexpr std::size_t stripes = 4;

  void add(std::size_t i, std::uint64_t n) noexcept { stripes_[mine()].c[i].fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t load(std::size_t i) const noexcept {
    std::uint64_t total = 0;
    for (const Stripe& s : stripes_) total += s.c[i].load(std::memory_order_relaxed);
    return total;
  }

 private:
  static std::size_t mine() noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t stripe = next.fetch_add(1, std::memory_order_relaxed) % stripes;
    return stripe;
  }
  struct alignas(64) Stripe {
    std::array<std::atomic<std::uint64_t>, N> c{};
  };
  std::array<Stripe, stripes> stripes_;
};

}  // namespace detail

// Counts of durations in fixed buckets, 1 us to 10 s at 1, 2.5 and 5 per decade.
// observe() is two relaxed atomic increments; readers see each counter exactly,
// though a snapshot taken during observations may be one observation apart
// between the buckets and the sum.
class LatencyHistogram {
 public:
  static constexpr std::size_t bucket_count = 22;  // finite upper bounds; +Inf is implicit
  static constexpr std::array<std::chrono::nanoseconds, bucket_count> bounds = [] {
    std::array<std::chrono::nanoseconds, bucket_count> b{};
    std::int64_t decade = 1'000;  // 1 us
    for (std::size_t i = 0; i + 3 < bucket_count; i += 3, decade *= 10) {
      b[i] = std::chrono::nanoseconds{decade};
      b[i + 1] = std::chrono::nanoseconds{decade * 5 / 2};
      b[i + 2] = std::chrono::nanoseconds{decade * 5};
    }
    b.back() = std::chrono::seconds{10};
    return b;
  }();

  struct Snapshot {
    std::array<std::uint64_t, bucket_count> cumulative{};  // observations <= bounds[i]
    std::uint64_t count = 0;                               // all observations (the +Inf bucket)
    std::chrono::nanoseconds sum{0};
  };

  // The bucket a duration falls in: the first bound >= d; bucket_count if above all.
  static std::size_t bucket_of(std::chrono::nanoseconds d) noexcept {
    return static_cast<std::size_t>(std::lower_bound(bounds.begin(), bounds.end(), d) - bounds.begin());
  }

  // Negative durations (a clock stepping back) count as zero.
  void observe(std::chrono::nanoseconds d) noexcept {
    if (d.count() < 0) d = std::chrono::nanoseconds{0};
    counts_.add(bucket_of(d), 1);
    counts_.add(sum_index, static_cast<std::uint64_t>(d.count()));
  }

  Snapshot snapshot() const noexcept {
    Snapshot s;
    for (std::size_t i = 0; i < bucket_count; ++i) {
      s.count += counts_.load(i);
      s.cumulative[i] = s.count;
    }
    s.count += counts_.load(bucket_count);
    s.sum = std::chrono::nanoseconds{static_cast<std::int64_t>(counts_.load(sum_index))};
    return s;
  }

  std::uint64_t count() const noexcept { return snapshot().count; }

 private:
  // Per bucket, not cumulative, so observe() touches one; the one after the
  // last bound is above 10 s, then the sum in ns. The count is the buckets'
  // total, which keeps _count equal to the +Inf bucket.
  static constexpr std::size_t sum_index = bucket_count + 1;
  detail::StripedCounters<bucket_count + 2> counts_;
};

// A metrics label value that is not valid UTF-8, refused when the metrics are
// made: one such label would make a scraper reject the whole exposition.
class MetricsLabelError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {
// Returns `value` if it is valid UTF-8; else throws MetricsLabelError naming the label.
inline std::string checked_label(std::string_view label, std::string value) {
  if (valid_utf8(value)) return value;
  std::string shown;  // printable ASCII as is, any other byte as \xHH
  for (const char c : value) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7F) shown += c;
    else shown += "\\x", shown += "0123456789abcdef"[b >> 4], shown += "0123456789abcdef"[b & 0xF];
  }
  throw MetricsLabelError("cachet: the metrics label " + std::string(label) + "=\"" + shown + "\" is not valid UTF-8");
}
}  // namespace detail

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
  std::uint64_t value(Event e) const noexcept {
    return counters_.load(static_cast<std::size_t>(e));
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

  std::string cache_;
  std::string prefix_;
  detail::StripedCounters<event_count> counters_;
  alignas(cache_line) LatencyHistogram get_;
  alignas(cache_line) LatencyHistogram load_;
};

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
     "Cache writes refused as older: a newer version is cached, or a put overtook the load.", {}},
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

// The buckets' `le` labels, made once per process rather than per scrape.
inline const std::array<std::string, LatencyHistogram::bucket_count>& le_labels() {
  static const auto labels = [] {
    std::array<std::string, LatencyHistogram::bucket_count> l;
    for (std::size_t i = 0; i < l.size(); ++i)
      l[i] = seconds_text(static_cast<std::uint64_t>(LatencyHistogram::bounds[i].count()));
    return l;
  }();
  return labels;
}

inline void write_histogram(PrometheusWriter& w, Caches caches, std::string_view name, std::string_view help,
                            const LatencyHistogram& (CacheMetrics::*which)() const noexcept) {
  w.family(name, "histogram", help);
  const auto& le = le_labels();
  for (const CacheSeries& c : caches) {
    const LatencyHistogram::Snapshot s = (c.m->*which)().snapshot();
    for (std::size_t i = 0; i < LatencyHistogram::bucket_count; ++i)
      start_sample(w, name, "_bucket", c).label("le", le[i]).value(s.cumulative[i]);
    start_sample(w, name, "_bucket", c).label("le", "+Inf").value(s.count);
    start_sample(w, name, "_sum", c).value_seconds(static_cast<std::uint64_t>(s.sum.count()));
    start_sample(w, name, "_count", c).value(s.count);
  }
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

// A connection pool's figures (Pool registers its own; see redis/pool.hpp).
struct PoolFigures {
  std::uint64_t in_use = 0;     // connections leased out now
  std::uint64_t idle = 0;       // open and free now
  std::uint64_t waiting = 0;    // threads blocked for a connection now
  std::uint64_t waits = 0;      // acquires that waited, then got a connection
  std::uint64_t timeouts = 0;   // acquires that gave up waiting
  std::uint64_t created = 0;    // connections opened
  std::uint64_t discarded = 0;  // connections closed as broken or unresponsive
  std::chrono::nanoseconds wait_time{0};  // the waits' total time

  PoolFigures& operator+=(const PoolFigures& o) noexcept {
    in_use += o.in_use, idle += o.idle, waiting += o.waiting, waits += o.waits, timeouts += o.timeouts;
    created += o.created, discarded += o.discarded, wait_time += o.wait_time;
    return *this;
  }
};

namespace detail {

struct PoolSeries {
  std::string_view family, type, help;
  std::string_view state;  // cachet_pool_connections: in_use or idle
  std::uint64_t PoolFigures::*field;
};

inline constexpr std::array<PoolSeries, 8> pool_series{{
    {"cachet_pool_connections", "gauge", "Open connections, by state.", "in_use", &PoolFigures::in_use},
    {"cachet_pool_connections", "gauge", "", "idle", &PoolFigures::idle},
    {"cachet_pool_waiting", "gauge", "Threads waiting for a free connection now.", {}, &PoolFigures::waiting},
    {"cachet_pool_waits_total", "counter", "Acquires that waited for a connection and got one.", {}, &PoolFigures::waits},
    {"cachet_pool_timeouts_total", "counter", "Acquires that gave up waiting for a connection.", {}, &PoolFigures::timeouts},
    {"cachet_pool_connections_created_total", "counter", "Connections opened.", {}, &PoolFigures::created},
    {"cachet_pool_connections_discarded_total", "counter", "Connections closed as broken or unresponsive.", {},
     &PoolFigures::discarded},
    {"cachet_pool_wait_seconds_total", "counter", "Time spent by the acquires that waited and got a connection.", {},
     nullptr},
}};

// The pools' families, one series per pool label (`pools` is ordered by label).
inline void write_pools(PrometheusWriter& w, const std::map<std::string, PoolFigures>& pools) {
  for (std::size_t first = 0, last = 0; first < pool_series.size(); first = last) {
    const PoolSeries& head = pool_series[first];
    while (last < pool_series.size() && pool_series[last].family == head.family) ++last;
    w.family(head.family, head.type, head.help);
    for (const auto& [label, f] : pools)
      for (std::size_t i = first; i < last; ++i) {
        PrometheusWriter& s = w.sample(head.family).label("pool", label);
        if (!pool_series[i].state.empty()) s.label("state", pool_series[i].state);
        if (pool_series[i].field) s.value(f.*pool_series[i].field);
        else s.value_seconds(static_cast<std::uint64_t>(f.wait_time.count()));
      }
  }
}

}  // namespace detail

// The caches and pools of a process, for one /metrics endpoint. Thread-safe.
// Adding the same cache and prefix again returns the metrics already registered
// (two cache objects with one name share their counters, as one Prometheus
// series must); each add() is undone by one remove(). Pools with one label are
// summed into one series.
class MetricsRegistry {
 public:
  // Never destroyed, so caches with static storage may remove themselves at exit.
  static MetricsRegistry& global() {
    static MetricsRegistry* const instance = new MetricsRegistry;
    return *instance;
  }

  std::shared_ptr<CacheMetrics> add(std::string cache, std::string prefix) {
    Labels labels{std::move(cache), std::move(prefix)};
    std::lock_guard lock(mutex_);
    if (const auto it = entries_.find(labels); it != entries_.end()) {
      ++it->second.users;
      return it->second.metrics;
    }
    auto metrics = std::make_shared<CacheMetrics>(labels.first, labels.second);
    entries_.emplace(std::move(labels), Entry{metrics, 1});
    return metrics;
  }

  // Drops the registry's reference after the last add() of these labels; a
  // pointer it does not hold is ignored.
  void remove(const std::shared_ptr<CacheMetrics>& metrics) {
    if (!metrics) return;
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(Labels{metrics->cache(), metrics->prefix()});
    if (it == entries_.end() || it->second.metrics != metrics) return;
    if (--it->second.users == 0) entries_.erase(it);
  }

  // Every registered cache's metrics, ordered by cache and prefix.
  std::vector<std::shared_ptr<CacheMetrics>> metrics() const {
    std::lock_guard lock(mutex_);
    std::vector<std::shared_ptr<CacheMetrics>> all;
    all.reserve(entries_.size());
    for (const auto& [labels, entry] : entries_) all.push_back(entry.metrics);
    return all;
  }

  // The Prometheus text of every registered cache; the registry's lock is held
  // only to copy the list, never while reading counters.
  std::string prometheus() const { return to_prometheus(metrics()) + pools_prometheus(); }

  // A pool's figures under the label `pool` (checked: MetricsLabelError), read by
  // `figures` at each scrape until remove_pool(the returned id). `figures` is
  // called under the registry's pool lock, so remove_pool waits for a scrape
  // in progress: the pool may go right after.
  std::uint64_t add_pool(std::string label, std::function<PoolFigures()> figures) {
    label = detail::checked_label("pool", std::move(label));
    std::lock_guard lock(pools_mutex_);
    pools_.emplace(++last_pool_, PoolSource{std::move(label), std::move(figures)});
    return last_pool_;
  }
  void remove_pool(std::uint64_t id) {
    std::lock_guard lock(pools_mutex_);
    pools_.erase(id);
  }

  // The pools' Prometheus text alone (prometheus() has it after the caches').
  std::string pools_prometheus() const {
    std::map<std::string, PoolFigures> sums;
    {
      std::lock_guard lock(pools_mutex_);
      for (const auto& [id, pool] : pools_) sums[pool.label] += pool.figures();
    }
    if (sums.empty()) return {};
    detail::PrometheusWriter w;
    detail::write_pools(w, sums);
    return std::move(w).take();
  }

 private:
  using Labels = std::pair<std::string, std::string>;  // cache, prefix
  struct Entry {
    std::shared_ptr<CacheMetrics> metrics;
    std::size_t users = 0;  // add() calls not yet undone by remove()
  };

  mutable std::mutex mutex_;
  std::map<Labels, Entry> entries_;

  struct PoolSource {
    std::string label;
    std::function<PoolFigures()> figures;
  };
  mutable std::mutex pools_mutex_;
  std::map<std::uint64_t, PoolSource> pools_;
  std::uint64_t last_pool_ = 0;
};

}  // namespace cachet
