// The cluster figures' own arithmetic and text: per-node latency added across
// pools that share a label, and written as one histogram series per node.
#include <cachet/metrics/cluster.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <string>

namespace {

cachet::LatencyHistogram::Snapshot observed(std::initializer_list<std::chrono::microseconds> durations) {
  cachet::LatencyHistogram h;
  for (auto d : durations) h.observe(d);
  return h.snapshot();
}

}  // namespace

TEST_CASE("cluster figures add per-node latency and write it as a histogram per cluster and node") {
  cachet::ClusterFigures a, b;
  a.node_latency["10.0.0.1:7000"] = observed({std::chrono::microseconds(30), std::chrono::microseconds(300)});
  b.node_latency["10.0.0.1:7000"] = observed({std::chrono::microseconds(30)});
  b.node_latency["10.0.0.2:7000"] = observed({std::chrono::microseconds(7)});
  a += b;
  REQUIRE(a.node_latency.size() == 2);
  const auto& first = a.node_latency["10.0.0.1:7000"];
  CHECK(first.count == 3);
  CHECK(first.sum == std::chrono::microseconds(360));
  CHECK(first.cumulative[cachet::LatencyHistogram::bucket_of(std::chrono::microseconds(50))] == 2);
  CHECK(a.node_latency["10.0.0.2:7000"].count == 1);

  cachet::detail::PrometheusWriter w;
  cachet::detail::write_clusters(w, std::map<std::string, cachet::ClusterFigures>{{"shop", a}});
  const std::string text = std::move(w).take();
  CHECK(text.find("# TYPE cachet_cluster_node_duration_seconds histogram\n") != std::string::npos);
  CHECK(text.find("cachet_cluster_node_duration_seconds_bucket{cluster=\"shop\",node=\"10.0.0.1:7000\",le=\"+Inf\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("cachet_cluster_node_duration_seconds_sum{cluster=\"shop\",node=\"10.0.0.1:7000\"} 0.00036\n") !=
        std::string::npos);
  CHECK(text.find("cachet_cluster_node_duration_seconds_count{cluster=\"shop\",node=\"10.0.0.2:7000\"} 1\n") !=
        std::string::npos);
}
