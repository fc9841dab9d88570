// A 64-thread stampede on one expiring key, unguarded cache-aside next to the
// StampedeGuard (SingleFlight + RedisLockGuard), in the same run. Each iteration
// is one expiry: the key is deleted, 64 threads read it at once through a
// barrier, the loader takes 20 ms. Reported per expiry: loader calls, and the
// readers' latency p50/p99 (from each get_or_load call to its return). Targets: one
// loader call per expiry, p99 within loader time + 5 ms. Multi-threaded, so
// unpinned (bench/README.md):
//   build/bench/bench/bench_stampede --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include "bench_fixture.hpp"

#include <cachet/codec/string.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/testing/redis_server.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int readers = 64;
constexpr auto loader_time = std::chrono::milliseconds(20);

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

// One expiry per iteration; the 64 readers live for the whole benchmark.
template <class G>
void stampede(benchmark::State& state, G guard, const std::string& name) {
  cachet::Pool pool(cachet::bench::server().tcp_connection_options(), {.size = 16, .wait_timeout = std::chrono::seconds(5)});
  cachet::CacheAside<std::string, cachet::StringCodec, G> cache(cachet::RedisStore(pool), cachet::bench::cache_options(name), {},
                                                                 std::move(guard));
  auto conn = cachet::bench::server().connect();
  std::atomic<long> loads{0}, errors{0};
  std::vector<double> latency_ms(readers);
  std::vector<double> all_ms;
  bool stop = false;
  std::barrier go(readers + 1), done(readers + 1);
  std::vector<std::thread> threads;
  for (int i = 0; i < readers; ++i) {
    threads.emplace_back([&, i] {
      for (;;) {
        go.arrive_and_wait();
        if (stop) return;
        const auto called = std::chrono::steady_clock::now();
        try {  // a thread's exception would end the process: a failed read is counted and reported
          cache.get_or_load("hot", [&](std::string_view) {
            ++loads;
            std::this_thread::sleep_for(loader_time);
            return std::string(100, 'x');
          });
        } catch (const cachet::Error&) {
          ++errors;
        }
        latency_ms[static_cast<std::size_t>(i)] =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - called).count();
        done.arrive_and_wait();
      }
    });
  }
  for (auto _ : state) {
    state.PauseTiming();
    conn.command({"DEL", cache.key("hot")});  // the expiry
    state.ResumeTiming();
    go.arrive_and_wait();
    done.arrive_and_wait();
    all_ms.insert(all_ms.end(), latency_ms.begin(), latency_ms.end());
  }
  stop = true;
  go.arrive_and_wait();
  for (auto& t : threads) t.join();
  state.counters["loads_per_expiry"] = static_cast<double>(loads) / static_cast<double>(state.iterations());
  state.counters["p50_ms"] = percentile(all_ms, 0.50);
  state.counters["p99_ms"] = percentile(all_ms, 0.99);
  state.counters["loader_ms"] = std::chrono::duration<double, std::milli>(loader_time).count();
  if (errors != 0) state.SkipWithError(("failed reads: " + std::to_string(errors.load())).c_str());
}

void unguarded(benchmark::State& state) { stampede(state, cachet::NoGuard{}, "unguarded"); }

void guarded(benchmark::State& state) {
  static cachet::Pool lock_pool(cachet::bench::server().tcp_connection_options());
  stampede(state, cachet::StampedeGuard(cachet::SingleFlight{}, cachet::RedisLockGuard(lock_pool)), "guarded");
}

}  // namespace

BENCHMARK(unguarded)->Iterations(50)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(guarded)->Iterations(50)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
