// The other processes of the multi-process write-policy tests, exec'd fresh
// (a forked copy of a multi-threaded test may not start threads under ThreadSanitizer).
//
//   policy_worker flusher <socket> <database>   a write-behind flusher into the SQLite file, until
//                                               the key "stop" appears (then it drains and exits 0)
//                                               or it is SIGKILLed
//   policy_worker refresh_ahead <address>       checks in ("ready"), waits for "go", then reads key "k"
//                                               every 10 ms for 10 s through RefreshAhead; exit 0 when
//                                               no read missed
//
// Loads are counted in Redis.
#include <cachet/codec/string.hpp>
#include <cachet/policy/refresh_ahead.hpp>
#include <cachet/policy/write_behind.hpp>

#include <support/policy_fixtures.hpp>
#include <support/sqlite_db.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using namespace cachet::test;

namespace {

int flusher(const cachet::ConnectionOptions& redis, const std::string& database) {
  cachet::Pool pool(redis);
  StringCache<cachet::NoGuard> entries(cachet::RedisStore(pool), write_behind_options());
  auto cache = cachet::write_behind(entries, DbWriter(database), flusher_options());
  cachet::Connection conn(redis);
  while (conn.command({"EXISTS", "stop"}).as_integer() == 0) std::this_thread::sleep_for(20ms);
  return 0;  // the destructor drains the queue
}

int refresh_ahead(const cachet::ConnectionOptions& redis) {
  cachet::Pool pool(redis, {.size = 8, .wait_timeout = std::chrono::seconds(5)});
  RefreshAheadCache cache(pool, refresh_ahead_options(), CountingLoader(redis));
  Client conn(redis);
  conn.command({"INCR", "ready"});
  while (conn.command({"EXISTS", "go"}).as_integer() == 0) std::this_thread::sleep_for(1ms);  // the test seeds "k"
  int empty = 0;
  const auto end = std::chrono::steady_clock::now() + refresh_ahead_run;
  for (auto next = std::chrono::steady_clock::now(); next < end; next += 10ms) {
    empty += cache.get("k").empty();
    std::this_thread::sleep_until(next + 10ms);
  }
  const auto misses = cache.cache().metrics().value(cachet::Event::miss);
  std::printf("reads served, %llu misses, %d empty\n", static_cast<unsigned long long>(misses), empty);
  return misses == 0 && empty == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "flusher" && argc == 4) return flusher({.path = argv[2]}, argv[3]);
    if (mode == "refresh_ahead" && argc == 3) return refresh_ahead(target_options(argv[2]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "policy_worker %s: %s\n", mode.c_str(), e.what());
    return 3;
  }
  std::fprintf(stderr, "usage: policy_worker flusher <socket> <database> | refresh_ahead <socket or cluster:seeds>\n");
  return 2;
}
