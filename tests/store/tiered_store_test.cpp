// TieredStore and CacheAside over it, in one process: L1 hits, writes to both
// tiers, invalidations by other clients, the in-flight race, TTLs, tags,
// versioned namespaces, and what happens without tracking.
#include <cachet/guard/fail_safe.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/guard/stale_while_revalidate.hpp>
#include <cachet/invalidation/namespace_version.hpp>
#include <cachet/policy/read_through.hpp>
#include <cachet/policy/refresh_ahead.hpp>
#include <cachet/policy/write_behind.hpp>
#include <cachet/policy/write_through.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/counting_new.hpp>
#include <support/server.hpp>
#include <support/tier_fixtures.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <cstdint>

using namespace std::chrono_literals;
using cachet::Event;
using cachet::test::eventually;
using cachet::test::string_tier;
using cachet::test::TieredStringCache;
using cachet::test::tier_options;

namespace {

// A loader that counts its calls and returns "v<n>".
struct Counting {
  std::atomic<int>* calls;
  std::string operator()(std::string_view) const { return "v" + std::to_string(++*calls); }
};

// A tier whose L1 runs on a manual clock, for TTLs without sleeping.
using ManualTier = cachet::TieredStore<cachet::BasicValueStore<std::string, cachet::ClockRef<cachet::ManualClock>>>;

ManualTier manual_tier(cachet::Pool& pool, cachet::ManualClock& clock, cachet::Tracking* tracking,
                       cachet::TieredOptions o = {}) {
  using L1 = cachet::BasicValueStore<std::string, cachet::ClockRef<cachet::ManualClock>>;
  return ManualTier(L1({}, cachet::ClockRef(clock)), cachet::RedisStore(pool), tracking, o);
}

}  // namespace

TEST_CASE("an L1 hit is the shared value: no Redis command, no parse, no allocation") {
  cachet::test::Tracked tracked;
  auto& server = tracked.server;
  auto& pool = tracked.pool;
  auto& tracking = tracked.tracking;
  TieredStringCache<> cache(string_tier(pool, &tracking), tier_options("l1-hit"));
  std::atomic<int> calls{0};
  const std::string id = "an id long enough that its key would not fit a std::string's inline bytes";
  CHECK(cache.get_or_load(id, Counting{&calls}) == "v1");  // miss: loaded, written to Redis, dropped from L1
  REQUIRE(tracking.sync());  // the write's own invalidation is back: a read now stays in L1
  const auto first = cache.get_shared(id);  // read from Redis, kept in L1 (and this thread's handle taken)
  REQUIRE(first);
  auto admin = server.connect();
  admin.command({"CONFIG", "RESETSTAT"});

  std::shared_ptr<const std::string> again;
  CHECK(cachet::test::allocations_in([&] { again = cache.get_shared(id); }) == 0);
  CHECK(again.get() == first.get());
  CHECK(*cache.get_or_load_shared(id, Counting{&calls}) == "v1");
  CHECK(cache.get_or_load(id, Counting{&calls}) == "v1");
  CHECK(cachet::test::command_calls(admin, "get") == 0);
  CHECK(calls == 1);
  CHECK(cache.metrics().value(Event::l1_hit) == 3);
  CHECK(cache.metrics().value(Event::hit) == 4);  // the L1 hits are hits too
  CHECK(cache.store().l1().stats().size == 1);
}

TEST_CASE("writes and invalidations through the cache reach both tiers") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  for (const bool tracked : {true, false}) {
    INFO("tracking " << tracked);
    cachet::Tracking tracking(server.connection_options(), cachet::test::quick_tracking());
    REQUIRE(tracking.wait_live(5s));
    TieredStringCache<> cache(string_tier(pool, tracked ? &tracking : nullptr), tier_options(tracked ? "w1" : "w0"));
    cache.set("k", "one");
    CHECK(cache.get("k") == "one");
    CHECK(cache.get("k") == "one");  // from L1
    cache.set("k", "two");
    CHECK(cache.get("k") == "two");  // read your writes: the L1 entry went with the write
    CHECK(cache.invalidate("k"));
    CHECK_FALSE(cache.get("k"));
    const std::array<std::string_view, 2> ids{"a", "b"};
    const auto got = cache.get_many(ids, [](std::span<const std::string_view> missing) {
      return std::vector<std::optional<std::string>>(missing.begin(), missing.end());
    });
    CHECK(got[0] == "a");
    CHECK(cache.get_many(ids, [](auto) { return std::vector<std::optional<std::string>>(2); })[1] == "b");
    CHECK(cache.invalidate_many(ids) == 2);
    CHECK_FALSE(cache.get("a"));
  }
}

TEST_CASE("SET, DEL, expiry and FLUSHALL by another client evict the L1 entry") {
  cachet::test::Tracked tracked;
  auto& server = tracked.server;
  auto& pool = tracked.pool;
  auto& tracking = tracked.tracking;
  TieredStringCache<> cache(string_tier(pool, &tracking), tier_options("others", cachet::Format::plain));
  auto other = server.connect();
  auto warm = [&](const char* value) {
    other.command({"SET", "t:item:k", value});
    REQUIRE(tracking.sync());
    REQUIRE(cache.get("k") == value);
    REQUIRE(cache.store().l1().get("t:item:k"));  // held in process
  };
  auto evicted = [&] { return !cache.store().l1().get("t:item:k"); };

  warm("1");
  other.command({"SET", "t:item:k", "2"});
  CHECK(eventually(evicted, 2s));
  CHECK(cache.get("k") == "2");

  warm("3");
  other.command({"DEL", "t:item:k"});
  CHECK(eventually(evicted, 2s));
  CHECK_FALSE(cache.get("k"));

  warm("4");
  other.command({"PEXPIRE", "t:item:k", 50});  // the TTL shrinks: itself a write
  CHECK(eventually(evicted, 2s));
  warm("5");
  other.command({"PEXPIRE", "t:item:k", 1000});  // long enough that a loaded CI reads it before it expires
  REQUIRE(eventually(evicted, 2s));
  CHECK(cache.get("k") == "5");  // read again before it expires: kept, for at most the second left
  CHECK(eventually([&] { return !cache.get("k"); }, 3s));

  warm("6");
  other.command({"FLUSHALL"});
  CHECK(eventually(evicted, 2s));
  CHECK_FALSE(cache.get("k"));
}

TEST_CASE("eviction by maxmemory in Redis evicts the L1 entry") {
  cachet::testing::RedisServer server({.config = {"maxmemory 4mb", "maxmemory-policy allkeys-random"}});
  cachet::Pool pool(server.connection_options());
  cachet::Tracking tracking(server.connection_options(), cachet::test::quick_tracking());
  REQUIRE(tracking.wait_live(5s));
  TieredStringCache<> cache(string_tier(pool, &tracking), tier_options("maxmemory"));
  cache.set("k", "v");
  REQUIRE(tracking.sync());
  REQUIRE(cache.get("k") == "v");
  REQUIRE(cache.store().l1().get("t:item:k"));
  auto other = server.connect();
  const std::string filler(10'000, 'x');
  for (int i = 0; i < 5000 && other.command({"EXISTS", "t:item:k"}).as_integer() == 1; ++i)
    other.command({"SET", "t:filler:" + std::to_string(i), filler});
  REQUIRE(other.command({"EXISTS", "t:item:k"}).as_integer() == 0);  // Redis evicted it
  REQUIRE(tracking.sync());
  CHECK_FALSE(cache.store().l1().get("t:item:k"));
}

TEST_CASE("a read in flight when its key is invalidated is not kept in L1") {
  cachet::test::Tracked tracked;
  auto& server = tracked.server;
  auto& pool = tracked.pool;
  auto& tracking = tracked.tracking;
  auto store = string_tier(pool, &tracking);
  auto other = server.connect();
  other.command({"SET", "t:k", "old"});
  REQUIRE(tracking.sync());

  auto read = store.fetch("t:k");  // the ticket is taken, the reply is in hand
  REQUIRE(read.bytes == "old");
  other.command({"SET", "t:k", "new"});  // ... and the invalidation arrives before the fill
  REQUIRE(tracking.sync());
  CHECK_FALSE(store.fill("t:k", read, {std::make_shared<const std::string>("old"), {}}));
  CHECK_FALSE(store.cached("t:k"));

  auto fresh = store.fetch("t:k");
  CHECK(store.fill("t:k", fresh, {std::make_shared<const std::string>(*fresh.bytes), {}}));
  CHECK(*store.cached("t:k")->value == "new");

  // A change of tracking state while the read was out refuses it too.
  auto during_loss = store.fetch("t:k");
  server.connect().command({"CLIENT", "KILL", "ID", tracking.client_id()});
  REQUIRE(eventually([&] { return tracking.epoch() != during_loss.ticket.epoch; }, 2s));
  CHECK(eventually([&] { return !store.cached("t:k"); }, 1s));  // the loss empties L1 (just after the new epoch)
  CHECK_FALSE(store.fill("t:k", during_loss, {std::make_shared<const std::string>("new"), {}}));
  REQUIRE(tracking.wait_live(5s));
}

TEST_CASE("L1 keeps an entry no longer than Redis does, nor than l1_ttl") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::ManualClock clock;
  auto store = manual_tier(pool, clock, nullptr, {.l1_ttl = 10s});
  auto other = server.connect();
  auto keep = [&](const char* key) {
    auto f = store.fetch(key);
    REQUIRE(store.fill(key, f, {std::make_shared<const std::string>(*f.bytes), {}}));
  };
  other.command({"SET", "t:short", "x", "PX", 2000});
  other.command({"SET", "t:long", "x", "PX", 3'600'000});
  other.command({"SET", "t:forever", "x"});
  keep("t:short");
  keep("t:long");
  keep("t:forever");
  clock.advance(2s);  // Redis's TTL of t:short, measured from before the read was sent
  CHECK_FALSE(store.cached("t:short"));
  CHECK(store.cached("t:long"));
  clock.advance(8s);  // l1_ttl
  CHECK_FALSE(store.cached("t:long"));
  CHECK_FALSE(store.cached("t:forever"));
}

TEST_CASE("an L1 hit, judged by the tier's coarse clock, is not served past its soft expiry plus the clock's resolution") {
  cachet::test::Tracked tracked;
  auto o = tier_options("coarse-expiry");
  o.ttl = cachet::TtlPolicy({.fresh = 2s, .stale = 1h, .jitter = 0});  // Redis and L1 keep it, stale, past its soft expiry
  TieredStringCache<> cache(string_tier(tracked.pool, &tracked.tracking), o);
  cache.set("a", "v");
  const auto written = std::chrono::system_clock::now();  // the entry is fresh until 2 s after the write began
  REQUIRE(tracked.tracking.sync());
  REQUIRE(cache.get_shared("a"));  // from Redis, into L1
  REQUIRE(cache.get_shared("a"));
  CHECK(cache.metrics().value(Event::l1_hit) == 1);
  const auto deadline = written + 2s + cachet::CoarseSystemClock::resolution();
  while (std::chrono::system_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  // The coarse clock moves with the kernel's tick, which a loaded VM can hold
  // back past one resolution: the bound is the clock's, judged on its reading.
  const auto coarse_by = std::chrono::steady_clock::now() + 10s;
  while (cachet::CoarseSystemClock::now() < written + 2s && std::chrono::steady_clock::now() < coarse_by)
    std::this_thread::sleep_for(1ms);
  INFO("the coarse clock behind system_clock by "
       << std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now() -
                                                                cachet::CoarseSystemClock::now()).count()
       << " us");
  CHECK_FALSE(cache.get_shared("a"));  // stale in L1 and in Redis: a miss without a guard that serves it
  CHECK(cache.metrics().value(Event::l1_hit) == 1);
}

TEST_CASE("without tracking, another process's write is served from L1 until l1_ttl") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::ManualClock clock;
  cachet::CacheAside<std::string, cachet::StringCodec, cachet::NoGuard, ManualTier> cache(
      manual_tier(pool, clock, nullptr, {.l1_ttl = 5s}), tier_options("untracked", cachet::Format::plain));
  auto other = server.connect();
  other.command({"SET", "t:item:k", "old"});
  REQUIRE(cache.get("k") == "old");
  other.command({"SET", "t:item:k", "new"});
  CHECK(cache.get("k") == "old");  // the staleness the README promises, and no more:
  clock.advance(5s);
  CHECK(cache.get("k") == "new");
}

TEST_CASE("a server that refuses tracking: L1 still serves, bounded by l1_ttl") {
  cachet::testing::RedisServer server({.config = {"user default on nopass ~* &* +@all -client|tracking"}});
  cachet::Pool pool(server.connection_options());
  cachet::Tracking tracking(server.connection_options(), cachet::test::quick_tracking());
  REQUIRE(eventually([&] { return tracking.state() == cachet::TrackingState::refused; }, 5s));
  cachet::ManualClock clock;
  cachet::CacheAside<std::string, cachet::StringCodec, cachet::NoGuard, ManualTier> cache(
      manual_tier(pool, clock, &tracking, {.l1_ttl = 5s}), tier_options("refused", cachet::Format::plain));
  auto other = server.connect();
  other.command({"SET", "t:item:k", "old"});
  REQUIRE(cache.get("k") == "old");
  REQUIRE(cache.store().l1().get("t:item:k"));
  other.command({"SET", "t:item:k", "new"});
  CHECK(cache.get("k") == "old");
  clock.advance(5s);
  CHECK(cache.get("k") == "new");
}

TEST_CASE("while tracking is down nothing is kept, and the loss emptied L1") {
  cachet::test::Tracked tracked;
  auto& server = tracked.server;
  auto& pool = tracked.pool;
  auto& tracking = tracked.tracking;
  TieredStringCache<> cache(string_tier(pool, &tracking), tier_options("down"));
  cache.set("k", "v");
  REQUIRE(tracking.sync());
  REQUIRE(cache.get("k") == "v");
  REQUIRE(cache.store().l1().stats().size == 1);
  server.connect().command({"CLIENT", "KILL", "ID", tracking.client_id()});
  REQUIRE(eventually([&] { return tracking.state() != cachet::TrackingState::live; }, 2s));
  CHECK(eventually([&] { return cache.store().l1().stats().size == 0; }, 1s));  // emptied just after the new state
  REQUIRE(tracking.wait_live(5s));
  CHECK(cache.get("k") == "v");  // kept again once live
  CHECK(cache.store().l1().stats().size == 1);
  CHECK(cache.get("k") == "v");
  CHECK(cache.metrics().value(Event::l1_hit) == 1);
}

TEST_CASE("tags: invalidate_tags empties L1 of the tagged values, with and without tracking") {
  cachet::test::Tracked fixture;
  auto& server = fixture.server;
  auto& pool = fixture.pool;
  auto& tracking = fixture.tracking;
  for (const bool tracked : {true, false}) {
    INFO("tracking " << tracked);
    TieredStringCache<> cache(string_tier(pool, tracked ? &tracking : nullptr), tier_options(tracked ? "tag1" : "tag0"));
    cache.set("a", "va", {"red"});
    cache.set("b", "vb", {"blue"});
    REQUIRE(cache.get("a") == "va");
    REQUIRE(cache.get("b") == "vb");
    CHECK(cache.invalidate_tags({"red"}) == 1);
    CHECK_FALSE(cache.store().l1().get("t:item:a"));  // at once, in this process
    CHECK_FALSE(cache.get("a"));
    CHECK(cache.get("b") == "vb");
    // Values the cache loads are tagged too, and a tag invalidated by someone
    // else reaches L1 by tracking (or, without it, by the L1 TTL only).
    cache.tag_loaded_values([](const std::string& v) { return std::vector<std::string>{"tag-of-" + v}; });
    REQUIRE(cache.get_or_load("c", [](std::string_view) { return std::string("vc"); }) == "vc");
    REQUIRE(cache.get("c") == "vc");
    cachet::Tags(pool, cachet::KeyBuilder("t")).invalidate({"tag-of-vc"});
    if (tracked) {
      REQUIRE(tracking.sync());
      CHECK_FALSE(cache.get("c"));
    } else {
      CHECK(cache.get("c") == "vc");
    }
    server.connect().command({"FLUSHALL"});
    REQUIRE(tracking.sync());
  }
}

TEST_CASE("versioned namespaces: a bump by anyone makes L1 miss") {
  cachet::test::Tracked fixture;
  auto& server = fixture.server;
  auto& pool = fixture.pool;
  auto& tracking = fixture.tracking;
  auto other = server.connect();
  for (const bool tracked : {true, false}) {
    INFO("tracking " << tracked);
    cachet::NamespaceVersions versions(pool, cachet::KeyBuilder("t"), {.cache_for = tracked ? 1h : 200ms});
    cachet::CacheOptions o = tier_options(tracked ? "ver1" : "ver0");
    o.versions = &versions;
    TieredStringCache<> cache(string_tier(pool, tracked ? &tracking : nullptr), o);
    std::atomic<int> calls{0};
    REQUIRE(cache.get_or_load("k", Counting{&calls}) == "v1");
    REQUIRE(tracking.sync());  // our own write's invalidation has come back
    REQUIRE(cache.get("k") == "v1");
    REQUIRE(cache.get("k") == "v1");
    CHECK(cache.metrics().value(Event::l1_hit) == 1);

    versions.bump("item");  // here: seen at once
    CHECK(cache.get_or_load("k", Counting{&calls}) == "v2");

    other.command({"INCR", "t:ver:item"});  // elsewhere: within the invalidation delay, or cache_for
    if (tracked) {
      REQUIRE(tracking.sync());
      CHECK(cache.get_or_load("k", Counting{&calls}) == "v3");  // although cache_for is an hour
    } else {
      CHECK(eventually([&] { return cache.get_or_load("k", Counting{&calls}) == "v3"; }, 2s));
    }
    other.command({"FLUSHALL"});
    REQUIRE(tracking.sync());
  }
}

// Fresh for 1 s, then stale for an hour; a manual clock moves it.
template <class G>
using StaleCache = cachet::CacheAside<std::string, cachet::StringCodec, G, cachet::test::StringTier,
                                      cachet::ClockRef<cachet::ManualClock>>;

cachet::CacheOptions stale_options(std::string label) {
  cachet::CacheOptions o = tier_options(std::move(label));
  o.ttl = cachet::TtlPolicy({.fresh = 1s, .stale = 1h, .jitter = 0});
  return o;
}

TEST_CASE("fail-safe serves a stale L1 entry while Redis is down") {
  cachet::testing::RedisServer server;
  cachet::Pool pool(server.connection_options());
  cachet::ManualClock clock;
  StaleCache<cachet::FailSafe> cache(string_tier(pool, nullptr), stale_options("fail-safe-l1"), {}, {},
                                     cachet::ClockRef(clock));
  std::atomic<int> calls{0};
  REQUIRE(cache.get_or_load("k", Counting{&calls}) == "v1");
  REQUIRE(cache.get("k") == "v1");  // in L1 now
  clock.advance(2s);                // stale
  server.kill();
  auto failing = [](std::string_view) -> std::string { throw std::runtime_error("database down"); };
  CHECK(cache.get_or_load("k", failing) == "v1");  // Redis unreachable: L1's stale entry, served by fail-safe
  CHECK(cache.metrics().value(Event::stale_hit) == 1);
  CHECK(calls == 1);
}

TEST_CASE("stale-while-revalidate serves a stale entry at once and the refresh replaces it in both tiers") {
  cachet::test::Tracked tracked;
  auto& pool = tracked.pool;
  auto& tracking = tracked.tracking;
  cachet::ManualClock clock;
  using G = cachet::GuardStack<cachet::StaleWhileRevalidate, cachet::SingleFlight>;
  StaleCache<G> cache(string_tier(pool, &tracking), stale_options("swr-l1"), {}, {}, cachet::ClockRef(clock));
  std::atomic<int> calls{0};
  REQUIRE(cache.get_or_load("k", Counting{&calls}) == "v1");
  REQUIRE(cache.get("k") == "v1");
  clock.advance(2s);
  CHECK(cache.get_or_load("k", Counting{&calls}) == "v1");  // stale, at once
  cache.executor().wait_idle();
  CHECK(calls == 2);
  REQUIRE(tracking.sync());  // the refresh's own write has echoed back
  const auto hits = cache.metrics().value(Event::l1_hit);
  CHECK(cache.get_or_load("k", Counting{&calls}) == "v2");
  CHECK(cache.get_or_load("k", Counting{&calls}) == "v2");
  CHECK(cache.metrics().value(Event::l1_hit) == hits + 1);
}

TEST_CASE("ReadThrough over a tier shares its values") {
  cachet::test::Tracked tracked;
  auto& pool = tracked.pool;
  auto& tracking = tracked.tracking;
  std::atomic<int> calls{0};
  cachet::ReadThrough<std::string, Counting, cachet::StringCodec, cachet::NoGuard, cachet::test::StringTier> items(
      string_tier(pool, &tracking), tier_options("read-through"), Counting{&calls});
  CHECK(*items.get_shared("k") == "v1");
  REQUIRE(tracking.sync());
  const auto a = items.get_shared("k"), b = items.get_shared("k");
  CHECK(a.get() == b.get());
  CHECK(calls == 1);
}

TEST_CASE("a cache whose keys the tracking prefixes do not cover is refused") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::Tracking tracking(server.connection_options(), {.prefixes = {"other:"}});
  CHECK_THROWS_AS(TieredStringCache<>(string_tier(pool, &tracking), tier_options("uncovered")), std::invalid_argument);
}

TEST_CASE("write-through, write-behind and refresh-ahead over the tier: their writes leave L1 at once") {
  cachet::test::Tracked tracked;
  auto& pool = tracked.pool;
  auto& tracking = tracked.tracking;
  for (const bool with_tracking : {true, false}) {
    INFO("tracking " << with_tracking);
    cachet::Tracking* t = with_tracking ? &tracking : nullptr;
    auto settle = [&] { REQUIRE(tracking.sync()); };  // our own writes' invalidations are back

    auto writer = [](std::string_view, const std::string&) {};
    cachet::CacheAside<std::string, cachet::StringCodec, cachet::NoGuard, cachet::test::StringTier> through_cache(
        string_tier(pool, t), tier_options(with_tracking ? "wt1" : "wt0"));
    auto through = cachet::write_through(through_cache, writer);
    through.invalidate_after_write([&](std::string_view id, const std::string&) {
      return cachet::Targets{.keys = {through.key(std::string(id) + "-list")}};
    });
    through.put("a", "one");
    through.cache().set("a-list", "list");
    settle();
    REQUIRE(through.get("a") == "one");
    REQUIRE(through.get("a-list") == "list");
    REQUIRE(through.cache().store().l1().get(through.key("a")));  // both held in L1 now
    through.put("a", "two");
    CHECK(through.get("a") == "two");  // at once: the put left L1
    CHECK_FALSE(through.get("a-list"));  // and so did what it invalidated

    auto batch = [](std::span<const cachet::PendingWrite<std::string>>) {};
    cachet::WriteBehindOptions queue_only;
    queue_only.flusher = false;
    cachet::CacheAside<std::string, cachet::StringCodec, cachet::NoGuard, cachet::test::StringTier> behind_cache(
        string_tier(pool, t), tier_options(with_tracking ? "wb1" : "wb0"));
    auto behind = cachet::write_behind(behind_cache, batch, queue_only);
    behind.write("b", "one");
    settle();
    REQUIRE(behind.get("b") == "one");
    REQUIRE(behind.cache().store().l1().get(behind.key("b")));
    behind.write("b", "two");
    CHECK(behind.get("b") == "two");

    std::atomic<int> calls{0};
    cachet::RefreshAhead<std::string, Counting, cachet::StringCodec, cachet::test::StringTier>
        ahead(string_tier(pool, t), tier_options(with_tracking ? "ra1" : "ra0"), Counting{&calls});
    CHECK(ahead.get("c") == "v1");
    settle();
    CHECK(ahead.get("c") == "v1");
    CHECK(ahead.get("c") == "v1");
    CHECK(ahead.cache().metrics().value(Event::l1_hit) >= 1);
    CHECK(calls == 1);
    tracked.server.connect().command({"FLUSHALL"});
    settle();
  }
}

TEST_CASE("TieredStore's invalidation operations run in L2 and leave L1 without what they touched") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::ManualClock clock;
  auto store = manual_tier(pool, clock, nullptr);  // no tracking: only the store's own evictions clear L1
  auto conn = server.connect();
  auto cache_in_l1 = [&](const std::string& key) {
    conn.command({"SET", key, "v", "PX", "60000"});
    const auto f = store.fetch(key);
    REQUIRE(store.fill(key, f, {std::make_shared<const std::string>(*f.bytes), {}}));
  };

  cache_in_l1("t:named");
  cache_in_l1("t:other");
  const cachet::InvalidationTargets keys_only{{}, {"t:named"}, {}};
  CHECK(store.invalidate(keys_only).deleted == 1);
  CHECK_FALSE(store.cached("t:named"));
  CHECK(store.cached("t:other"));  // a named key is evicted; nothing else is

  cache_in_l1("t:tagged");
  conn.command({"SADD", "t:tag:x", "t:tagged"});
  const cachet::InvalidationTargets tags{{"t:tag:x"}, {}, {}};
  CHECK(store.invalidate(tags).deleted == 1);
  CHECK_FALSE(store.cached("t:tagged"));  // reconciled: the members were known only to Redis
  CHECK(conn.command({"EXISTS", "t:tagged"}).as_integer() == 0);

  cache_in_l1("t:set");
  const std::vector<std::string> sets{"t:tag:y"};
  store.set_tagged("t:set", "new", 60s, sets, 0);
  CHECK_FALSE(store.cached("t:set"));
  CHECK(store.get("t:set") == "new");
  CHECK(store.incr("t:n") == 1);

  cache_in_l1("t:p:1");
  CHECK(store.unlink_matching("t:p:*") == 1);
  CHECK_FALSE(store.cached("t:p:1"));
  CHECK(store.prune_tag_set("t:tag:y").removed == 0);
}

namespace {
// Puts `value` in L1 as a read of L2 would.
void fill_l1(cachet::test::StringTier& store, std::string_view key) {
  auto read = store.fetch(key);
  REQUIRE(read.bytes);
  REQUIRE(store.fill(key, read, {std::make_shared<const std::string>(*read.bytes), {}}));
}
}  // namespace

TEST_CASE("TieredStore::write runs on L2 and drops the key from L1, also when the write throws") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  auto store = string_tier(pool, nullptr);  // no tracking: only the store's own eviction drops L1 entries
  auto conn = server.connect();
  conn.command({"SET", "t:k", "old"});
  conn.command({"SET", "t:not-a-set", "x"});
  fill_l1(store, "t:k");

  const std::vector<std::string> sets{"t:tag:a"};
  CHECK(store.write({.key = "t:k", .bytes = "new", .ttl = 60s, .tag_sets = sets}) == cachet::WriteResult::written);
  CHECK_FALSE(store.cached("t:k"));
  CHECK(conn.command({"GET", "t:k"}).as_string() == "new");

  fill_l1(store, "t:k");
  const std::vector<std::string> wrong{"t:not-a-set"};  // the script fails: WRONGTYPE
  CHECK_THROWS_AS(store.write({.key = "t:k", .bytes = "newer", .ttl = 60s, .tag_sets = wrong}), cachet::ReplyError);
  CHECK_FALSE(store.cached("t:k"));

  fill_l1(store, "t:k");
  const std::vector<cachet::StoreWrite> writes{{.key = "t:k", .bytes = "batch", .ttl = 60s, .tag_sets = sets}};
  CHECK(store.write_many(writes).failed == 0);
  CHECK_FALSE(store.cached("t:k"));
}

TEST_CASE("TieredStore: an invalidation's keys leave L1, and tag sets or counters reconcile it") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  auto store = string_tier(pool, nullptr);  // without tracking, reconciling empties L1
  auto conn = server.connect();
  for (const char* k : {"t:k", "t:named", "t:bystander"}) conn.command({"SET", k, "v"});
  for (const char* k : {"t:k", "t:named", "t:bystander"}) fill_l1(store, k);

  const cachet::InvalidationTargets named{{}, {"t:named"}, {}};
  CHECK(store.write({.key = "t:k", .bytes = "w", .ttl = 60s, .invalidation = &named}) == cachet::WriteResult::written);
  CHECK_FALSE(store.cached("t:k"));
  CHECK_FALSE(store.cached("t:named"));
  CHECK(store.cached("t:bystander"));  // nothing L1 cannot name was dropped

  fill_l1(store, "t:k");
  const cachet::InvalidationTargets tagged{{"t:tag:x"}, {}, {}};
  cachet::InvalidationResult invalidated;
  store.write({.key = "t:k", .bytes = "w2", .ttl = 60s, .invalidation = &tagged}, &invalidated);
  CHECK_FALSE(store.cached("t:bystander"));  // a tag's members are not named: L1 reconciled

  fill_l1(store, "t:bystander");
  CHECK(store.invalidate({{}, {}, {"t:version"}}).versions == std::vector<std::uint64_t>{1});
  CHECK_FALSE(store.cached("t:bystander"));
  CHECK(store.incr("t:seq") == 1);
}
