// GET of a 100-byte value, and a pipeline of 100 GETs: through cachet's Pool
// next to raw hiredis on one connection, against the same private redis-server,
// in the same run; and the same through the Pool over TLS (its cost, recorded). For stable ratios pin everything to one CPU (the server
// inherits the affinity):
//   taskset -c 0 build/bench/bench/bench_redis --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include "ratio_reporter.hpp"
#include "raw_context.hpp"

#include <cachet/redis/pipeline.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/testing/redis_server.hpp>

#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

namespace {

constexpr int kKeys = 100;

struct Fixture {
  cachet::testing::RedisServer server{{.tcp = true, .tls = true}};
  std::vector<std::string> keys;
  Fixture() {
    auto conn = server.connect();
    for (int i = 0; i < kKeys; ++i) {
      keys.push_back("bench:key:" + std::to_string(i));
      conn.command({"SET", keys.back(), std::string(100, 'v')});
    }
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

struct RawContext : cachet::bench::RawContext {
  RawContext() : cachet::bench::RawContext(fixture().server.port()) {}
};

void raw_hiredis_get(benchmark::State& state) {
  RawContext raw;
  const std::string& key = fixture().keys[0];
  const char* argv[] = {"GET", key.data()};
  const size_t lens[] = {3, key.size()};
  for (auto _ : state) {
    auto* r = static_cast<redisReply*>(redisCommandArgv(raw.c, 2, argv, lens));
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 100) state.SkipWithError("bad reply");
    benchmark::DoNotOptimize(r);
    freeReplyObject(r);
  }
}

void pool_get(benchmark::State& state, const cachet::ConnectionOptions& options) {
  cachet::Pool pool(options, {.size = 1});
  const std::string& key = fixture().keys[0];
  for (auto _ : state) {
    auto lease = pool.acquire();
    auto r = lease->command({"GET", key});
    if (r.as_string().size() != 100) state.SkipWithError("bad reply");
    benchmark::DoNotOptimize(r);
  }
}

void cachet_pool_get(benchmark::State& state) { pool_get(state, fixture().server.tcp_connection_options()); }
void cachet_pool_get_tls(benchmark::State& state) { pool_get(state, fixture().server.tls_connection_options()); }

void raw_hiredis_pipeline100(benchmark::State& state) {
  RawContext raw;
  const auto& keys = fixture().keys;
  for (auto _ : state) {
    for (const auto& key : keys) {
      const char* argv[] = {"GET", key.data()};
      const size_t lens[] = {3, key.size()};
      redisAppendCommandArgv(raw.c, 2, argv, lens);
    }
    for (int i = 0; i < kKeys; ++i) {
      void* r = nullptr;
      if (redisGetReply(raw.c, &r) != REDIS_OK) state.SkipWithError("read failed");
      benchmark::DoNotOptimize(r);
      freeReplyObject(r);
    }
  }
}

// 100 GETs through the pool; `execute` decides how the replies are taken.
template <class Execute>
void cachet_pipeline(benchmark::State& state, Execute execute, bool tls = false) {
  const auto& server = fixture().server;
  cachet::Pool pool(tls ? server.tls_connection_options() : server.tcp_connection_options(), {.size = 1});
  const auto& keys = fixture().keys;
  for (auto _ : state) {
    auto lease = pool.acquire();
    cachet::Pipeline p(*lease);
    for (const auto& key : keys) p.add({"GET", key});
    execute(state, p);
  }
}

void cachet_pool_pipeline100(benchmark::State& state) {
  cachet_pipeline(state, [](benchmark::State& st, cachet::Pipeline& p) {
    auto replies = p.execute();
    if (replies.size() != kKeys) st.SkipWithError("bad reply count");
    benchmark::DoNotOptimize(replies);
  });
}

// The streaming form: each reply is handled and freed as it is read, like the raw loop.
void pipeline100_streamed(benchmark::State& state, bool tls) {
  auto streamed = [](benchmark::State&, cachet::Pipeline& p) {
    p.execute([&](cachet::Reply&& r) { benchmark::DoNotOptimize(r); });
  };
  cachet_pipeline(state, streamed, tls);
}
void cachet_pool_pipeline100_streamed(benchmark::State& state) { pipeline100_streamed(state, false); }
void cachet_pool_pipeline100_streamed_tls(benchmark::State& state) { pipeline100_streamed(state, true); }

}  // namespace

BENCHMARK(raw_hiredis_get);
BENCHMARK(cachet_pool_get);
BENCHMARK(raw_hiredis_pipeline100);
BENCHMARK(cachet_pool_pipeline100);
BENCHMARK(cachet_pool_pipeline100_streamed);
BENCHMARK(cachet_pool_get_tls);
BENCHMARK(cachet_pool_pipeline100_streamed_tls);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  cachet::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios({{"cachet_pool_get", "raw_hiredis_get"}, {"cachet_pool_pipeline100", "raw_hiredis_pipeline100"},
                         {"cachet_pool_pipeline100_streamed", "raw_hiredis_pipeline100"}});
  reporter.print_ratios({{"cachet_pool_get_tls", "cachet_pool_get"},
                         {"cachet_pool_pipeline100_streamed_tls", "cachet_pool_pipeline100_streamed"}},
                        "the cost of TLS (same run; recorded, no target)");
  benchmark::Shutdown();
}
