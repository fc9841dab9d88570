// A cache stampede and its cure. Many threads read one key whose value expires
// every --ttl ms and takes --load ms to compute. Without a guard every reader
// that finds the key missing runs the loader; with cachet's StampedeGuard
// (single-flight in process, a Redis lock across processes) one does and the
// others wait for its value.
//
//   stampede [--socket PATH | --host H --port P] [--password PW]
//            [--threads N] [--seconds S] [--ttl MS] [--load MS]
//
// Exits 1 if the guarded run called the loader more than once per expiry (+1).

#include "common/cli.hpp"

#include <cachet/cachet.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct Args {
  int threads = 64, seconds = 3, ttl_ms = 500, load_ms = 50;
};

// Runs the readers on one key for the given time; returns how often the loader ran.
// A read that fails (a lock wait that timed out, say) is what a request handler
// would answer with an error: counted and reported, and the reader goes on.
template <class Cache>
int hammer(Cache& cache, const Args& a) {
  std::atomic<int> loads{0}, failed{0};
  std::atomic<bool> stop{false};
  auto loader = [&](std::string_view) {
    loads.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(a.load_ms));
    return std::string("the expensive answer");
  };
  std::vector<std::thread> readers;
  for (int i = 0; i < a.threads; ++i)
    readers.emplace_back([&] {
      while (!stop.load()) {
        try {
          cache.get_or_load("hot", loader);
        } catch (const cachet::Error& e) {
          if (failed.fetch_add(1) == 0) std::fprintf(stderr, "stampede: a read failed: %s\n", e.what());
        }
      }
    });
  std::this_thread::sleep_for(std::chrono::seconds(a.seconds));
  stop = true;
  for (auto& t : readers) t.join();
  if (failed.load() != 0) std::printf("  %d reads failed (see the first above)\n", failed.load());
  return loads.load();
}

}  // namespace

int main(int argc, char** argv) {
  example::Cli cli("stampede", "A cache stampede, unguarded and under cachet's StampedeGuard.");
  Args a;
  cli.positive("--threads", a.threads, "reader threads");
  cli.positive("--seconds", a.seconds, "seconds per run");
  cli.positive("--ttl", a.ttl_ms, "the key's TTL, ms");
  cli.positive("--load", a.load_ms, "how long a load takes, ms");
  cli.parse(argc, argv);
  try {
    cachet::Pool pool(cli.redis(), {.size = static_cast<std::size_t>(a.threads) + 2, .wait_timeout = std::chrono::seconds(5)});
    auto options = [&](const char* name) {
      return cachet::CacheOptions{.ns = "stampede", .name = name,
                                  .ttl = cachet::TtlPolicy({.fresh = std::chrono::milliseconds(a.ttl_ms), .jitter = 0})};
    };
    const int expiries = a.seconds * 1000 / a.ttl_ms;
    std::printf("%d threads read one key for %d s; it expires every %d ms (%d times) and takes %d ms to load\n",
                a.threads, a.seconds, a.ttl_ms, expiries, a.load_ms);

    cachet::CacheAside<std::string, cachet::StringCodec> bare(cachet::RedisStore(pool), options("bare"));
    bare.invalidate("hot");
    const int unguarded = hammer(bare, a);
    std::printf("  no guard:        %5d loader calls (%.1f per expiry)\n", unguarded, static_cast<double>(unguarded) / expiries);

    auto guarded = cachet::make_cache<std::string, cachet::StringCodec>(pool, options("guarded"));
    guarded.invalidate("hot");
    const int with_guard = hammer(guarded, a);
    std::printf("  StampedeGuard:   %5d loader calls (%.1f per expiry)\n", with_guard, static_cast<double>(with_guard) / expiries);

    if (with_guard > expiries + 1) {
      std::fprintf(stderr, "stampede: FAILED: the guarded key was loaded %d times for %d expiries\n", with_guard, expiries);
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stampede: %s\n", e.what());
    return 1;
  }
}
