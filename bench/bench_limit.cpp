// A GCRA rate-limit decision through cachet (RateLimiter::allow: the key, the
// arguments, a pooled connection, EVALSHA, the result) next to the raw round
// trip it needs: EVALSHA of the same script with the same key and arguments by
// raw hiredis on one connection; same private redis-server, same run. The limit
// is so high that every call is allowed, so both sides write the key each time.
//   taskset -c 0 build/bench/bench/bench_limit --benchmark_repetitions=10
//       --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true
// Client instructions (callgrind): bench_limit --instructions N runs N decisions
// each way with instrumentation on around the loops only:
//   valgrind --tool=callgrind --instr-atstart=no build/bench/bench/bench_limit --instructions 2000

#include "ratio_reporter.hpp"

#include <cachet/limit/detail/scripts.hpp>
#include <cachet/limit/rate_limiter.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/testing/redis_server.hpp>

#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>
#include <valgrind/callgrind.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr cachet::Gcra kLimit{.rate = 1'000'000, .period = 1s};  // never denies here

cachet::testing::RedisServer& server() {
  static cachet::testing::RedisServer instance({.tcp = true});
  return instance;
}

struct Raw {
  redisContext* c;
  std::string sha, key;
  std::vector<std::string> args;  // EVALSHA sha 1 key cost algorithm a b
  Raw() {
    c = redisConnect("127.0.0.1", server().port());
    if (!c || c->err) throw std::runtime_error("raw hiredis connect failed");
    auto* r = static_cast<redisReply*>(redisCommand(c, "SCRIPT LOAD %s", cachet::detail::rate_limit_script));
    sha.assign(r->str, r->len);
    freeReplyObject(r);
    cachet::Pool pool(server().tcp_connection_options(), {.size = 1});
    const auto spec = cachet::detail::spec(kLimit);
    key = cachet::make_rate_limiter(pool, kLimit).key("user:42");
    args = {"EVALSHA", sha, "1", key, "1", std::to_string(spec.algorithm), std::to_string(spec.a), std::to_string(spec.b)};
  }
  ~Raw() { redisFree(c); }
  bool decide() {
    const char* argv[8];
    size_t lens[8];
    for (int i = 0; i < 8; ++i) argv[i] = args[i].data(), lens[i] = args[i].size();
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, 8, argv, lens));
    const bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 6 && r->element[0]->integer == 1;
    freeReplyObject(r);
    return ok;
  }
};

struct Cachet {
  cachet::Pool pool{server().tcp_connection_options(), {.size = 1}};
  cachet::RateLimiter limiter = cachet::make_rate_limiter(pool, kLimit);
  bool decide() { return limiter.allow("user:42").allowed; }
};

template <class Side>
void decide(benchmark::State& state) {
  Side side;
  for (auto _ : state)
    if (!side.decide()) state.SkipWithError("denied or a bad reply");
}

void raw_hiredis_evalsha_gcra(benchmark::State& state) { decide<Raw>(state); }
void cachet_gcra_allow(benchmark::State& state) { decide<Cachet>(state); }

BENCHMARK(raw_hiredis_evalsha_gcra);
BENCHMARK(cachet_gcra_allow);

// N decisions each way, instrumented around the loops only (see the top).
template <class Side>
void instrumented(int n) {
  Side side;
  side.decide();  // the script loaded, the connection open
  CALLGRIND_START_INSTRUMENTATION;
  for (int i = 0; i < n; ++i) side.decide();
  CALLGRIND_STOP_INSTRUMENTATION;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--instructions") {
    const int n = std::atoi(argv[2]);
    if (std::getenv("BENCH_SIDE") == nullptr || std::string(std::getenv("BENCH_SIDE")) == "raw") instrumented<Raw>(n);
    else instrumented<Cachet>(n);
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  cachet::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios({{"cachet_gcra_allow", "raw_hiredis_evalsha_gcra"}});
  benchmark::Shutdown();
}
