#pragma once
// A Redis Cluster client's figures (ClusterFigures, from Pool::cluster_stats())
// and their Prometheus families, cachet_cluster_* {cluster}: redirections by
// kind, retries by cause, slot-map refreshes, and errors and command latency by
// node. The node pools' own figures are cachet_pool_* {pool="host:port"}.

#include <cachet/metrics/histogram.hpp>
#include <cachet/metrics/detail/histogram_text.hpp>
#include <cachet/metrics/detail/prometheus_text.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace cachet {

struct ClusterFigures {
  std::uint64_t moved = 0;        // MOVED followed (the slot's map entry updated)
  std::uint64_t ask = 0;          // ASK followed (ASKING and the command on the importing node)
  std::uint64_t tryagain = 0;     // TRYAGAIN retried (a multi-key command on a slot mid-migration)
  std::uint64_t clusterdown = 0;  // CLUSTERDOWN retried
  std::uint64_t loading = 0;      // LOADING retried
  std::uint64_t readonly = 0;     // READONLY (a demoted master) retried after a refresh
  std::uint64_t refreshes = 0;    // slot maps loaded from CLUSTER SLOTS
  std::uint64_t refresh_failures = 0;  // refreshes no node answered
  std::map<std::string, std::uint64_t> node_errors{};  // "host:port" -> connection errors and timeouts
  // "host:port" -> how long the commands sent there took, each from its first
  // send to its last reply read (a pipeline's, per node, from the batch's first send)
  std::map<std::string, LatencyHistogram::Snapshot> node_latency{};

  ClusterFigures& operator+=(const ClusterFigures& o) {
    moved += o.moved, ask += o.ask, tryagain += o.tryagain, clusterdown += o.clusterdown, loading += o.loading;
    readonly += o.readonly, refreshes += o.refreshes, refresh_failures += o.refresh_failures;
    for (const auto& [node, errors] : o.node_errors) node_errors[node] += errors;
    for (const auto& [node, latency] : o.node_latency) add(node_latency[node], latency);
    return *this;
  }

 private:
  static void add(LatencyHistogram::Snapshot& to, const LatencyHistogram::Snapshot& from) noexcept {
    for (std::size_t i = 0; i < to.cumulative.size(); ++i) to.cumulative[i] += from.cumulative[i];
    to.count += from.count;
    to.sum += from.sum;
  }
};

namespace detail {

struct ClusterSeries {
  std::string_view family, help, label, value;  // label: the kind/cause label's name, value: its value
  std::uint64_t ClusterFigures::*field;
};

inline constexpr std::array<ClusterSeries, 8> cluster_series{{
    {"cachet_cluster_redirects_total", "Redirections followed, by kind.", "kind", "moved", &ClusterFigures::moved},
    {"cachet_cluster_redirects_total", "", "kind", "ask", &ClusterFigures::ask},
    {"cachet_cluster_retries_total", "Commands retried after a back-off, by cause.", "cause", "tryagain",
     &ClusterFigures::tryagain},
    {"cachet_cluster_retries_total", "", "cause", "clusterdown", &ClusterFigures::clusterdown},
    {"cachet_cluster_retries_total", "", "cause", "loading", &ClusterFigures::loading},
    {"cachet_cluster_retries_total", "", "cause", "readonly", &ClusterFigures::readonly},
    {"cachet_cluster_refreshes_total", "Slot maps loaded from CLUSTER SLOTS.", {}, {}, &ClusterFigures::refreshes},
    {"cachet_cluster_refresh_failures_total", "Slot-map refreshes that no node answered.", {}, {},
     &ClusterFigures::refresh_failures},
}};

// The clusters' families, one series per cluster label (`clusters` is ordered by label).
inline void write_clusters(PrometheusWriter& w, const std::map<std::string, ClusterFigures>& clusters) {
  for (std::size_t first = 0, last = 0; first < cluster_series.size(); first = last) {
    const ClusterSeries& head = cluster_series[first];
    while (last < cluster_series.size() && cluster_series[last].family == head.family) ++last;
    w.family(head.family, "counter", head.help);
    for (const auto& [label, f] : clusters)
      for (std::size_t i = first; i < last; ++i) {
        PrometheusWriter& s = w.sample(head.family).label("cluster", label);
        if (!cluster_series[i].label.empty()) s.label(cluster_series[i].label, cluster_series[i].value);
        s.value(f.*cluster_series[i].field);
      }
  }
  w.family("cachet_cluster_node_errors_total", "counter", "Connection errors and timeouts, by node.");
  for (const auto& [label, f] : clusters)
    for (const auto& [node, errors] : f.node_errors)
      w.sample("cachet_cluster_node_errors_total").label("cluster", label).label("node", node).value(errors);
  constexpr std::string_view latency = "cachet_cluster_node_duration_seconds";
  w.family(latency, "histogram", "Duration of the commands sent to each node.");
  for (const auto& cluster : clusters)
    for (const auto& node : cluster.second.node_latency)  // named, not bound: clang 14 captures no bindings
      write_histogram_samples(node.second, [&](std::string_view suffix) -> PrometheusWriter& {
        return w.sample(latency, suffix).label("cluster", cluster.first).label("node", node.first);
      });
}

}  // namespace detail

}  // namespace cachet
