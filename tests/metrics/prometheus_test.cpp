#include <cachet/metrics/prometheus.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using cachet::CacheMetrics;
using cachet::Event;

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("the exact Prometheus text of one cache, with escaped labels") {
  auto m = std::make_shared<CacheMetrics>("say \"hi\"\\", "shop:pro\nduct");
  m->count(Event::hit, 3);
  m->count(Event::miss);
  m->count(Event::load);
  m->count(Event::breaker_open);
  m->get_latency().observe(1us);
  m->get_latency().observe(3ms);
  m->get_latency().observe(12s);
  m->load_latency().observe(2500ms);
  const std::vector<std::shared_ptr<CacheMetrics>> caches{m};

  const std::string expected = R"txt(# HELP cachet_hits_total Lookups answered with a fresh value from the cache.
# TYPE cachet_hits_total counter
cachet_hits_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 3
# HELP cachet_misses_total Lookups that found nothing usable in the cache.
# TYPE cachet_misses_total counter
cachet_misses_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 1
# HELP cachet_negative_hits_total Lookups answered by a cached "does not exist".
# TYPE cachet_negative_hits_total counter
cachet_negative_hits_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_stale_hits_total Lookups answered with a stale value.
# TYPE cachet_stale_hits_total counter
cachet_stale_hits_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_loads_total Loader calls.
# TYPE cachet_loads_total counter
cachet_loads_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 1
# HELP cachet_load_errors_total Loader calls that threw.
# TYPE cachet_load_errors_total counter
cachet_load_errors_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_decode_errors_total Cached values that failed to decode.
# TYPE cachet_decode_errors_total counter
cachet_decode_errors_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_redis_errors_total Redis commands that failed.
# TYPE cachet_redis_errors_total counter
cachet_redis_errors_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_redis_skipped_total Redis commands not sent because the circuit breaker was open.
# TYPE cachet_redis_skipped_total counter
cachet_redis_skipped_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_cache_write_errors_total Writes to the cache that failed.
# TYPE cachet_cache_write_errors_total counter
cachet_cache_write_errors_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_breaker_transitions_total Circuit breaker transitions, by state entered.
# TYPE cachet_breaker_transitions_total counter
cachet_breaker_transitions_total{cache="say \"hi\"\\",prefix="shop:pro\nduct",to="open"} 1
cachet_breaker_transitions_total{cache="say \"hi\"\\",prefix="shop:pro\nduct",to="half_open"} 0
cachet_breaker_transitions_total{cache="say \"hi\"\\",prefix="shop:pro\nduct",to="closed"} 0
# HELP cachet_lock_waits_total Waits for another caller's load of the same key.
# TYPE cachet_lock_waits_total counter
cachet_lock_waits_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_fenced_out_total Cache writes refused because the writer's lock had passed on.
# TYPE cachet_fenced_out_total counter
cachet_fenced_out_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_refreshes_total Background refreshes started.
# TYPE cachet_refreshes_total counter
cachet_refreshes_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_background_rejected_total Background work refused by a full executor.
# TYPE cachet_background_rejected_total counter
cachet_background_rejected_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_writes_total Writes through a write policy.
# TYPE cachet_writes_total counter
cachet_writes_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_write_errors_total Database writes that failed.
# TYPE cachet_write_errors_total counter
cachet_write_errors_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_stale_writes_refused_total Cache writes refused as stale: a newer version cached, a put or a tag invalidation during the load.
# TYPE cachet_stale_writes_refused_total counter
cachet_stale_writes_refused_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_writes_unrepaired_total Written keys that could be neither updated nor deleted in the cache (stale until their TTL).
# TYPE cachet_writes_unrepaired_total counter
cachet_writes_unrepaired_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_queue_full_total Write-behind writes that found the queue at its bound.
# TYPE cachet_queue_full_total counter
cachet_queue_full_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_flushed_total Queued writes written to the database.
# TYPE cachet_flushed_total counter
cachet_flushed_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_coalesced_total Queued writes superseded by a later write of the same key.
# TYPE cachet_coalesced_total counter
cachet_coalesced_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_dead_lettered_total Queued writes moved to the dead-letter stream.
# TYPE cachet_dead_lettered_total counter
cachet_dead_lettered_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_reclaimed_total Queued writes taken over from a flusher that stopped.
# TYPE cachet_reclaimed_total counter
cachet_reclaimed_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_l1_hits_total Lookups answered by the in-process tier (also counted as hits).
# TYPE cachet_l1_hits_total counter
cachet_l1_hits_total{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0
# HELP cachet_get_duration_seconds Duration of cache lookups.
# TYPE cachet_get_duration_seconds histogram
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.000001"} 1
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.0000025"} 1
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.000005"} 1
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.00001"} 1
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.000025"} 1
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.00005"} 1
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.0001"} 1
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.00025"} 1
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.0005"} 1
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.001"} 1
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.0025"} 1
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.005"} 2
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.01"} 2
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.025"} 2
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.05"} 2
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.1"} 2
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.25"} 2
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.5"} 2
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="1"} 2
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="2.5"} 2
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="5"} 2
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="10"} 2
cachet_get_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="+Inf"} 3
cachet_get_duration_seconds_sum{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 12.003001
cachet_get_duration_seconds_count{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 3
# HELP cachet_load_duration_seconds Duration of loader calls.
# TYPE cachet_load_duration_seconds histogram
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.000001"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.0000025"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.000005"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.00001"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.000025"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.00005"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.0001"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.00025"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.0005"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.001"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.0025"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.005"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.01"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.025"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.05"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.1"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.25"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="0.5"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="1"} 0
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="2.5"} 1
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="5"} 1
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="10"} 1
cachet_load_duration_seconds_bucket{cache="say \"hi\"\\",prefix="shop:pro\nduct",le="+Inf"} 1
cachet_load_duration_seconds_sum{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 2.5
cachet_load_duration_seconds_count{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 1
# HELP cachet_hit_ratio Lookups answered from the cache (fresh, negative or stale) over all lookups.
# TYPE cachet_hit_ratio gauge
cachet_hit_ratio{cache="say \"hi\"\\",prefix="shop:pro\nduct"} 0.75
)txt";
  CHECK(cachet::to_prometheus(caches) == expected);
}

TEST_CASE("several caches share one HELP and TYPE per family") {
  std::vector<std::shared_ptr<CacheMetrics>> caches{
      std::make_shared<CacheMetrics>("a", "x:one"), nullptr, std::make_shared<CacheMetrics>("b", "x:two"),
      std::make_shared<CacheMetrics>("c", "y:one")};
  caches[2]->count(Event::hit, 5);
  caches[3]->count(Event::breaker_half_open, 2);
  caches[3]->load_latency().observe(40ms);
  const std::string text = cachet::to_prometheus(caches);

  std::set<std::string> families;
  std::string family;  // the one whose samples may follow
  std::size_t samples = 0;
  for (const std::string& line : lines(text)) {
    if (starts_with(line, "# HELP ")) continue;
    if (starts_with(line, "# TYPE ")) {
      family = line.substr(7, line.find(' ', 7) - 7);
      CHECK(families.insert(family).second);  // each family declared once
      continue;
    }
    INFO(line);
    const std::string name = line.substr(0, line.find('{'));
    CHECK((name == family || name == family + "_bucket" || name == family + "_sum" || name == family + "_count"));
    ++samples;
  }
  CHECK(families.size() == 28);  // 25 counters, 2 histograms, 1 gauge
  // Per cache: 24 plain counters + 3 breaker series, 2 x (22 + 3) histogram lines, 1 gauge.
  CHECK(samples == 3 * (27 + 50 + 1));
  CHECK(text.find("cachet_hits_total{cache=\"b\",prefix=\"x:two\"} 5\n") != std::string::npos);
  CHECK(text.find("cachet_hits_total{cache=\"a\",prefix=\"x:one\"} 0\n") != std::string::npos);
  CHECK(text.find("cachet_breaker_transitions_total{cache=\"c\",prefix=\"y:one\",to=\"half_open\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("cachet_load_duration_seconds_bucket{cache=\"c\",prefix=\"y:one\",le=\"0.05\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("cachet_load_duration_seconds_sum{cache=\"c\",prefix=\"y:one\"} 0.04\n") != std::string::npos);
  CHECK(text.find("cachet_hit_ratio{cache=\"b\",prefix=\"x:two\"} 1\n") != std::string::npos);
  CHECK(cachet::to_prometheus({}).empty());
}
