#include <cachet/detail/hash_slot.hpp>
#include <cachet/limit/concurrency_limiter.hpp>
#include <cachet/limit/rate_limiter.hpp>
#include <cachet/metrics/registry.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>

#include "limit_fixtures.hpp"

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace cachet::test;
using cachet::RateLimitResult;

namespace {

constexpr auto week = std::chrono::hours(24 * 7);  // a fixed window's boundary is then far from any test

// The server's clock in milliseconds.
long long server_ms(Client& conn) {
  const cachet::Reply t = conn.command({"TIME"});
  return std::stoll(std::string(t[0].as_string())) * 1000 + std::stoll(std::string(t[1].as_string())) / 1000;
}

// Sleeps until the server's clock is `phase` into a window of `window` (windows start at multiples since the epoch).
void sleep_until_phase(Client& conn, std::chrono::milliseconds window, std::chrono::milliseconds phase) {
  const long long w = window.count(), at = server_ms(conn) % w;
  std::this_thread::sleep_for(std::chrono::milliseconds(((phase.count() - at) % w + w) % w));
}

// A key's whole state, to show a call changed nothing.
std::string state(Client& conn, const std::string& key) {
  const auto dump = conn.command({"DUMP", key}).as_optional_string();
  return dump ? std::string(*dump) : std::string("<none>");
}

int allowed_of(cachet::RateLimiter& limiter, std::string_view id, int n) {
  int allowed = 0;
  for (int i = 0; i < n; ++i) allowed += limiter.allow(id).allowed;
  return allowed;
}

}  // namespace

TEST_CASE("hash slots: CRC16/XMODEM of the hash tag, as Redis Cluster computes them") {
  using cachet::detail::crc16, cachet::detail::hash_slot;
  CHECK(crc16("123456789") == 0x31C3);
  CHECK(hash_slot("foo") == 12182);
  CHECK(hash_slot("{user1000}.following") == hash_slot("{user1000}.followers"));
  CHECK(hash_slot("foo{}{bar}") == (crc16("foo{}{bar}") & 16383));  // an empty tag: the whole key
  CHECK(hash_slot("foo{{bar}}zap") == (crc16("{bar") & 16383));
  CHECK(hash_slot("foo{bar}{zap}") == (crc16("bar") & 16383));
}

TEST_CASE("the result maps to Retry-After and the RateLimit-* headers") {
  const RateLimitResult denied{.allowed = false, .limit = 10, .remaining = 0, .retry_after = 1500ms, .reset_after = 4001ms};
  CHECK(cachet::retry_after_header(denied) == "2");
  const std::vector<std::pair<std::string, std::string>> expected{
      {"RateLimit-Limit", "10"}, {"RateLimit-Remaining", "0"}, {"RateLimit-Reset", "5"}, {"Retry-After", "2"}};
  CHECK(cachet::rate_limit_headers(denied) == expected);
  CHECK(cachet::rate_limit_headers({.allowed = true, .limit = 10, .remaining = 3}).size() == 3);
  CHECK(cachet::retry_after_header({.retry_after = RateLimitResult::never}) == "86400");
}

TEST_CASE("bad parameters are std::invalid_argument") {
  cachet::Pool pool(clean_target().connection_options());
  CHECK_THROWS_AS(cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 0}), std::invalid_argument);
  CHECK_THROWS_AS(cachet::make_rate_limiter(pool, cachet::FixedWindow{.limit = 5, .window = 0ms}), std::invalid_argument);
  CHECK_THROWS_AS(cachet::make_rate_limiter(pool, cachet::TokenBucket{.capacity = 5, .refill = 0}), std::invalid_argument);
  CHECK_THROWS_AS(cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 5}, {.name = "a:b"}), std::invalid_argument);
  CHECK_THROWS_AS(cachet::ConcurrencyLimiter(pool, {.limit = 0}), std::invalid_argument);
  CHECK_THROWS_AS(cachet::allow_all(std::span<const cachet::LimitOf>{}), std::invalid_argument);
}

TEMPLATE_TEST_CASE("cost, peek, cost over capacity, denials and reset", "", cachet::Gcra, cachet::TokenBucket,
                   cachet::SlidingWindow, cachet::FixedWindow) {
  auto& server = clean_target();
  auto conn = server.connect();
  cachet::Pool pool(server.connection_options());
  TestType algorithm;
  if constexpr (std::is_same_v<TestType, cachet::Gcra>) algorithm = {.rate = 5, .period = 1h};
  if constexpr (std::is_same_v<TestType, cachet::TokenBucket>) algorithm = {.capacity = 5, .refill = 5, .period = 1h};
  if constexpr (std::is_same_v<TestType, cachet::SlidingWindow>) algorithm = {.limit = 5, .window = week};
  if constexpr (std::is_same_v<TestType, cachet::FixedWindow>) algorithm = {.limit = 5, .window = week};
  auto limiter = cachet::make_rate_limiter(pool, algorithm);
  const std::string key = limiter.key("u");

  RateLimitResult r = limiter.peek("u");  // a fresh identity: full, and nothing written
  CHECK((r.allowed && r.limit == 5 && r.remaining == 5));
  CHECK(conn.command({"EXISTS", key}).as_integer() == 0);

  r = limiter.allow("u", 2);
  CHECK((r.allowed && r.remaining == 3 && r.retry_after == 0ms && r.reset_after > 0ms));
  const long long ttl = conn.command({"PTTL", key}).as_integer();
  CHECK((ttl > 0 && ttl <= std::chrono::duration_cast<std::chrono::milliseconds>(2 * week).count()));

  const std::string before = state(conn, key);
  r = limiter.peek("u");
  CHECK((r.allowed && r.remaining == 3));
  r = limiter.allow("u", 6);  // more than the capacity: never, consistently
  CHECK((!r.allowed && r.can_never_pass() && r.remaining == 3));
  CHECK(limiter.allow("u", 6).can_never_pass());
  r = limiter.allow("u", 4);  // more than is left: denied, with a finite wait
  CHECK((!r.allowed && !r.can_never_pass() && r.retry_after > 0ms && r.remaining == 3));
  for (int i = 0; i < 20; ++i) limiter.allow("u", 4);
  CHECK(state(conn, key) == before);  // peeks and denials changed nothing

  r = limiter.allow("u", 3);  // what is left, so the denials above took nothing
  CHECK((r.allowed && r.remaining == 0));
  r = limiter.peek("u");
  CHECK((!r.allowed && r.remaining == 0 && r.retry_after > 0ms));

  limiter.reset("u");
  CHECK(conn.command({"EXISTS", key}).as_integer() == 0);
  CHECK(limiter.allow("u", 5).allowed);
  CHECK(limiter.figures().allowed >= 3);
  CHECK(limiter.figures().denied >= 20);
}

// [single-server]: one key's timing, the same on a cluster, where its 4 s would add to the CI time.
TEMPLATE_TEST_CASE("a denied request passes once its retry_after has passed", "[single-server]", cachet::Gcra,
                   cachet::TokenBucket, cachet::SlidingWindow, cachet::FixedWindow) {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options());
  TestType algorithm;
  if constexpr (std::is_same_v<TestType, cachet::Gcra>) algorithm = {.rate = 3, .period = 1s};
  if constexpr (std::is_same_v<TestType, cachet::TokenBucket>) algorithm = {.capacity = 3, .refill = 3, .period = 1s};
  if constexpr (std::is_same_v<TestType, cachet::SlidingWindow>) algorithm = {.limit = 3, .window = 1s};
  if constexpr (std::is_same_v<TestType, cachet::FixedWindow>) algorithm = {.limit = 3, .window = 1s};
  auto limiter = cachet::make_rate_limiter(pool, algorithm);
  for (int round = 0; round < 2; ++round) {
    RateLimitResult r;
    while ((r = limiter.allow("u")).allowed) {
    }
    REQUIRE((!r.allowed && r.retry_after > 0ms && r.retry_after <= 2s));
    std::this_thread::sleep_for(r.retry_after + 20ms);
    CHECK(limiter.allow("u").allowed);
  }
}

// [single-server]: one key's timing, the same on a cluster, where its 7 s would add to the CI time.
TEMPLATE_TEST_CASE("at a window boundary: a fixed window lets 2x through (documented), the others do not", "[single-server]",
                   cachet::Gcra, cachet::TokenBucket, cachet::SlidingWindow, cachet::FixedWindow) {
  auto& server = clean_target();
  auto conn = server.connect();
  cachet::Pool pool(server.connection_options());
  constexpr auto window = 2s;
  TestType algorithm;
  if constexpr (std::is_same_v<TestType, cachet::Gcra>) algorithm = {.rate = 10, .period = window};
  if constexpr (std::is_same_v<TestType, cachet::TokenBucket>) algorithm = {.capacity = 10, .refill = 10, .period = window};
  if constexpr (std::is_same_v<TestType, cachet::SlidingWindow>) algorithm = {.limit = 10, .window = window};
  if constexpr (std::is_same_v<TestType, cachet::FixedWindow>) algorithm = {.limit = 10, .window = window};
  auto limiter = cachet::make_rate_limiter(pool, algorithm);
  sleep_until_phase(conn, window, 1500ms);  // the last quarter of a window
  CHECK(allowed_of(limiter, "u", 10) == 10);
  sleep_until_phase(conn, window, 100ms);  // just after the boundary
  const int after = allowed_of(limiter, "u", 10);
  if constexpr (std::is_same_v<TestType, cachet::FixedWindow>)
    CHECK(after == 10);  // 20 within about 0.6 s: the fixed window's known weakness
  else
    CHECK(after < 10);  // refilled (or slid) by how long it has been, not reset by the calendar
}

TEST_CASE("several limits at once: all or nothing, one slot, co-located by a tag") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options());
  auto hourly = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 5, .period = 1h});
  auto daily = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 3, .period = 24h});
  CHECK(hourly.key("u") == "rl:gcra-3600000ms:{u}");
  for (int i = 0; i < 3; ++i) CHECK(cachet::allow_all({{hourly, "u"}, {daily, "u"}}).allowed);
  const RateLimitResult r = cachet::allow_all({{hourly, "u"}, {daily, "u"}});
  CHECK((!r.allowed && r.limit_index == 1 && r.limit == 3));
  CHECK(hourly.peek("u").remaining == 2);  // the denied call took nothing from the hourly limit

  // Different identities hash to different slots: refused before anything is sent.
  CHECK_THROWS_AS(cachet::allow_all({{hourly, "user:1"}, {daily, "10.0.0.1"}}), cachet::CrossSlotError);
  CHECK(hourly.peek("user:1").remaining == 5);
  const cachet::LimitOf tagged{daily, "10.0.0.1", "user:1"};
  CHECK(cachet::detail::hash_slot(daily.key(tagged.id, tagged.tag)) == cachet::detail::hash_slot(hourly.key("user:1")));
  CHECK(cachet::allow_all({{hourly, "user:1"}, tagged}).allowed);
  CHECK(daily.peek("10.0.0.1", "user:1").remaining == 2);
}

TEST_CASE("1,000 requests from 4 processes x 5 threads against a limit of 100: exactly 100 pass") {
  for (const std::string algorithm : {"gcra", "bucket"}) {
    auto& server = clean_target();
    auto conn = server.connect();
    std::vector<pid_t> workers;
    for (int p = 0; p < 4; ++p)
      workers.push_back(start_limit_worker("burst", server.address(), algorithm,
                                           server.directory() + "/burst" + std::to_string(p)));
    CHECK(eventually([&] { return conn.command({"GET", "ready"}).as_optional_string() == "20"; }, 60s));
    conn.command({"SET", "go", 1});
    for (pid_t pid : workers) CHECK(wait_exit(pid) == 0);
    CHECK(conn.command({"GET", "allowed"}).as_string() == "100");
  }
}

TEST_CASE("every key carries a TTL, also after a client is SIGKILLed mid-call") {
  auto& server = clean_target();
  auto conn = server.connect();
  std::vector<pid_t> workers;
  for (int p = 0; p < 2; ++p)
    workers.push_back(start_limit_worker("hammer", server.address(), "-", server.directory() + "/hammer" + std::to_string(p)));
  REQUIRE(eventually([&] { return conn.command({"GET", "calls"}).as_optional_string().value_or("0").size() >= 4; }, 60s));
  for (pid_t pid : workers) ::kill(pid, SIGKILL);
  for (pid_t pid : workers) CHECK(wait_exit(pid) == -1);
  std::vector<std::string> keys;
  conn.each_master([&](cachet::Connection& node) {
    std::string cursor = "0";
    do {
      const cachet::Reply page = node.command({"SCAN", cursor, "MATCH", "hammer:*", "COUNT", 1000});
      cursor = std::string(page[0].as_string());
      for (const auto& k : page[1]) keys.emplace_back(k.as_string());
    } while (cursor != "0");
  });
  CHECK(keys.size() >= 5 * 50);  // four limits and the leases of (at least) 50 identities
  std::vector<std::string> without_ttl;  // -1; -2 is a key gone since the scan (a lease released, say)
  for (const std::string& k : keys)
    if (conn.command({"PTTL", k}).as_integer() == -1) without_ttl.push_back(k);
  for (const std::string& k : without_ttl) UNSCOPED_INFO(k);
  CHECK(without_ttl.empty());
}

TEST_CASE("the deny cache answers a blocked identity without a round trip, until its retry_after") {
  auto& server = clean_target();
  auto conn = server.connect();
  cachet::Pool pool(server.connection_options());
  auto limiter = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 2, .period = 4s}, {.deny_cache = 100});
  CHECK(allowed_of(limiter, "u", 3) == 2);  // the third learns the wait from Redis
  conn.command({"CONFIG", "RESETSTAT"});
  RateLimitResult r;
  for (int i = 0; i < 50; ++i) r = limiter.allow("u");
  CHECK((!r.allowed && !r.from_redis && r.retry_after > 0ms && r.retry_after <= 2s));
  CHECK(command_calls(conn, "evalsha") + command_calls(conn, "eval") == 0);
  CHECK(limiter.figures().deny_cache == 50);
  CHECK(limiter.peek("u").from_redis);  // a peek always asks
  std::this_thread::sleep_for(r.retry_after + 20ms);
  r = limiter.allow("u");
  CHECK((r.allowed && r.from_redis));
}

// Its own server, killed.
TEST_CASE("Redis down: fail open, fail closed or a local limiter, each counted, Redis again once it is back",
          "[single-server]") {
  cachet::testing::RedisServer own;
  cachet::Pool pool(quick_to_fail(own), {.wait_timeout = 100ms});
  const cachet::RateLimiterOptions open{.name = "open"}, closed{.name = "closed", .on_redis_down = cachet::OnRedisDown::fail_closed},
      local{.name = "local", .on_redis_down = cachet::OnRedisDown::local};
  auto fail_open = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 3, .period = 1h}, open);
  auto fail_closed = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 3, .period = 1h}, closed);
  auto fallback = cachet::make_rate_limiter(pool, cachet::FixedWindow{.limit = 3, .window = 1h}, local);
  const cachet::RateLimiterOptions local_bucket{.name = "local-bucket", .on_redis_down = cachet::OnRedisDown::local};
  auto bucket = cachet::make_rate_limiter(pool, cachet::TokenBucket{.capacity = 5, .refill = 10, .period = 1h}, local_bucket);
  CHECK(fail_open.allow("u").from_redis);
  own.kill();

  RateLimitResult r = fail_open.allow("u");
  CHECK((r.allowed && !r.from_redis));
  r = fail_closed.allow("u");
  CHECK((!r.allowed && !r.from_redis && r.retry_after == 1s));
  CHECK(allowed_of(fallback, "u", 5) == 3);  // the local GCRA: 3 per hour, 3 at once
  CHECK(allowed_of(bucket, "u", 8) == 5);  // the bucket's capacity at once, then one per 6 min (its refill)
  r = bucket.allow("u");
  CHECK((!r.allowed && r.limit == 5 && r.retry_after > 5min && r.retry_after <= 6min));
  CHECK(fail_open.figures().failed_open == 1);
  CHECK(fail_closed.figures().failed_closed == 1);
  CHECK((fallback.figures().fallback_allowed == 3 && fallback.figures().fallback_denied == 2));
  CHECK(fallback.figures().redis_errors == 5);
  CHECK(cachet::MetricsRegistry::global().prometheus().find(
            "cachet_limiter_decisions_total{limiter=\"rl:local\",outcome=\"fallback_denied\"} 2") != std::string::npos);

  own.restart();
  CHECK(eventually([&] { return fail_open.allow("u").from_redis; }));
}

TEST_CASE("concurrency limiter: at most N in flight, a released place is free again") {
  auto& server = clean_target();
  auto conn = server.connect();
  cachet::Pool pool(server.connection_options());
  cachet::ConcurrencyLimiter limiter(pool, {.limit = 2, .lease = 10s});
  auto a = limiter.acquire("u");
  std::optional<cachet::ConcurrencyPermit> b(limiter.acquire("u"));
  CHECK((a && *b && a.result().remaining == 1 && b->result().remaining == 0));
  const auto c = limiter.acquire("u");
  CHECK((!c && c.result().retry_after > 5s && c.result().retry_after <= 10s));
  const long long ttl = conn.command({"PTTL", limiter.key("u")}).as_integer();
  CHECK((ttl > 5000 && ttl <= 10'000));  // until the last lease ends
  b.reset();  // released
  CHECK(limiter.acquire("u"));
  CHECK(limiter.acquire("other"));  // identities do not share places
}

TEST_CASE("concurrency limiter: a SIGKILLed holder's place is free once its lease runs out") {
  auto& server = clean_target();
  auto conn = server.connect();
  const pid_t holder = start_limit_worker("hold", server.address(), "-", server.directory() + "/holder");
  REQUIRE(eventually([&] { return conn.command({"LLEN", "held"}).as_integer() == 1; }, 60s));
  CHECK(conn.command({"LINDEX", "held", 0}).as_string() == "yes");
  ::kill(holder, SIGKILL);
  CHECK(wait_exit(holder) == -1);
  cachet::Pool pool(server.connection_options());
  cachet::ConcurrencyLimiter limiter(pool, one_in_flight);
  const auto denied = limiter.acquire("user");
  CHECK((!denied && denied.result().retry_after <= one_in_flight.lease));
  CHECK(conn.command({"PTTL", limiter.key("user")}).as_integer() > 0);
  CHECK(eventually([&] { return bool(limiter.acquire("user")); }, 30s));  // after the 2 s lease
}

// [single-server]: the forked child's cluster Pool would start a thread, which ThreadSanitizer
// refuses in a child of a threaded process.
TEST_CASE("concurrency limiter: lease tokens differ between a forked child and its parent", "[single-server]") {
  auto& server = clean_server();
  auto conn = server.connect();
  cachet::Pool pool(server.connection_options());
  cachet::ConcurrencyLimiter limiter(pool, {.limit = 2, .lease = 60s});
  limiter.acquire("warm");  // the parent has drawn a token before it forks
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // takes a place and exits without releasing it (no destructors, no Catch2)
    try {
      cachet::Pool own(server.connection_options());
      cachet::ConcurrencyLimiter same(own, {.limit = 2, .lease = 60s});
      const auto held = same.acquire("u");
      ::_exit(held ? 0 : 2);  // before `held` releases its place
    } catch (...) {
    }
    ::_exit(1);
  }
  CHECK(wait_exit(child) == 0);
  const auto mine = limiter.acquire("u");  // the parent's next token: the child's, if both were seeded alike
  CHECK(mine);
  CHECK(conn.command({"ZCARD", limiter.key("u")}).as_integer() == 2);
  CHECK(!limiter.acquire("u"));  // so the limit of 2 holds
}

TEST_CASE("allow_all refuses one key twice (it would be decided and counted once)") {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options());
  auto per_second = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 10, .period = 1s});
  auto burst_of_two = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 10, .period = 1s, .burst = 2});
  REQUIRE(per_second.key("u") == burst_of_two.key("u"));
  try {
    cachet::allow_all({{per_second, "u"}, {burst_of_two, "u"}});
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    CHECK(what.find(per_second.key("u")) != std::string::npos);
    CHECK(what.find("distinct names") != std::string::npos);
  }
  CHECK_THROWS_AS(cachet::allow_all({{per_second, "u"}, {per_second, "u"}}), std::invalid_argument);
  CHECK(per_second.peek("u").remaining == 10);  // nothing was sent
  auto named = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 10, .period = 1s, .burst = 2}, {.name = "burst"});
  CHECK(cachet::allow_all({{per_second, "u"}, {named, "u"}}).allowed);

  // Also when the first limit's deny cache would answer before the second is seen.
  auto cached = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 1, .period = 1h}, {.name = "c", .deny_cache = 10});
  auto cached_twin = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 1, .period = 1h}, {.name = "c"});
  CHECK(cached.allow("v").allowed);
  CHECK_FALSE(cached.allow("v").allowed);  // now in the deny cache
  CHECK_THROWS_AS(cachet::allow_all({{cached, "v"}, {cached_twin, "v"}}), std::invalid_argument);
}

// Its own server, configured.
TEST_CASE("a server refusing writes (OOM at maxmemory, noeviction) is Redis down: the policy applies",
          "[single-server]") {
  cachet::testing::RedisServer full({.config = {"maxmemory 1", "maxmemory-policy noeviction"}});
  cachet::Pool pool(full.connection_options());
  auto limiter = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 3, .period = 1h},
                                           {.on_redis_down = cachet::OnRedisDown::fail_open});
  const RateLimitResult r = limiter.allow("u");
  CHECK((r.allowed && !r.from_redis));
  CHECK((limiter.figures().redis_errors == 1 && limiter.figures().failed_open == 1));
}

// Its own servers, a master and its replica.
TEST_CASE("a replica's READONLY is Redis down (the policy applies), a script's own error still throws",
          "[single-server]") {
  cachet::testing::RedisServer master({.tcp = true});
  cachet::testing::RedisServer replica({.config = {"replicaof 127.0.0.1 " + std::to_string(master.port()),
                                                   "replica-read-only yes"}});
  cachet::Pool pool(replica.connection_options());
  auto limiter = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 3, .period = 1h},
                                           {.on_redis_down = cachet::OnRedisDown::fail_closed});
  const RateLimitResult r = limiter.allow("u");
  CHECK((!r.allowed && !r.from_redis && r.retry_after == 1s));
  CHECK((limiter.figures().redis_errors == 1 && limiter.figures().failed_closed == 1));
  cachet::ConcurrencyLimiter inflight(pool, {.limit = 2}, {.fail_open = false});
  const auto permit = inflight.acquire("u");
  CHECK((!permit && !permit.result().from_redis && inflight.figures().failed_closed == 1));

  auto& server = clean_server();  // a wrong key type is a bug, not an outage
  auto conn = server.connect();
  cachet::Pool writable(server.connection_options());
  auto gcra = cachet::make_rate_limiter(writable, cachet::Gcra{.rate = 3, .period = 1h});
  conn.command({"RPUSH", gcra.key("u"), "x"});
  CHECK_THROWS_AS(gcra.allow("u"), cachet::ReplyError);
}

TEST_CASE("local fallback GCRA: a cost beyond the burst is never allowed, however large") {
  cachet::detail::LocalGcra local(std::chrono::microseconds(1000), 5, 100);
  const auto now = cachet::detail::steady::now();
  for (const std::uint64_t cost : {std::uint64_t{6}, std::uint64_t{1} << 40, std::uint64_t{1} << 63, UINT64_MAX}) {
    const auto d = local.decide("u", cost, now);
    CHECK((!d.allowed && d.never && d.remaining == 5));
  }
  CHECK(local.decide("u", 5, now).allowed);
}

TEMPLATE_TEST_CASE("a peek reports reset_after of the state as it is: 0 when full", "", cachet::Gcra,
                   cachet::TokenBucket, cachet::SlidingWindow) {
  auto& server = clean_target();
  cachet::Pool pool(server.connection_options());
  TestType algorithm;
  if constexpr (std::is_same_v<TestType, cachet::Gcra>) algorithm = {.rate = 5, .period = 1h};
  if constexpr (std::is_same_v<TestType, cachet::TokenBucket>) algorithm = {.capacity = 5, .refill = 5, .period = 1h};
  if constexpr (std::is_same_v<TestType, cachet::SlidingWindow>) algorithm = {.limit = 5, .window = week};
  auto limiter = cachet::make_rate_limiter(pool, algorithm);
  CHECK(limiter.peek("u").reset_after == 0ms);
  const RateLimitResult taken = limiter.allow("u", 2);
  const RateLimitResult peeked = limiter.peek("u");
  CHECK((peeked.reset_after > 0ms && peeked.reset_after <= taken.reset_after));
}

TEST_CASE("sliding window: with counts only in the previous window, full again at this window's end") {
  auto& server = clean_target();
  auto conn = server.connect();
  cachet::Pool pool(server.connection_options());
  auto limiter = cachet::make_rate_limiter(pool, cachet::SlidingWindow{.limit = 5, .window = week});
  const long long week_ms = std::chrono::duration_cast<std::chrono::milliseconds>(week).count();
  const long long previous = server_ms(conn) / week_ms - 1;
  conn.command({"HSET", limiter.key("u"), "w", previous, "cur", 5, "prev", 0});
  const RateLimitResult peeked = limiter.peek("u");
  CHECK((peeked.reset_after > 0ms && peeked.reset_after <= week));
  const RateLimitResult denied = limiter.allow("u", 5);  // the previous window still weighs
  CHECK((!denied.allowed && denied.reset_after > 0ms && denied.reset_after <= week));
}
