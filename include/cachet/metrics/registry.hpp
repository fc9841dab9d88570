#pragma once
// MetricsRegistry: the caches and pools of a process, for one /metrics endpoint.

#include <cachet/metrics/cache_metrics.hpp>
#include <cachet/metrics/cluster.hpp>
#include <cachet/metrics/label.hpp>
#include <cachet/metrics/limiter.hpp>
#include <cachet/metrics/pool.hpp>
#include <cachet/metrics/prometheus.hpp>
#include <cachet/metrics/detail/prometheus_text.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace cachet {

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
  std::string prometheus() const {
    return to_prometheus(metrics()) + pools_prometheus() + limiters_prometheus() + clusters_prometheus();
  }

  // A pool's figures under the label `pool` (checked: MetricsLabelError), read by
  // `figures` at each scrape until remove_pool(the returned id). `figures` is
  // called under the registry's pool lock, so remove_pool waits for a scrape
  // in progress: the pool may go right after.
  std::uint64_t add_pool(std::string label, std::function<PoolFigures()> figures) {
    return add_source(pools_, "pool", std::move(label), std::move(figures));
  }
  void remove_pool(std::uint64_t id) { remove_source(pools_, id); }
  // The pools' Prometheus text alone (prometheus() has it after the caches').
  std::string pools_prometheus() const { return source_text(pools_, detail::write_pools); }

  // A rate limiter's figures under the label `limiter`, like add_pool; limiters
  // with one label are summed into one series.
  std::uint64_t add_limiter(std::string label, std::function<LimiterFigures()> figures) {
    return add_source(limiters_, "limiter", std::move(label), std::move(figures));
  }
  void remove_limiter(std::uint64_t id) { remove_source(limiters_, id); }
  std::string limiters_prometheus() const { return source_text(limiters_, detail::write_limiters); }

  // A Redis Cluster client's figures under the label `cluster`, like add_pool
  // (its node pools are pools of their own).
  std::uint64_t add_cluster(std::string label, std::function<ClusterFigures()> figures) {
    return add_source(clusters_, "cluster", std::move(label), std::move(figures));
  }
  void remove_cluster(std::uint64_t id) { remove_source(clusters_, id); }
  std::string clusters_prometheus() const { return source_text(clusters_, detail::write_clusters); }

 private:
  using Labels = std::pair<std::string, std::string>;  // cache, prefix
  struct Entry {
    std::shared_ptr<CacheMetrics> metrics;
    std::size_t users = 0;  // add() calls not yet undone by remove()
  };

  mutable std::mutex mutex_;
  std::map<Labels, Entry> entries_;

  // Figures of one kind (pools, limiters, clusters) by id, each under a label.
  template <class Figures>
  struct Source {
    std::string label;
    std::function<Figures()> figures;
  };
  template <class Figures>
  using Sources = std::map<std::uint64_t, Source<Figures>>;

  template <class Figures>
  std::uint64_t add_source(Sources<Figures>& to, const char* kind, std::string label, std::function<Figures()> f) {
    label = detail::checked_label(kind, std::move(label));
    std::lock_guard lock(sources_mutex_);
    to.emplace(++last_source_, Source<Figures>{std::move(label), std::move(f)});
    return last_source_;
  }
  template <class Figures>
  void remove_source(Sources<Figures>& from, std::uint64_t id) {
    std::lock_guard lock(sources_mutex_);
    from.erase(id);
  }
  // The sources' figures summed per label, written by `write` (nothing when there are none).
  template <class Figures, class Write>
  std::string source_text(const Sources<Figures>& sources, Write write) const {
    std::map<std::string, Figures> sums;
    {
      std::lock_guard lock(sources_mutex_);
      for (const auto& [id, source] : sources) sums[source.label] += source.figures();
    }
    if (sums.empty()) return {};
    detail::PrometheusWriter w;
    write(w, sums);
    return std::move(w).take();
  }

  mutable std::mutex sources_mutex_;
  std::uint64_t last_source_ = 0;  // ids of pools, limiters and clusters
  Sources<PoolFigures> pools_;
  Sources<LimiterFigures> limiters_;
  Sources<ClusterFigures> clusters_;
};

}  // namespace cachet
