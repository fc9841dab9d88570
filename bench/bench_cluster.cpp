// The same reads on a Redis Cluster (3 masters, no replicas, on loopback) and on
// one redis-server, in the same run (issue 17's targets):
// - a CacheAside hit (envelope format) on the cluster next to the same hit on
//   one server (target <= 1.05x): routing costs a slot computation per read;
// - get_many of 100 hits spread over the 3 masters (one pipeline per node, sent
//   to every node before any reply is read) next to one server's single MGET of
//   the same 100 values + the same parse (target <= 1.5x), next to get_many
//   on one server, and next to raw hiredis doing the cluster's work (a GET per
//   key, a pipeline per master): the floor any client pays there.
// Pinned (servers inherit the affinity), as bench/README.md explains:
//   taskset -c 0 build/bench/bench/bench_cluster --benchmark_repetitions=10
//   --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true

#include "bench_fixture.hpp"
#include "read_loops.hpp"
#include "ratio_reporter.hpp"

#include <cachet/policy/cache_aside.hpp>
#include <cachet/testing/redis_cluster.hpp>
#include <cachet/testing/redis_server.hpp>

#include <benchmark/benchmark.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

using cachet::bench::Item;
using cachet::bench::item;

struct Fixture {
  cachet::testing::RedisServer& server = cachet::bench::server();
  cachet::testing::RedisCluster cluster{{.replicas_per_master = 0}};
  cachet::Pool single{server.tcp_connection_options(), {.size = 1}};
  cachet::Pool sharded{cluster.client_options(), {.size = 1}};
};
Fixture& fixture() {
  static Fixture f;
  return f;
}

void hit(benchmark::State& state, cachet::Pool& pool) {
  cachet::CacheAside<Item> cache(cachet::RedisStore(pool), cachet::bench::cache_options("hit"));
  cachet::bench::hit_loop(state, cache);
}
void single_hit(benchmark::State& s) { hit(s, fixture().single); }
void cluster_hit(benchmark::State& s) { hit(s, fixture().sharded); }

void get_many_100(benchmark::State& state, cachet::Pool& pool) {
  cachet::CacheAside<Item> cache(cachet::RedisStore(pool), cachet::bench::cache_options("many"));
  cachet::bench::get_many_100_loop(state, cache);
}
void single_get_many_100(benchmark::State& s) { get_many_100(s, fixture().single); }
void cluster_get_many_100(benchmark::State& s) { get_many_100(s, fixture().sharded); }

// One MGET + parse of the same 100 values (read_loops.hpp).
void raw_hiredis_mget_parse_100(benchmark::State& state) {
  cachet::bench::raw_mget_parse_100(state, fixture().single, fixture().server.port());
}

// The same 100 GETs, one pipeline per master, with nothing but hiredis (read_loops.hpp).
void raw_hiredis_cluster_get_parse_100(benchmark::State& state) {
  cachet::bench::raw_cluster_get_parse_100(state, fixture().sharded);
}

}  // namespace

BENCHMARK(single_hit);
BENCHMARK(cluster_hit);
BENCHMARK(raw_hiredis_mget_parse_100);
BENCHMARK(single_get_many_100);
BENCHMARK(cluster_get_many_100);
BENCHMARK(raw_hiredis_cluster_get_parse_100);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  cachet::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios({{"cluster_hit", "single_hit"},
                         {"cluster_get_many_100", "raw_hiredis_mget_parse_100"},
                         {"cluster_get_many_100", "single_get_many_100"},
                         {"raw_hiredis_cluster_get_parse_100", "raw_hiredis_mget_parse_100"},
                         {"cluster_get_many_100", "raw_hiredis_cluster_get_parse_100"}});
  benchmark::Shutdown();
}
