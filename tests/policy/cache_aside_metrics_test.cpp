// What a cache counts and times on its way to Redis: one decode error per
// corrupt read whatever the guards do, and the commands the circuit breaker
// skips counted apart (and not timed as lookups).
#include <cachet/guard/early_expiration.hpp>
#include <cachet/guard/fail_safe.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/guard/stale_while_revalidate.hpp>
#include <cachet/policy/write_through.hpp>

#include <catch2/catch.hpp>
#include <support/guard_fixtures.hpp>
#include <support/server.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using cachet::Event;

namespace {

// Each stack a guard test would build over `pool`.
template <class G>
G make_guard(cachet::Pool&) {
  return G{};
}
template <>
cachet::RedisLockGuard make_guard<cachet::RedisLockGuard>(cachet::Pool& pool) {
  return cachet::RedisLockGuard(pool);
}
template <>
cachet::StampedeGuard make_guard<cachet::StampedeGuard>(cachet::Pool& pool) {
  return cachet::stampede_guard(pool);
}
using SwrStack = cachet::GuardStack<cachet::StaleWhileRevalidate, cachet::SingleFlight, cachet::RedisLockGuard>;
template <>
SwrStack make_guard<SwrStack>(cachet::Pool& pool) {
  return SwrStack({}, {}, cachet::RedisLockGuard(pool));
}
using EarlyStack = cachet::GuardStack<cachet::EarlyExpiration, cachet::SingleFlight, cachet::RedisLockGuard>;
template <>
EarlyStack make_guard<EarlyStack>(cachet::Pool& pool) {
  return EarlyStack({}, {}, cachet::RedisLockGuard(pool));
}
using FailSafeStack = cachet::GuardStack<cachet::FailSafe, cachet::SingleFlight, cachet::RedisLockGuard>;
template <>
FailSafeStack make_guard<FailSafeStack>(cachet::Pool& pool) {
  return FailSafeStack({}, {}, cachet::RedisLockGuard(pool));
}

}  // namespace

// Under every guard stack, the lock's among them: RedisLockGuard's LockNotifier
// refuses a cluster until it subscribes per node (docs/cluster.md).
TEMPLATE_TEST_CASE("one corrupt read is one decode error, under every guard stack", "", cachet::NoGuard,
                   cachet::SingleFlight, cachet::RedisLockGuard, cachet::StampedeGuard, SwrStack, EarlyStack,
                   FailSafeStack) {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options(), cachet::test::roomy());
  cachet::test::StringCache<TestType> cache(cachet::RedisStore(pool), cachet::test::stale_options(), {},
                                            make_guard<TestType>(pool));
  auto conn = server.connect();
  conn.command({"SET", cache.key("1"), "\xCA\xCE not an envelope"});
  CHECK(cache.get_or_load("1", [](std::string_view) { return std::string("loaded"); }) == "loaded");
  CHECK(cache.metrics().value(Event::decode_error) == 1);
  CHECK(cache.metrics().value(Event::miss) == 1);
  CHECK(cache.get("1") == "loaded");  // rewritten: no second decode error
  CHECK(cache.metrics().value(Event::decode_error) == 1);
}

// Its own server, killed or configured: the same on either target.
TEST_CASE("commands the open breaker skips are counted as skipped, for reads, writes and invalidations, and not timed", "[single-server]") {
  cachet::testing::RedisServer server;
  cachet::Pool pool(cachet::test::quick_to_fail(server), {.size = 2, .wait_timeout = 100ms});
  auto o = cachet::test::guard_options("skipped");
  o.breaker = {.failure_threshold = 1, .open_for = std::chrono::hours(1)};  // stays open for the test
  auto save = [](std::string_view, const std::string&) {};
  cachet::CacheAside<std::string, cachet::StringCodec> cache(cachet::RedisStore(pool), o);
  auto writes = cachet::write_through(cache, save);
  auto& m = cache.metrics();
  auto load = [](std::string_view) { return std::string("db"); };
  server.kill();

  CHECK(cache.get_or_load("1", load) == "db");  // fails at Redis: opens the breaker
  CHECK(cache.breaker().state() == cachet::BreakerState::open);
  CHECK(m.value(Event::redis_error) == 1);
  CHECK(m.value(Event::redis_skipped) == 0);
  CHECK(m.get_latency().count() == 1);  // that lookup went to Redis

  for (int i = 0; i < 3; ++i) CHECK(cache.get_or_load("1", load) == "db");
  CHECK(cache.get("1") == std::nullopt);
  std::vector<std::string_view> ids{"1", "2"};
  CHECK(cache.get_many(ids, [](auto missing) { return std::vector<std::optional<std::string>>(missing.size(), "db"); })
            .size() == 2);
  CHECK(m.value(Event::redis_skipped) == 3 + 1 + 1);  // each lookup, and the batch's one MGET
  CHECK(m.get_latency().count() == 1);                // none of them went to Redis

  // A put's cache write is skipped, then its fallback delete (the invalidation).
  CHECK(writes.put("1", "new") == cachet::WriteOutcome::unrepaired);
  CHECK(m.value(Event::redis_skipped) == 5 + 2);
  CHECK(m.value(Event::redis_error) == 1);  // a skip is not an error

  const std::string text = cachet::MetricsRegistry::global().prometheus();
  CHECK(text.find("cachet_redis_skipped_total{cache=\"skipped\",prefix=\"t:item\"} 7\n") != std::string::npos);
}

TEST_CASE("a metrics_label that is not valid UTF-8 is refused when the cache is made") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto o = cachet::test::guard_options("shop \xFF products");
  CHECK_THROWS_AS(cachet::test::StringCache<cachet::NoGuard>(cachet::RedisStore(pool), o), cachet::MetricsLabelError);
  CHECK(cachet::MetricsRegistry::global().prometheus().find("shop ") == std::string::npos);  // nothing registered
}
