// Client tracking: what reaches the listeners, and what happens when the
// subscriber is killed, goes deaf, or is refused.
#include <cachet/redis/tracking.hpp>
#include <cachet/testing/redis_server.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>
#include <support/tier_fixtures.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::test::eventually;

namespace {

// What a listener was told: keys, and how many times "everything".
struct Heard {
  std::mutex mutex;
  std::vector<std::string> keys;
  int flushes = 0;

  cachet::Tracking::Listener listener() {
    return [this](std::optional<std::string_view> key) {
      std::lock_guard lock(mutex);
      if (key) keys.emplace_back(*key);
      else ++flushes;
    };
  }
  bool has(const std::string& key) { return count(key) > 0; }
  long count(const std::string& key) {  // one per write: a write's own message does not stand for a later one
    std::lock_guard lock(mutex);
    return std::count(keys.begin(), keys.end(), key);
  }
  int flush_count() {
    std::lock_guard lock(mutex);
    return flushes;
  }
};


}  // namespace

TEST_CASE("writes under the prefix by another client reach the listener, FLUSHALL as everything") {
  cachet::test::Tracked tracked;
  auto& server = tracked.server;
  auto& tracking = tracked.tracking;
  CHECK(tracking.client_id() > 0);
  Heard heard;
  auto sub = tracking.listen(heard.listener());
  auto other = server.connect();

  other.command({"SET", "t:1", "x"});
  other.command({"SET", "elsewhere:1", "x"});
  REQUIRE(tracking.sync());  // the writes' messages have been handed over
  CHECK(heard.count("t:1") == 1);
  CHECK_FALSE(heard.has("elsewhere:1"));
  other.command({"DEL", "t:1"});
  REQUIRE(tracking.sync());
  CHECK(heard.count("t:1") == 2);  // the DEL's own

  other.command({"FLUSHALL"});
  REQUIRE(tracking.sync());
  CHECK(heard.flush_count() == 1);
  CHECK(tracking.stats().keys >= 2);
  CHECK(tracking.covers("t:item:"));
  CHECK_FALSE(tracking.covers("u:item:"));
}

TEST_CASE("an expiry in Redis reaches the listener") {
  cachet::test::Tracked tracked;
  auto& server = tracked.server;
  auto& tracking = tracked.tracking;
  Heard heard;
  auto sub = tracking.listen(heard.listener());
  server.connect().command({"SET", "t:short", "x", "PX", 300});  // long enough to hear the SET's message first
  REQUIRE(tracking.sync());
  REQUIRE(heard.count("t:short") >= 1);  // the SET's message (and the expiry's too, if this machine took 300 ms)
  CHECK(eventually([&] { return heard.count("t:short") == 2; }, 3s));  // the expiry's: the server's expire cycle finds it
}

TEST_CASE("CLIENT KILL of the subscriber: listeners drop everything, registration comes back under a new id") {
  cachet::test::Tracked tracked;
  auto& server = tracked.server;
  auto& tracking = tracked.tracking;
  Heard heard;
  auto sub = tracking.listen(heard.listener());
  const long long id = tracking.client_id();
  const std::uint64_t epoch = tracking.epoch();

  auto admin = server.connect();
  CHECK(admin.command({"CLIENT", "KILL", "ID", id}).as_integer() == 1);
  REQUIRE(eventually([&] { return tracking.epoch() != epoch; }, 2s));
  CHECK(eventually([&] { return heard.flush_count() >= 1; }, 1s));  // listeners hear it just after the new epoch
  REQUIRE(tracking.wait_live(5s));
  CHECK(tracking.client_id() != id);
  CHECK(tracking.stats().registrations == 2);

  admin.command({"SET", "t:after", "x"});
  REQUIRE(tracking.sync());
  CHECK(heard.has("t:after"));  // invalidations flow again
}

TEST_CASE("a subscriber whose PINGs go unanswered is dropped within ping_interval + ping_timeout") {
  cachet::testing::RedisServer server;
  cachet::Tracking tracking(server.connection_options(), cachet::test::quick_tracking());
  REQUIRE(tracking.wait_live(5s));
  Heard heard;
  auto sub = tracking.listen(heard.listener());

  server.pause(800ms);  // CLIENT PAUSE ALL: no answer to anyone
  const auto paused = std::chrono::steady_clock::now();  // the pause is in force once its reply came
  const bool dropped = eventually([&] { return tracking.state() != cachet::TrackingState::live; }, 2s);
  const auto detected = std::chrono::steady_clock::now() - paused;
  CHECK(dropped);
  CHECK(detected < 50ms + 200ms + 250ms);  // interval + timeout, and slack for a sanitizer build on a busy machine
  CHECK(eventually([&] { return heard.flush_count() >= 1; }, 1s));
  CHECK(tracking.wait_live(5s));  // back once the pause ends
}

TEST_CASE("a backlog of invalidations that outlasts the PING timeout is no silent server") {
  cachet::test::Tracked tracked;
  auto& tracking = tracked.tracking;
  Heard heard;
  auto sub = tracking.listen(heard.listener());
  auto slow = tracking.listen([](std::optional<std::string_view> key) {  // 20 x 30 ms: three PING timeouts
    if (key && key->starts_with("t:slow:")) std::this_thread::sleep_for(30ms);
  });
  auto other = tracked.server.connect();
  for (int i = 0; i < 20; ++i) other.command({"SET", "t:slow:" + std::to_string(i), "x"});  // 20 messages
  // A PING sent while the thread works through them is answered behind the rest: buffered, not missing.
  REQUIRE(tracking.sync(5s));
  for (int i = 0; i < 20; ++i) CHECK(heard.has("t:slow:" + std::to_string(i)));
  CHECK(heard.flush_count() == 0);
  CHECK(tracking.stats().registrations == 1);
  CHECK(tracking.state() == cachet::TrackingState::live);
}

TEST_CASE("a server that refuses CLIENT TRACKING leaves tracking refused, and values may be kept") {
  cachet::testing::RedisServer server({.config = {"user default on nopass ~* &* +@all -client|tracking"}});
  cachet::Tracking tracking(server.connection_options(), cachet::test::quick_tracking());
  REQUIRE(eventually([&] { return tracking.state() == cachet::TrackingState::refused; }, 5s));
  CHECK(cachet::Tracking::keeps(tracking.epoch()));
  CHECK(tracking.client_id() == 0);
  CHECK_FALSE(tracking.sync(50ms));
}

TEST_CASE("before it is registered, and once it is lost, nothing may be kept") {
  cachet::testing::RedisServer server;
  cachet::ConnectionOptions redis = server.connection_options();
  server.kill();
  cachet::Tracking tracking(redis, cachet::test::quick_tracking());
  std::this_thread::sleep_for(100ms);
  CHECK(tracking.state() == cachet::TrackingState::connecting);
  CHECK_FALSE(cachet::Tracking::keeps(tracking.epoch()));
  server.restart();
  REQUIRE(tracking.wait_live(5s));
  CHECK(cachet::Tracking::keeps(tracking.epoch()));
  server.kill();
  REQUIRE(eventually([&] { return tracking.state() == cachet::TrackingState::lost; }, 2s));
  CHECK_FALSE(cachet::Tracking::keeps(tracking.epoch()));
}

TEST_CASE("a subscription may outlive its Tracking") {
  auto& server = cachet::test::clean_server();
  cachet::Tracking::Subscription sub;
  {
    cachet::Tracking tracking(server.connection_options(), cachet::test::quick_tracking());
    sub = tracking.listen([](std::optional<std::string_view>) {});
  }
  CHECK_NOTHROW(sub.reset());  // nothing left to remove from (AddressSanitizer would see a use after free)
}
