#include <cachet/metrics/histogram.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>

using namespace std::chrono_literals;
using cachet::LatencyHistogram;

TEST_CASE("histogram buckets are le-inclusive, cumulative, with sum and count") {
  const auto& bounds = LatencyHistogram::bounds;
  REQUIRE(bounds.size() == 22);
  CHECK(bounds.front() == 1us);
  CHECK(bounds[1] == 2500ns);
  CHECK(bounds[2] == 5us);
  CHECK(bounds[9] == 1ms);
  CHECK(bounds.back() == 10s);

  CHECK(LatencyHistogram::bucket_of(0ns) == 0);
  CHECK(LatencyHistogram::bucket_of(1us) == 0);  // a bound belongs to its own bucket (le)
  CHECK(LatencyHistogram::bucket_of(1001ns) == 1);
  CHECK(LatencyHistogram::bucket_of(3ms) == 11);  // le 5 ms
  CHECK(LatencyHistogram::bucket_of(10s) == 21);
  CHECK(LatencyHistogram::bucket_of(10s + 1ns) == LatencyHistogram::bucket_count);

  LatencyHistogram h;
  h.observe(-5ms);  // counts as zero
  h.observe(1us);
  h.observe(1001ns);
  h.observe(3ms);
  h.observe(10s);
  h.observe(1h);
  const auto s = h.snapshot();
  CHECK(s.count == 6);
  CHECK(h.count() == 6);
  CHECK(s.sum == 1us + 1001ns + 3ms + 10s + 1h);
  CHECK(s.cumulative[0] == 2);
  CHECK(s.cumulative[1] == 3);
  CHECK(s.cumulative[10] == 3);
  CHECK(s.cumulative[11] == 4);
  CHECK(s.cumulative[20] == 4);
  CHECK(s.cumulative[21] == 5);  // 1 h is only in +Inf, that is the count
  for (std::size_t i = 1; i < s.cumulative.size(); ++i) CHECK(s.cumulative[i] >= s.cumulative[i - 1]);
}
