// The in-process tier next to Redis, same value, same run: CacheAside::get_shared
// of a ~100-byte JSON value answered by L1 (a TieredStore with client tracking
// live) against the same call answered by Redis (GET over loopback TCP + parse),
// and raw hiredis GET for scale, and a std::unordered_map behind a
// std::shared_mutex (find + copy of the Item) as the in-process baseline
// (target: l1_hit <= 1.3x it on one thread, faster on two); 1 and 2 threads; and both once more with
// a 36-byte id (a UUID) in place of "1", one thread. Every benchmark reports its
// allocations per call (operator new is replaced and counts them per thread).
//
//   build/bench/bench/bench_tiered --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// unpinned (the 60 us loopback round trip); pinned as bench/README.md
// explains for the 1-thread figures:
//   taskset -c 0 build/bench/bench/bench_tiered --benchmark_filter=threads:1$ ...

#include "bench_fixture.hpp"
#include "ratio_reporter.hpp"

#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/make.hpp>
#include <cachet/testing/redis_server.hpp>

#include <support/counting_new.hpp>
#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using cachet::bench::Item;
using cachet::bench::item;
using cachet::bench::cache_options;
// A realistic id (36 bytes): the key is built from it on every hit.
constexpr const char* uuid_id = "0f8fad5b-d9cb-469f-a165-70867728950e";

struct Fixture {
  cachet::testing::RedisServer server{{.tcp = true}};
  cachet::Pool pool{server.tcp_connection_options(), {.size = 2}};
  cachet::Tracking tracking{server.tcp_connection_options(), {.prefixes = {"bench:"}}};
  cachet::CacheAside<Item> redis{cachet::RedisStore(pool), cache_options("redis")};
  cachet::TieredCache<Item, cachet::JsonCodec<Item>, cachet::NoGuard> tiered{
      cachet::TieredStore(cachet::ValueStore<Item>({.max_entries = 1024}), cachet::RedisStore(pool), &tracking),
      cache_options("tiered")};
  std::size_t value_bytes = 0;  // envelope + JSON

  Fixture() {
    if (!tracking.wait_live(std::chrono::seconds(5))) throw std::runtime_error("tracking did not come up");
    redis.set("1", item(1));
    tiered.set("1", item(1));
    tiered.set(uuid_id, item(1));
    if (!tracking.sync()) throw std::runtime_error("tracking lost");  // our own write's invalidation is back
    value_bytes = static_cast<std::size_t>(server.connect().command({"STRLEN", "bench:redis:1"}).as_integer());
  }
};
Fixture& fixture() {
  static Fixture f;
  return f;
}

// Runs `call` per iteration and reports allocations per call.
template <class F>
void measure(benchmark::State& state, F call) {
  const std::size_t before = cachet::test::allocations;
  for (auto _ : state) benchmark::DoNotOptimize(call());
  state.counters["allocs"] =
      benchmark::Counter(static_cast<double>(cachet::test::allocations - before), benchmark::Counter::kAvgIterations);
}

void raw_hiredis_get(benchmark::State& state) {
  const std::string key = "bench:redis:1";
  redisContext* c = redisConnect("127.0.0.1", fixture().server.port());
  const char* argv[] = {"GET", key.data()};
  const size_t lens[] = {3, key.size()};
  measure(state, [&] {
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, 2, argv, lens));
    const bool ok = r && r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return ok;
  });
  redisFree(c);
}

void redis_hit(benchmark::State& state) {
  auto& cache = fixture().redis;
  measure(state, [&] { return cache.get_shared("1"); });
  state.counters["value_bytes"] = static_cast<double>(fixture().value_bytes);
}

void l1_hit_of(benchmark::State& state, const std::string& id) {
  auto& cache = fixture().tiered;
  const auto misses = cache.metrics().value(cachet::Event::miss);
  cache.get_shared(id);  // into L1
  measure(state, [&] { return cache.get_shared(id); });
  if (cache.metrics().value(cachet::Event::l1_hit) == 0) state.SkipWithError("no L1 hit");
  if (cache.metrics().value(cachet::Event::miss) != misses) state.SkipWithError("a miss");
}
void l1_hit(benchmark::State& state) { l1_hit_of(state, "1"); }

// Each thread reads its own 16 keys in turn: threads reading different hot keys.
void l1_hit_own_keys(benchmark::State& state) {
  auto& cache = fixture().tiered;
  std::vector<std::string> ids;
  for (int i = 0; i < 16; ++i) ids.push_back("t" + std::to_string(state.thread_index()) + "-" + std::to_string(i));
  for (const auto& id : ids) cache.set(id, item(1));
  fixture().tracking.sync();  // our own writes' invalidations are back
  for (const auto& id : ids) cache.get_shared(id);
  std::size_t i = 0;
  measure(state, [&] { return cache.get_shared(ids[i++ % ids.size()]); });
}

// The in-process baseline: a lookup in a map behind a reader-writer lock and a
// copy of the value out (the Item's 32-byte name allocates, as l1_hit_copy's does).
void shared_mutex_map_copy_of(benchmark::State& state, const std::string& key) {
  static std::unordered_map<std::string, Item> map{{"bench:tiered:1", item(1)},
                                                   {std::string("bench:tiered:") + uuid_id, item(1)}};
  static std::shared_mutex mutex;
  measure(state, [&] {
    std::shared_lock lock(mutex);
    return map.find(key)->second;
  });
}
void shared_mutex_map_copy(benchmark::State& state) { shared_mutex_map_copy_of(state, "bench:tiered:1"); }

// get() copies the Item out of L1 (its two strings).
void l1_hit_copy(benchmark::State& state) {
  auto& cache = fixture().tiered;
  cache.get("1");
  measure(state, [&] { return cache.get("1"); });
}

}  // namespace

BENCHMARK(raw_hiredis_get)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(redis_hit)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(shared_mutex_map_copy)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(l1_hit)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK_CAPTURE(shared_mutex_map_copy_of, uuid, std::string("bench:tiered:") + uuid_id)->Threads(1)->UseRealTime();
BENCHMARK_CAPTURE(l1_hit_of, uuid, std::string(uuid_id))->Threads(1)->UseRealTime();
BENCHMARK(l1_hit_own_keys)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(l1_hit_copy)->Threads(1)->Threads(2)->UseRealTime();

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  fixture();  // before timing starts
  cachet::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios({{"redis_hit/threads:1", "l1_hit/threads:1"},
                         {"redis_hit/threads:2", "l1_hit/threads:2"},
                         {"redis_hit/threads:2", "l1_hit_own_keys/threads:2"}},
                        "how many times an L1 hit is faster than a Redis hit (same run; target >= 500)");
  reporter.print_ratios({{"l1_hit/threads:1", "shared_mutex_map_copy/threads:1"},
                         {"l1_hit/threads:2", "shared_mutex_map_copy/threads:2"},
                         {"l1_hit_of/uuid/threads:1", "shared_mutex_map_copy_of/uuid/threads:1"}},
                        "an L1 hit against a map behind a shared_mutex (same run; target <= 1.3 on one thread, < 1 on two)");
  reporter.print_ratios({{"redis_hit/threads:1", "raw_hiredis_get/threads:1"}, {"l1_hit_copy/threads:1", "l1_hit/threads:1"}},
                        "for scale");
  benchmark::Shutdown();
}
