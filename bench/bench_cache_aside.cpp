// The read path's cost over the work it cannot avoid, in the same run:
// - a CacheAside hit through RedisStore next to raw hiredis GET + nlohmann::json
//   parse + from_json of the same ~100-byte JSON value (target <= 1.05x);
// - the same hit through make_cache's default stampede guard;
// - get_many of 100 hits, plain and envelope, next to raw hiredis MGET of the
//   same 100 plain values + the same parse (target <= 1.03x), and to 100 single gets.
// Pinned, as bench/README.md explains:
//   taskset -c 0 build/bench/bench/bench_cache_aside --benchmark_repetitions=10
//   --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true

#include "bench_fixture.hpp"
#include "read_loops.hpp"
#include "ratio_reporter.hpp"

#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/make.hpp>
#include <cachet/testing/redis_server.hpp>

#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using cachet::bench::Item;
using cachet::bench::item;
using cachet::bench::ids;

struct Fixture {
  cachet::testing::RedisServer& server = cachet::bench::server();
  cachet::Pool pool{server.tcp_connection_options(), {.size = 1}};
};
Fixture& fixture() {
  static Fixture f;
  return f;
}

cachet::CacheOptions options(cachet::Format format) {
  cachet::CacheOptions o = cachet::bench::cache_options(format == cachet::Format::plain ? "plain" : "enveloped");
  o.format = format;
  return o;
}

void raw_hiredis_get_parse(benchmark::State& state) {
  const std::string key = "bench:raw:1";
  const std::string json = nlohmann::json(item(1)).dump();
  fixture().server.connect().command({"SET", key, json});
  redisContext* c = redisConnect("127.0.0.1", fixture().server.port());
  const char* argv[] = {"GET", key.data()};
  const size_t lens[] = {3, key.size()};
  for (auto _ : state) {
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, 2, argv, lens));
    Item v = nlohmann::json::parse(std::string_view(r->str, r->len)).get<Item>();
    benchmark::DoNotOptimize(v);
    freeReplyObject(r);
  }
  redisFree(c);
  state.counters["json_bytes"] = static_cast<double>(json.size());
}

void cache_aside_hit(benchmark::State& state, cachet::Format format) {
  cachet::CacheAside<Item> cache(cachet::RedisStore(fixture().pool), options(format));
  cachet::bench::hit_loop(state, cache);
}
// make_cache's default: the same hit behind SingleFlight + RedisLockGuard (a hit never reaches them).
void cache_aside_hit_guarded(benchmark::State& state) {
  auto cache = cachet::make_cache<Item>(fixture().pool, options(cachet::Format::envelope));
  cachet::bench::hit_loop(state, cache);
}
void cache_aside_hit_plain(benchmark::State& s) { cache_aside_hit(s, cachet::Format::plain); }
void cache_aside_hit_envelope(benchmark::State& s) { cache_aside_hit(s, cachet::Format::envelope); }

void cache_aside_100_single_gets(benchmark::State& state) {
  cachet::CacheAside<Item> cache(cachet::RedisStore(fixture().pool), options(cachet::Format::envelope));
  const auto keys = ids(100);
  auto load = [](std::string_view id) { return item(std::stoll(std::string(id))); };
  for (const auto& id : keys) cache.get_or_load(id, load);
  for (auto _ : state)
    for (const auto& id : keys) benchmark::DoNotOptimize(cache.get_or_load(id, load));
}

void cache_aside_get_many_100(benchmark::State& state, cachet::Format format) {
  cachet::CacheAside<Item> cache(cachet::RedisStore(fixture().pool), options(format));
  cachet::bench::get_many_100_loop(state, cache);
}
void cache_aside_get_many_100(benchmark::State& s) { cache_aside_get_many_100(s, cachet::Format::envelope); }
void cache_aside_get_many_100_plain(benchmark::State& s) { cache_aside_get_many_100(s, cachet::Format::plain); }

// One MGET + parse of the same 100 values (read_loops.hpp).
void raw_hiredis_mget_parse_100(benchmark::State& state) {
  cachet::bench::raw_mget_parse_100(state, fixture().pool, fixture().server.port());
}

}  // namespace

BENCHMARK(raw_hiredis_get_parse);
BENCHMARK(cache_aside_hit_plain);
BENCHMARK(cache_aside_hit_envelope);
BENCHMARK(cache_aside_hit_guarded);
BENCHMARK(cache_aside_100_single_gets);
BENCHMARK(raw_hiredis_mget_parse_100);
BENCHMARK(cache_aside_get_many_100_plain);
BENCHMARK(cache_aside_get_many_100);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  cachet::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios({{"cache_aside_hit_plain", "raw_hiredis_get_parse"},
                         {"cache_aside_hit_envelope", "raw_hiredis_get_parse"},
                         {"cache_aside_hit_guarded", "raw_hiredis_get_parse"},
                         {"cache_aside_get_many_100_plain", "raw_hiredis_mget_parse_100"},
                         {"cache_aside_get_many_100", "raw_hiredis_mget_parse_100"},
                         {"cache_aside_get_many_100", "cache_aside_100_single_gets"}});
  benchmark::Shutdown();
}
