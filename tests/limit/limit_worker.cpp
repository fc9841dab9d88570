// The other processes of the multi-process rate-limit tests, exec'd fresh.
//
// <target>: a socket path, or "cluster:" and the seeds (test::Target::address()).
//
//   limit_worker burst <target> gcra|bucket  5 threads check in, wait for "go", then make 50 requests
//                                            each on one identity; adds its allowed count to "allowed"
//   limit_worker hammer <target> -           decides forever on many identities with every algorithm
//                                            (to be SIGKILLed mid-call); counts calls in "calls"
//   limit_worker hold <target> -             takes the one concurrency place and hangs (to be SIGKILLed)
#include <support/client.hpp>
#include <support/concurrency.hpp>

#include "limit_fixtures.hpp"

#include <atomic>
#include <string>
#include <thread>

using namespace cachet::test;

namespace {

int burst(const cachet::ConnectionOptions& redis, const std::string& algorithm) {
  cachet::Pool pool(redis, roomy_pool());
  cachet::RateLimiter limiter = algorithm == "gcra" ? cachet::make_rate_limiter(pool, hundred_a_day)
                                                    : cachet::make_rate_limiter(pool, hundred_tokens);
  std::atomic<long long> allowed{0};
  in_threads(5, [&](int) {
    Client conn(redis);
    conn.command({"INCR", "ready"});
    while (conn.command({"EXISTS", "go"}).as_integer() == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    for (int i = 0; i < 50; ++i) allowed += limiter.allow("shared").allowed;
  });
  Client(redis).command({"INCRBY", "allowed", allowed.load()});
  return 0;
}

[[noreturn]] void hammer(const cachet::ConnectionOptions& redis) {
  cachet::Pool pool(redis, roomy_pool());
  const cachet::RateLimiterOptions o{.prefix = "hammer"};
  auto gcra = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 1000, .period = 1s}, o);
  auto fixed = cachet::make_rate_limiter(pool, cachet::FixedWindow{.limit = 1000, .window = 60s}, o);
  auto sliding = cachet::make_rate_limiter(pool, cachet::SlidingWindow{.limit = 1000, .window = 60s}, o);
  auto bucket = cachet::make_rate_limiter(pool, cachet::TokenBucket{.capacity = 1000, .refill = 10, .period = 1s}, o);
  cachet::ConcurrencyLimiter inflight(pool, {.limit = 100, .lease = 60s}, {.prefix = "hammer"});
  in_threads(4, [&](int t) {
    Client conn(redis);
    for (long long i = 0;; ++i) {
      const std::string id = std::to_string(t) + ":" + std::to_string(i % 50);
      auto permit = inflight.acquire(id);  // held over the calls, so a kill leaves leases
      cachet::allow_all({{gcra, id}, {fixed, id}, {sliding, id}, {bucket, id}});
      conn.command({"INCR", "calls"});
    }
  });
  std::abort();  // in_threads never returns
}

[[noreturn]] void hold(const cachet::ConnectionOptions& redis) {
  cachet::Pool pool(redis);
  cachet::ConcurrencyLimiter limiter(pool, one_in_flight);
  auto permit = limiter.acquire("user");
  Client(redis).command({"RPUSH", "held", permit ? "yes" : "no"});
  std::this_thread::sleep_for(std::chrono::hours(1));  // SIGKILLed while holding
  std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  const std::string mode = argv[1], arg = argv[3];
  const cachet::ConnectionOptions redis = target_options(argv[2]);
  try {
    if (mode == "burst") return burst(redis, arg);
    if (mode == "hammer") hammer(redis);
    if (mode == "hold") hold(redis);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "limit_worker %s: %s\n", mode.c_str(), e.what());
    return 1;
  }
  return 2;
}
