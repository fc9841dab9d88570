#pragma once
// A LatencyHistogram's samples in the Prometheus text: one _bucket per bound
// and +Inf, _sum and _count; the caller starts each sample with its labels.

#include <cachet/metrics/histogram.hpp>
#include <cachet/metrics/detail/prometheus_text.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cachet::detail {

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

// start(suffix) writes a sample's name + suffix and its labels, and returns the writer.
template <class Start>
void write_histogram_samples(const LatencyHistogram::Snapshot& s, Start&& start) {
  const auto& le = le_labels();
  for (std::size_t i = 0; i < LatencyHistogram::bucket_count; ++i)
    start(std::string_view("_bucket")).label("le", le[i]).value(s.cumulative[i]);
  start(std::string_view("_bucket")).label("le", "+Inf").value(s.count);
  start(std::string_view("_sum")).value_seconds(static_cast<std::uint64_t>(s.sum.count()));
  start(std::string_view("_count")).value(s.count);
}

}  // namespace cachet::detail
