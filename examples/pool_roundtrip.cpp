// SET and GET through a cachet::Pool from several threads, with round-trip
// percentiles. Without --host/--socket it starts its own throwaway redis-server.
//
//   pool_roundtrip [--socket PATH | --host H --port P] [--password PW]
//                  [--threads N] [--requests N] [--value-size BYTES]

#include "common/cli.hpp"

#include <cachet/redis/pool.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct Args {
  int threads = 4;
  int requests = 20'000;
  int value_size = 100;
};

Args parse(int argc, char** argv, example::Cli& cli) {
  Args a;
  cli.positive("--threads", a.threads, "client threads");
  cli.positive("--requests", a.requests, "requests per operation");
  cli.positive("--value-size", a.value_size, "bytes per value");
  cli.parse(argc, argv);
  return a;
}

void report(const char* op, std::vector<double> us, std::chrono::duration<double> wall) {
  const double count = static_cast<double>(us.size());
  const double p50 = example::percentile(us, 0.50), p95 = example::percentile(us, 0.95),
               p99 = example::percentile(us, 0.99);
  std::printf("%-4s %9.0f ops/s   p50 %7.1f us   p95 %7.1f us   p99 %7.1f us\n", op, count / wall.count(), p50, p95,
              p99);
}

// Runs `op(pool, i)` `requests` times split over `threads`, timing each call.
template <class Op>
void run(const char* name, cachet::Pool& pool, const Args& a, Op op) {
  std::vector<std::vector<double>> per_thread(static_cast<std::size_t>(a.threads));
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(a.threads));
  const auto start = clock_type::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < a.threads; ++t) {
    workers.emplace_back([&, t] {
      auto& lat = per_thread[static_cast<std::size_t>(t)];
      try {
        for (int i = t; i < a.requests; i += a.threads) {
          const auto t0 = clock_type::now();
          op(pool, i);
          lat.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
        }
      } catch (...) {
        errors[static_cast<std::size_t>(t)] = std::current_exception();
      }
    });
  }
  for (auto& w : workers) w.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);  // reported by main
  const auto wall = clock_type::now() - start;
  std::vector<double> all;
  for (auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
  report(name, std::move(all), wall);
}

}  // namespace

int main(int argc, char** argv) {
  example::Cli cli("pool_roundtrip",
                   "SET and GET through a cachet::Pool from several threads, with round-trip percentiles.\n"
                   "Without --socket or --host it starts its own throwaway redis-server.");
  const Args a = parse(argc, argv, cli);
  try {
    cachet::Pool pool(cli.redis(), {.size = static_cast<std::size_t>(std::min(a.threads, 16)), .wait_timeout = std::chrono::seconds{5}});
    const std::string value(static_cast<std::size_t>(a.value_size), 'x');
    std::printf("%d requests per operation, %d threads, %d-byte values, pool of %zu\n", a.requests, a.threads,
                a.value_size, pool.options().size);

    run("SET", pool, a, [&](cachet::Pool& p, int i) {
      p.with([&](cachet::Connection& c) { c.command({"SET", "roundtrip:" + std::to_string(i % 1000), value}); });
    });
    run("GET", pool, a, [&](cachet::Pool& p, int i) {
      p.with([&](cachet::Connection& c) {
        if (c.command({"GET", "roundtrip:" + std::to_string(i % 1000)}).as_string().size() != value.size())
          throw cachet::Error("GET returned a value of the wrong size");
      });
    });

    const auto s = pool.stats();
    std::printf("pool: %llu created, %llu discarded, %llu waits (max %.1f us)\n",
                static_cast<unsigned long long>(s.created), static_cast<unsigned long long>(s.discarded),
                static_cast<unsigned long long>(s.waits),
                std::chrono::duration<double, std::micro>(s.max_wait_time).count());
  } catch (const std::exception& e) {  // a worker's Redis error comes here too, rethrown by run()
    std::fprintf(stderr, "pool_roundtrip: %s\n", e.what());
    return 1;
  }
  return 0;
}
