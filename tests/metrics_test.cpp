#include <cachet/metrics.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::CacheMetrics;
using cachet::Event;
using cachet::LatencyHistogram;

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST_CASE("events are counted per cache and the hit ratio follows them") {
  CacheMetrics m("products", "shop:product");
  CHECK(m.cache() == "products");
  CHECK(m.prefix() == "shop:product");
  CHECK(m.hit_ratio() == 0.0);  // no lookups yet
  for (std::size_t i = 0; i < cachet::event_count; ++i) CHECK(m.value(static_cast<Event>(i)) == 0);

  m.count(Event::miss, 4);
  CHECK(m.hit_ratio() == 0.0);
  m.count(Event::hit);
  m.count(Event::hit, 2);
  m.count(Event::negative_hit);
  m.count(Event::stale_hit);
  m.count(Event::load, 7);  // not a lookup
  CHECK(m.value(Event::hit) == 3);
  CHECK(m.value(Event::miss) == 4);
  CHECK(m.value(Event::load) == 7);
  CHECK(m.value(Event::lock_wait) == 0);
  CHECK(m.hit_ratio() == Approx(5.0 / 8.0));  // the stale hit's lookup is one of the misses
}

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
# HELP cachet_stale_writes_refused_total Cache writes refused as older: a newer version is cached, or a put overtook the load.
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

TEST_CASE("8 threads counting at once lose nothing, while the registry renders") {
  cachet::MetricsRegistry registry;
  const auto m = registry.add("hot", "ns:hot");
  constexpr int threads = 8;
  constexpr std::uint64_t per_thread = 50'000;
  std::atomic<int> ready{0};
  std::atomic<bool> done{false};

  cachet::test::Thread reader([&] {  // scrapes race with the counting
    std::size_t scrapes = 0;
    while (!done.load() || scrapes == 0) {
      if (registry.prometheus().find("cachet_hits_total") != std::string::npos) ++scrapes;
    }
  });
  const cachet::test::RaiseOnExit stop_reader(done);
  std::vector<cachet::test::Thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();
      for (std::uint64_t i = 0; i < per_thread; ++i) {
        m->count(Event::hit);
        if (i % 4 == 0) m->count(Event::miss, 2);
        m->get_latency().observe(std::chrono::microseconds(t * 100 + static_cast<int>(i % 7)));
      }
    });
  for (auto& w : workers) w.join();
  done = true;
  reader.join();

  CHECK(m->value(Event::hit) == threads * per_thread);
  CHECK(m->value(Event::miss) == threads * per_thread / 2);
  const auto s = m->get_latency().snapshot();
  CHECK(s.count == threads * per_thread);
  std::chrono::nanoseconds expected_sum{0};
  for (int t = 0; t < threads; ++t)
    for (std::uint64_t i = 0; i < per_thread; ++i)
      expected_sum += std::chrono::microseconds(t * 100 + static_cast<int>(i % 7));
  CHECK(s.sum == expected_sum);
  CHECK(m->hit_ratio() == Approx(2.0 / 3.0));
}

TEST_CASE("the registry adds, shares and removes caches") {
  cachet::MetricsRegistry registry;
  CHECK(registry.prometheus().empty());
  CHECK(&cachet::MetricsRegistry::global() == &cachet::MetricsRegistry::global());

  const auto products = registry.add("products", "shop:product");
  const auto users = registry.add("users", "shop:user");
  CHECK(products != users);
  products->count(Event::hit);
  REQUIRE(registry.metrics().size() == 2);
  CHECK(registry.metrics()[0] == products);  // ordered by cache, prefix
  CHECK(registry.prometheus().find("cachet_hits_total{cache=\"products\",prefix=\"shop:product\"} 1\n") !=
        std::string::npos);

  // The same labels again: the same metrics, released by the last remove().
  const auto again = registry.add("products", "shop:product");
  CHECK(again == products);
  registry.remove(again);
  CHECK(registry.metrics().size() == 2);
  registry.remove(products);
  CHECK(registry.metrics().size() == 1);
  CHECK(registry.prometheus().find("cache=\"products\"") == std::string::npos);
  CHECK(products->value(Event::hit) == 1);  // the cache keeps its own reference

  // Pointers the registry does not hold are ignored.
  registry.remove(nullptr);
  registry.remove(std::make_shared<CacheMetrics>("users", "shop:user"));
  registry.remove(products);
  REQUIRE(registry.metrics().size() == 1);
  CHECK(registry.metrics()[0] == users);
  registry.remove(users);
  CHECK(registry.metrics().empty());
  CHECK(registry.prometheus().empty());
}

TEST_CASE("a label that is not valid UTF-8 is refused when the metrics are made, naming it, and valid ones are kept whole") {
  for (const std::string& bad : {std::string("caf\xE9"), std::string("\xC0\xAF"), std::string("\xED\xA0\x80"),
                                std::string("\xF4\x90\x80\x80"), std::string("ok\xE2\x82")}) {
    INFO(bad);
    CHECK_THROWS_AS(CacheMetrics(bad, "p"), cachet::MetricsLabelError);
    CHECK_THROWS_WITH(CacheMetrics("c", bad), Catch::Contains("label prefix=") && Catch::Contains("not valid UTF-8"));
  }
  CHECK_THROWS_WITH(CacheMetrics("caf\xE9", "p"), Catch::Contains("cache=\"caf\\xe9\""));
  cachet::MetricsRegistry registry;
  CHECK_THROWS_AS(registry.add("bad\xFF", "p"), cachet::MetricsLabelError);
  CHECK(registry.metrics().empty());  // nothing left behind

  // Valid UTF-8 goes out as is; backslash, quote and newline are escaped.
  const auto m = registry.add("caf\xC3\xA9 \xF0\x9F\x98\x80", "a\\b\"c\nd");
  CHECK(registry.prometheus().find("cachet_hits_total{cache=\"caf\xC3\xA9 \xF0\x9F\x98\x80\",prefix=\"a\\\\b\\\"c\\nd\"} 0\n") !=
        std::string::npos);
  registry.remove(m);
}
