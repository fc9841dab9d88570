// Write throughput and per-write latency of WriteThrough next to WriteBehind,
// both writing into the same SQLite writer (one file, WAL, synchronous=NORMAL),
// in the same run, next to the database alone (the same upserts, no cache); and
// WriteBehind's coalescing factor under a Zipf(0.99) key stream. Each iteration
// is 2000 writes of ~100-byte values spread over the threads, which live for the
// whole benchmark; latency is per call. WriteBehind's `drained_per_s` is its
// end-to-end rate: the writes over the loop plus the final flush().
//
// SQLite in process commits in about 20 us, less than a Redis round trip; a
// database across a network costs a round trip or more per call. The `_1ms_db`
// cases model that: every database call (an upsert, a batch) first sleeps 1 ms,
// outside SQLite's lock, as a network round trip would. Multi-threaded, so
// unpinned (bench/README.md):
//   build/bench/bench/bench_write_policies --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <cachet/codec/string.hpp>
#include <cachet/policy/write_behind.hpp>
#include <cachet/policy/write_through.hpp>
#include <cachet/testing/redis_server.hpp>

#include <benchmark/benchmark.h>
#include <support/sqlite_db.hpp>
#include <support/zipf.hpp>

#include "bench_fixture.hpp"
#include "ratio_reporter.hpp"

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
constexpr int writes_per_iteration = 2000;
constexpr std::size_t ids = 10'000;

cachet::CacheOptions options(std::string name) {
  cachet::CacheOptions o = cachet::bench::cache_options(std::move(name));
  o.keys.hash_tag = cachet::HashTag::ns;
  return o;
}

// One SQLite connection per thread, as a database client pool would give.
cachet::test::TestDb& db() {
  static const std::string path = cachet::test::TestDb::fresh(cachet::bench::server().directory() + "/bench.sqlite");
  thread_local cachet::test::TestDb connection(path);
  return connection;
}

// How a case runs: writer threads, and the simulated round trip of each database call.
struct Case {
  int threads;
  std::chrono::microseconds db_rtt{0};
};

void round_trip(const Case& c) {
  if (c.db_rtt.count() > 0) std::this_thread::sleep_for(c.db_rtt);
}

struct RowWriter {  // write-through: an upsert per write, returning the row's version
  Case c;
  std::int64_t operator()(std::string_view id, const std::string& value) const {
    round_trip(c);
    return db().update(id, value);
  }
};
struct BatchWriter {  // write-behind: one transaction per batch
  Case c;
  void operator()(std::span<const cachet::PendingWrite<std::string>> batch) const {
    round_trip(c);
    db().apply(batch);
  }
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

// Runs `write(id, value)` writes_per_iteration times per iteration over `threads`
// threads, ids from `keys`; reports writes/s, p50 and p99 in µs.
template <class Write>
void run(benchmark::State& state, int threads, const std::vector<std::uint32_t>& keys, Write write) {
  const int per_thread = writes_per_iteration / threads;
  const std::string value(100, 'v');
  std::vector<std::vector<double>> latency_us(static_cast<std::size_t>(threads));
  std::atomic<std::size_t> next{0};
  std::atomic<long> errors{0};
  bool stop = false;
  std::barrier go(threads + 1), done(threads + 1);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (;;) {
        go.arrive_and_wait();
        if (stop) return;
        for (int i = 0; i < per_thread; ++i) {
          const std::string id = std::to_string(keys[next++ % keys.size()]);
          const auto started = clock_type::now();
          try {  // a thread's exception would end the process: a failed write is counted and reported
            write(id, value);
          } catch (const cachet::Error&) {
            ++errors;
          }
          latency_us[static_cast<std::size_t>(t)].push_back(
              std::chrono::duration<double, std::micro>(clock_type::now() - started).count());
        }
        done.arrive_and_wait();
      }
    });
  }
  for (auto _ : state) {
    const auto started = clock_type::now();
    go.arrive_and_wait();
    done.arrive_and_wait();
    state.SetIterationTime(std::chrono::duration<double>(clock_type::now() - started).count());
  }
  stop = true;
  go.arrive_and_wait();
  for (auto& w : workers) w.join();
  std::vector<double> all;
  for (const auto& l : latency_us) all.insert(all.end(), l.begin(), l.end());
  state.SetItemsProcessed(static_cast<std::int64_t>(all.size()));
  state.counters["p50_us"] = percentile(all, 0.50);
  state.counters["p99_us"] = percentile(all, 0.99);
  if (errors != 0) state.SkipWithError(("Redis errors: " + std::to_string(errors.load())).c_str());
}

const std::vector<std::uint32_t>& uniform_keys() {
  static const std::vector<std::uint32_t> keys = cachet::test::zipf_stream(ids, 0.0, 1 << 20, 1);
  return keys;
}

void database_only(benchmark::State& state, Case c) {
  const RowWriter upsert{c};
  run(state, c.threads, uniform_keys(), [&](const std::string& id, const std::string& v) { upsert(id, v); });
}

void write_through(benchmark::State& state, Case c) {
  cachet::Pool pool(cachet::bench::server().tcp_connection_options(), {.size = 8});
  cachet::CacheAside<std::string, cachet::StringCodec> entries(cachet::RedisStore(pool), options("wt"));
  auto cache = cachet::write_through(entries, RowWriter{c});
  run(state, c.threads, uniform_keys(), [&](const std::string& id, const std::string& v) { cache.put(id, v); });
}

// Writes through WriteBehind; the flusher runs meanwhile. Reports the coalescing
// factor (writes / rows written) and the end-to-end rate with the final flush.
void write_behind_on(benchmark::State& state, Case c, const std::vector<std::uint32_t>& keys) {
  static int instance = 0;  // a queue and cache name of its own per case
  const std::string name = "wb" + std::to_string(++instance);
  cachet::Pool pool(cachet::bench::server().tcp_connection_options(), {.size = 8});
  cachet::WriteBehindOptions o;
  o.queue = name;
  cachet::CacheAside<std::string, cachet::StringCodec> entries(cachet::RedisStore(pool), options(name));
  auto cache = cachet::write_behind(entries, BatchWriter{c}, o);
  const auto started = clock_type::now();
  run(state, c.threads, keys, [&](const std::string& id, const std::string& v) { cache.write(id, v); });
  cache.flush();
  const double seconds = std::chrono::duration<double>(clock_type::now() - started).count();
  const auto& m = cache.cache().metrics();
  const auto flushed = std::max<std::uint64_t>(m.value(cachet::Event::flushed), 1);
  state.counters["coalescing"] = double(m.value(cachet::Event::write)) / double(flushed);
  state.counters["drained_per_s"] = double(m.value(cachet::Event::write)) / seconds;
}

void write_behind(benchmark::State& state, Case c) { write_behind_on(state, c, uniform_keys()); }

void write_behind_zipf(benchmark::State& state, Case c) {
  static const std::vector<std::uint32_t> keys = cachet::test::zipf_stream(ids, 0.99, 1 << 20, 2);
  write_behind_on(state, c, keys);
}

using std::chrono::milliseconds;
#define WRITE_BENCHMARK(f)                                                                                           \
  BENCHMARK_CAPTURE(f, 1_thread, Case{1})->Iterations(20)->UseManualTime()->Unit(benchmark::kMillisecond);          \
  BENCHMARK_CAPTURE(f, 4_threads, Case{4})->Iterations(20)->UseManualTime()->Unit(benchmark::kMillisecond);         \
  BENCHMARK_CAPTURE(f, 4_threads_1ms_db, Case{4, milliseconds(1)})->Iterations(5)->UseManualTime()->Unit(benchmark::kMillisecond)

}  // namespace

WRITE_BENCHMARK(database_only);
WRITE_BENCHMARK(write_through);
WRITE_BENCHMARK(write_behind);
BENCHMARK_CAPTURE(write_behind_zipf, 1_thread, Case{1})->Iterations(20)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(write_behind_zipf, 4_threads, Case{4})->Iterations(20)->UseManualTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  cachet::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const char* c : {"1_thread", "4_threads", "4_threads_1ms_db"}) {
    pairs.emplace_back(std::string("write_through/") + c, std::string("database_only/") + c);
    pairs.emplace_back(std::string("write_behind/") + c, std::string("write_through/") + c);
  }
  reporter.print_ratios(pairs);
  benchmark::Shutdown();
}
