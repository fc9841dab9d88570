#pragma once
// LatencyHistogram: durations counted in fixed buckets, the shape of a
// Prometheus histogram.

#include <cachet/metrics/detail/striped_counters.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace cachet {

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

}  // namespace cachet
