#pragma once
// MetricsRegistry: the caches and pools of a process, for one /metrics endpoint.

#include <cachet/metrics/cache_metrics.hpp>
#include <cachet/metrics/label.hpp>
#include <cachet/metrics/limiter.hpp>
#include <cachet/metrics/cluster.hpp>
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
  std::string prometheus() const { return to_prometheus(metrics()) + pools_prometheus() + limiters_prometheus() + clusters_prometheus();
  }

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

  // A rate limiter's figures under the label `limiter`, like add_pool; limiters
  // with one label are summed into one series.
  std::uint64_t add_limiter(std::string label, std::function<LimiterFigures()> figures) {
    label = detail::checked_label("limiter", std::move(label));
    std::lock_guard lock(pools_mutex_);
    limiters_.emplace(++last_pool_, LimiterSource{std::move(label), std::move(figures)});
    return last_pool_;
  }
  void remove_limiter(std::uint64_t id) {
    std::lock_guard lock(pools_mutex_);
    limiters_.erase(id);
  }
  std::string limiters_prometheus() const {
    std::map<std::string, LimiterFigures> sums;
    {
      std::lock_guard lock(pools_mutex_);
      for (const auto& [id, l] : limiters_) sums[l.label] += l.figures();
    }
    if (sums.empty()) return {};
    detail::PrometheusWriter w;
    detail::write_limiters(w, sums);
    return std::move(w).take();
  }

  // A Redis Cluster client's figures under the label `cluster`, like add_pool
  // (its node pools are pools of their own).
  std::uint64_t add_cluster(std::string label, std::function<ClusterFigures()> figures) {
    label = detail::checked_label("cluster", std::move(label));
    std::lock_guard lock(pools_mutex_);
    clusters_.emplace(++last_pool_, ClusterSource{std::move(label), std::move(figures)});
    return last_pool_;
  }
  void remove_cluster(std::uint64_t id) {
    std::lock_guard lock(pools_mutex_);
    clusters_.erase(id);
  }
  std::string clusters_prometheus() const {
    std::map<std::string, ClusterFigures> sums;
    {
      std::lock_guard lock(pools_mutex_);
      for (const auto& [id, c] : clusters_) sums[c.label] += c.figures();
    }
    if (sums.empty()) return {};
    detail::PrometheusWriter w;
    detail::write_clusters(w, sums);
    return std::move(w).take();
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
  std::uint64_t last_pool_ = 0;  // ids of pools and limiters

  struct LimiterSource {
    std::string label;
    std::function<LimiterFigures()> figures;
  };
  std::map<std::uint64_t, LimiterSource> limiters_;

  struct ClusterSource {
    std::string label;
    std::function<ClusterFigures()> figures;
  };
  std::map<std::uint64_t, ClusterSource> clusters_;
};

}  // namespace cachet
