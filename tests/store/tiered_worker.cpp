// The other process of the two-tier coherence tests, exec'd fresh (a forked
// copy of a multi-threaded test may not start threads under ThreadSanitizer).
// It writes through its own cachet cache, as another instance of the service would.
//
//   tiered_worker pingpong <socket> <rounds>  on each "go" (BLPOP ctl:go) sets t:item:pp to "v<i>",
//                                             then reports when it sent the write (RPUSH ctl:sent)
//   tiered_worker writer <socket> <log> <ms>  for <ms>, writes hot0..hot15 in turn, values 1, 2, ...,
//                                             one every 250 us, recording each in the shared log
#include <cachet/codec/string.hpp>
#include <cachet/policy/cache_aside.hpp>

#include <support/tier_fixtures.hpp>
#include <support/write_log.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using cachet::test::steady_ns;

namespace {

using Cache = cachet::CacheAside<std::string, cachet::StringCodec>;

int pingpong(const cachet::ConnectionOptions& redis, int rounds) {
  cachet::Pool pool(redis);
  Cache cache(cachet::RedisStore(pool), cachet::test::tier_options("worker"));
  cachet::ConnectionOptions blocking = redis;
  blocking.command_timeout = 0ms;
  cachet::Connection conn(blocking);
  for (int i = 0; i < rounds; ++i) {
    const std::string round(conn.command({"BLPOP", "ctl:go", 0})[1].as_string());
    const std::int64_t sent = steady_ns();
    cache.set("pp", "v" + round);
    conn.command({"RPUSH", "ctl:sent", sent});
  }
  return 0;
}

int writer(const cachet::ConnectionOptions& redis, const std::string& path, std::chrono::milliseconds run_for) {
  cachet::Pool pool(redis);
  Cache cache(cachet::RedisStore(pool), cachet::test::tier_options("worker"));
  cachet::test::SharedWriteLog log(path, false);
  using Log = cachet::test::WriteLog;
  const auto end = std::chrono::steady_clock::now() + run_for;
  for (std::uint64_t n = 1; n < Log::max_writes && std::chrono::steady_clock::now() < end; ++n) {
    for (std::size_t k = 0; k < Log::keys; ++k) {
      log->sent_ns[k][n] = steady_ns();
      cache.set(Log::key(k), std::to_string(n));
      log->done_ns[k][n] = steady_ns();
      log->completed[k].store(n, std::memory_order_release);
      std::this_thread::sleep_for(250us);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "pingpong" && argc == 4) return pingpong({.path = argv[2]}, std::stoi(argv[3]));
    if (mode == "writer" && argc == 5)
      return writer({.path = argv[2]}, argv[3], std::chrono::milliseconds(std::stoll(argv[4])));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tiered_worker %s: %s\n", mode.c_str(), e.what());
    return 3;
  }
  std::fprintf(stderr, "usage: tiered_worker pingpong <socket> <rounds> | writer <socket> <log> <ms>\n");
  return 2;
}
