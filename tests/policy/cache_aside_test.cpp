#include <cachet/codec/msgpack.hpp>
#include <cachet/detail/hash_slot.hpp>
#include <cachet/codec/string.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/make.hpp>
#include <cachet/policy/read_through.hpp>
#include <cachet/store/memory_store.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/product.hpp>
#include <support/server.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::Event;
using cachet::test::Product;
using cachet::test::sample_product;

namespace {

cachet::CacheOptions options(std::string name) {
  cachet::CacheOptions o;
  o.ns = "test";
  o.name = std::move(name);
  o.ttl = cachet::TtlPolicy({.fresh = 1min, .stale = 1min, .negative = 30s});
  return o;
}

// A database stand-in that counts its queries; ids "missing*" do not exist.
struct Db {
  std::atomic<int> queries{0};
  std::optional<Product> find(std::string_view id) {
    ++queries;
    if (id.rfind("missing", 0) == 0) return std::nullopt;
    return sample_product(std::stoll(std::string(id)));
  }
};

// Wraps a store and counts the calls the policy makes on it.
template <class S>
struct Recording {
  S inner;
  int gets = 0, sets = 0, get_manys = 0, set_manys = 0;
  std::optional<std::string> get(std::string_view k) { return ++gets, inner.get(k); }
  void set(std::string_view k, std::string_view v, std::chrono::milliseconds t) { ++sets, inner.set(k, v, t); }
  bool del(std::string_view k) { return inner.del(k); }
  std::vector<std::optional<std::string>> get_many(std::span<const std::string_view> k) {
    return ++get_manys, inner.get_many(k);
  }
  void set_many(std::span<const cachet::StoreEntry> e) { ++set_manys, inner.set_many(e); }
  std::size_t del_many(std::span<const std::string_view> k) { return inner.del_many(k); }
};

std::vector<std::optional<Product>> load_each(Db& db, std::span<const std::string_view> ids) {
  std::vector<std::optional<Product>> out;
  for (auto id : ids) out.push_back(db.find(id));
  return out;
}

}  // namespace

TEST_CASE("hit, miss and negative paths") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), options("product"));
  Db db;
  auto load = [&](std::string_view id) { return db.find(id); };

  CHECK_FALSE(cache.get("7").has_value());  // get never loads
  CHECK(db.queries == 0);
  CHECK(cache.get_or_load("7", load) == sample_product(7));  // miss: loaded and stored
  CHECK(cache.get_or_load("7", load) == sample_product(7));  // hit
  CHECK(cache.get("7") == sample_product(7));
  CHECK(db.queries == 1);

  CHECK_FALSE(cache.get_or_load("missing-1", load).has_value());
  CHECK_FALSE(cache.get_or_load("missing-1", load).has_value());  // negative hit: no query
  CHECK(db.queries == 2);
  auto conn = server.connect();
  const auto negative_pttl = conn.command({"PTTL", cache.key("missing-1")}).as_integer();
  CHECK(negative_pttl > 20'000);  // 30 s +- 10 % jitter
  CHECK(negative_pttl <= 33'000);
  const auto pttl = conn.command({"PTTL", cache.key("7")}).as_integer();
  CHECK(pttl > 100'000);  // fresh + stale = 2 min +- 10 %
  CHECK(pttl <= 132'000);

  CHECK(cache.metrics().value(Event::hit) == 2);
  CHECK(cache.metrics().value(Event::negative_hit) == 1);
  CHECK(cache.metrics().value(Event::miss) == 3);
  CHECK(cache.metrics().value(Event::load) == 2);

  CHECK(cache.invalidate("7"));
  CHECK(cache.get_or_load("7", load) == sample_product(7));
  CHECK(db.queries == 3);
}

TEST_CASE("without a negative TTL, 'does not exist' is not cached") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto o = options("product");
  o.ttl = cachet::TtlPolicy({.fresh = 1min});
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), o);
  Db db;
  auto load = [&](std::string_view id) { return db.find(id); };
  CHECK_FALSE(cache.get_or_load("missing-2", load).has_value());
  CHECK_FALSE(cache.get_or_load("missing-2", load).has_value());
  CHECK(db.queries == 2);
  CHECK(server.connect().command({"EXISTS", cache.key("missing-2")}).as_integer() == 0);
}

TEST_CASE("corrupt bytes are a miss: counted, reloaded and rewritten") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), options("product"));
  Db db;
  auto conn = server.connect();
  for (const std::string& garbage : {std::string("{\"id\": tru"), std::string("\xCA\xCE\x01\x02 short"), std::string()}) {
    conn.command({"SET", cache.key("9"), garbage});  // as redis-cli SET would
    const auto before = cache.metrics().value(Event::decode_error);
    CHECK(cache.get_or_load("9", [&](std::string_view id) { return db.find(id); }) == sample_product(9));
    CHECK(cache.metrics().value(Event::decode_error) == before + 1);
    CHECK(cache.get("9") == sample_product(9));  // rewritten, readable again
  }
  CHECK(db.queries == 3);
}

TEST_CASE("a throwing loader caches nothing and runs again next time") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), options("product"));
  int calls_made = 0;
  auto failing = [&](std::string_view) -> Product {
    ++calls_made;
    throw std::runtime_error("database down");
  };
  CHECK_THROWS_WITH(cache.get_or_load("5", failing), "database down");
  CHECK_THROWS_WITH(cache.get_or_load("5", failing), "database down");
  CHECK(calls_made == 2);
  CHECK(server.connect().command({"EXISTS", cache.key("5")}).as_integer() == 0);
  CHECK(cache.metrics().value(Event::load_error) == 2);
  CHECK(cache.get_or_load("5", [](std::string_view) { return sample_product(5); }) == sample_product(5));
}

TEST_CASE("get_many: one MGET, one batch load for the misses, one pipelined write") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  using Store = Recording<cachet::RedisStore>;
  cachet::CacheAside<Product, cachet::MsgPackCodec<Product>, cachet::NoGuard, Store> cache(
      Store{cachet::RedisStore(pool)}, options("product"));
  Db db;
  auto one = [&](std::string_view id) { return db.find(id); };
  cache.get_or_load("1", one);            // a hit
  cache.get_or_load("missing-a", one);    // a negative entry
  auto conn = server.connect();
  conn.command({"SET", cache.key("3"), "corrupt"});  // a decode error
  conn.command({"CONFIG", "RESETSTAT"});
  cache.store().gets = cache.store().sets = 0;
  const auto decode_errors = cache.metrics().value(Event::decode_error);

  std::vector<std::string_view> ids{"1", "2", "missing-a", "missing-b", "3", "4"};
  int batches = 0;
  std::vector<std::string> asked;
  auto batch = [&](std::span<const std::string_view> missing) {
    ++batches;
    std::vector<std::optional<Product>> out;
    for (auto id : missing) asked.emplace_back(id), out.push_back(db.find(id));
    return out;
  };
  const auto got = cache.get_many(ids, batch);
  CHECK(batches == 1);
  CHECK(asked == std::vector<std::string>{"2", "missing-b", "3", "4"});
  REQUIRE(got.size() == 6);
  CHECK(got[0] == sample_product(1));
  CHECK(got[1] == sample_product(2));
  CHECK_FALSE(got[2].has_value());
  CHECK_FALSE(got[3].has_value());
  CHECK(got[4] == sample_product(3));
  CHECK(got[5] == sample_product(4));

  CHECK(cache.store().get_manys == 1);  // one round trip to read
  CHECK(cache.store().set_manys == 1);  // one round trip to write back
  CHECK(cache.store().gets + cache.store().sets == 0);
  if (!conn.cluster()) CHECK(cachet::test::command_calls(conn, "mget") == 1);  // a GET pipeline per node there
  CHECK(cachet::test::command_calls(conn, "set") == 4);  // 2, missing-b (negative), 3, 4
  CHECK(cache.metrics().value(Event::decode_error) == decode_errors + 1);  // "3" was corrupt
  // Everything is cached now: a second call loads nothing.
  CHECK(cache.get_many(ids, batch) == got);
  CHECK(batches == 1);
}

TEST_CASE("a batch loader returning the wrong number of values is an error") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), options("product"));
  std::vector<std::string_view> ids{"1", "2"};
  CHECK_THROWS_AS(cache.get_many(ids, [](auto) { return std::vector<std::optional<Product>>{}; }),
                  std::invalid_argument);
}

// make_read_through is stampede-guarded: its RedisLockGuard's LockNotifier refuses a cluster until it subscribes per node.
TEST_CASE("read-through binds the loader once") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  Db db;
  auto products = cachet::make_read_through<Product>(pool, options("product"),
                                                     [&](std::string_view id) { return db.find(id); });
  CHECK(products.get("11") == sample_product(11));
  CHECK(products.get("11") == sample_product(11));
  CHECK_FALSE(products.get("missing-x").has_value());
  CHECK_FALSE(products.get("missing-x").has_value());
  CHECK(db.queries == 2);
  std::vector<std::string_view> ids{"11", "12"};
  const auto many = products.get_many(ids);
  CHECK(many[1] == sample_product(12));
  CHECK(db.queries == 3);
}

// Its own server, killed or configured: the same on either target.
TEST_CASE("with Redis down, reads fall back to the loader and errors surface only when asked", "[single-server]") {
  cachet::testing::RedisServer server;
  auto ro = server.connection_options();
  ro.connect_timeout = 100ms;
  ro.command_timeout = 100ms;
  cachet::Pool pool(ro);
  auto o = options("product");
  o.breaker = {.failure_threshold = 2, .open_for = 50ms};
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), o);
  Db db;
  auto load = [&](std::string_view id) { return db.find(id); };
  cache.get_or_load("1", load);
  server.kill();

  for (int i = 0; i < 5; ++i) CHECK(cache.get_or_load("1", load) == sample_product(1));
  CHECK(cache.breaker().state() != cachet::BreakerState::closed);
  CHECK(cache.metrics().value(Event::redis_error) >= 2);
  CHECK(cache.metrics().value(Event::breaker_open) >= 1);
  CHECK(cache.metrics().value(Event::miss) == 1 + 5);  // unreachable counts as a miss
  // Each lookup went to Redis (timed) or was skipped by the open breaker (counted, not timed).
  CHECK(cache.metrics().get_latency().count() + cache.metrics().value(Event::redis_skipped) == 6);

  // Batches degrade the same way: every id loaded, counted as misses, nothing written.
  std::vector<std::string_view> ids{"1", "2"};
  const auto misses = cache.metrics().value(Event::miss);
  const auto many = cache.get_many(ids, [&](std::span<const std::string_view> m) { return load_each(db, m); });
  CHECK(many[1] == sample_product(2));
  CHECK(cache.metrics().value(Event::miss) == misses + 2);
  // An empty batch touches nothing, so it cannot pass for a half-open probe.
  std::this_thread::sleep_for(60ms);
  const auto state = cache.breaker().state();
  CHECK(cache.get_many({}, [&](std::span<const std::string_view> m) { return load_each(db, m); }).empty());
  CHECK(cache.breaker().state() == state);

  auto o2 = options("product");
  o2.throw_redis_errors = true;
  o2.metrics_label = "visible";
  cachet::CacheAside<Product> visible(cachet::RedisStore(pool), o2);
  CHECK_THROWS_AS(visible.get_or_load("1", load), cachet::ConnectionError);
}

// Its own server, killed or configured: the same on either target.
TEST_CASE("a Redis that refuses writes (OOM) still serves reads from the loader and counts failed writes", "[single-server]") {
  cachet::testing::RedisServer server({.config = {"maxmemory 1mb", "maxmemory-policy noeviction"}});
  auto conn = server.connect();
  bool full = false;
  for (int i = 0; i < 10'000 && !full; ++i) {
    try {
      conn.command({"SET", "filler:" + std::to_string(i), std::string(10'000, 'f')});
    } catch (const cachet::ReplyError& e) {
      REQUIRE(e.code() == "OOM");
      full = true;
    }
  }
  REQUIRE(full);
  cachet::Pool pool(server.connection_options());
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), options("product"));
  Db db;
  CHECK(cache.get_or_load("1", [&](std::string_view id) { return db.find(id); }) == sample_product(1));
  CHECK(cache.get_or_load("1", [&](std::string_view id) { return db.find(id); }) == sample_product(1));
  CHECK(db.queries == 2);
  CHECK(cache.metrics().value(Event::cache_write_error) == 2);
  CHECK(cache.breaker().state() == cachet::BreakerState::closed);  // an answer is not an outage
  CHECK_THROWS_AS(cache.set("2", sample_product(2)), cachet::ReplyError);  // an explicit write reports it
}

// Its own server, killed or configured: the same on either target.
TEST_CASE("8 threads keep reading while the server is SIGKILLed and restarted", "[single-server]") {
  cachet::testing::RedisServer server;
  auto ro = server.connection_options();
  ro.connect_timeout = 50ms;
  ro.command_timeout = 50ms;
  ro.reconnect = {.initial = 10ms, .max = 200ms};
  cachet::Pool pool(ro, {.size = 8, .wait_timeout = 200ms});
  auto o = options("product");
  o.breaker = {.failure_threshold = 3, .open_for = 100ms};
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), o);
  std::atomic<int> loads{0};
  auto load = [&](std::string_view id) {
    ++loads;
    return sample_product(std::stoll(std::string(id)));
  };

  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<cachet::test::Thread> readers;
  for (int t = 0; t < 8; ++t) {
    readers.emplace_back([&, t] {
      for (int i = 0; i < 10'000 || !stop; ++i) {  // at least 10k gets each, on until told
        try {
          const auto id = std::to_string((t * 10'000 + i) % 50);
          if (cache.get_or_load(id, load) != sample_product(std::stoll(id))) ++errors;
        } catch (...) {
          ++errors;
        }
      }
    });
  }
  // The readers are hitting Redis before it dies, and its death has opened the breaker before it returns.
  REQUIRE(cachet::test::eventually([&] { return cache.metrics().value(Event::hit) >= 100; }, 30s));
  server.kill();
  REQUIRE(cachet::test::eventually([&] { return cache.metrics().value(Event::breaker_open) >= 1; }, 30s));
  CHECK(cache.breaker().state() != cachet::BreakerState::closed);
  server.restart();
  const auto restart_time = std::chrono::steady_clock::now();
  const auto hits_at_restart = cache.metrics().value(Event::hit);
  while (cache.metrics().value(Event::hit) < hits_at_restart + 100 &&
         std::chrono::steady_clock::now() - restart_time < 5s)
    std::this_thread::sleep_for(5ms);
  const auto recovery = std::chrono::steady_clock::now() - restart_time;
  stop = true;
  for (auto& r : readers) r.join();

  CHECK(errors == 0);  // no exception, no wrong value reached a caller
  CHECK(recovery < 2s);
  CHECK(cache.breaker().state() == cachet::BreakerState::closed);
  INFO("loads " << loads << ", hits " << cache.metrics().value(Event::hit));
  CHECK(cache.metrics().value(Event::hit) > hits_at_restart);
}

TEST_CASE("sliding expiry renews the TTL on every hit") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheOptions o;
  o.ns = "test";
  o.name = "session";
  o.ttl = cachet::TtlPolicy({.fresh = 1min}, {{"session", {.fresh = 2s, .jitter = 0, .sliding = true}}});
  cachet::CacheAside<std::string, cachet::StringCodec> sessions(cachet::RedisStore(pool), o);
  auto conn = server.connect();
  sessions.set("s1", "alice");
  conn.command({"PEXPIRE", sessions.key("s1"), 1000});  // as if half its life had passed
  CHECK(sessions.get("s1") == std::optional<std::string>("alice"));
  const auto pttl = conn.command({"PTTL", sessions.key("s1")}).as_integer();
  CHECK(pttl > 1500);  // renewed to the full 2 s by the read
}

TEST_CASE("a sliding rule on a store that cannot renew TTLs is refused, not ignored") {
  struct PlainStore {  // a Store without get_and_touch
    std::optional<std::string> get(std::string_view) { return std::nullopt; }
    void set(std::string_view, std::string_view, std::chrono::milliseconds) {}
    bool del(std::string_view) { return false; }
    std::vector<std::optional<std::string>> get_many(std::span<const std::string_view> k) {
      return std::vector<std::optional<std::string>>(k.size());
    }
    void set_many(std::span<const cachet::StoreEntry>) {}
    std::size_t del_many(std::span<const std::string_view>) { return 0; }
  };
  static_assert(cachet::Store<PlainStore> && !cachet::TouchingStore<PlainStore>);
  static_assert(cachet::TouchingStore<cachet::RedisStore>);
  cachet::CacheOptions o;
  o.name = "session";
  o.ttl = cachet::TtlPolicy({.fresh = 1min, .sliding = true});
  using Cache = cachet::CacheAside<std::string, cachet::StringCodec, cachet::NoGuard, PlainStore>;
  CHECK_THROWS_AS(Cache(PlainStore{}, o), std::invalid_argument);
  o.ttl = cachet::TtlPolicy({.fresh = 1min});
  CHECK_NOTHROW(Cache(PlainStore{}, o));
}

TEST_CASE("cache-aside over MemoryStore: a single process needs no Redis") {
  cachet::ManualClock clock;
  using Store = cachet::BasicMemoryStore<cachet::ClockRef<cachet::ManualClock>>;
  cachet::CacheAside<Product, cachet::JsonCodec<Product>, cachet::NoGuard, Store, cachet::ClockRef<cachet::ManualClock>>
      cache(Store({.max_entries = 1000}, cachet::ClockRef(clock)), options("memory-product"), {}, {},
            cachet::ClockRef(clock));
  Db db;
  auto load = [&](std::string_view id) { return db.find(id); };
  CHECK(cache.get_or_load("3", load) == sample_product(3));
  CHECK(cache.get_or_load("3", load) == sample_product(3));
  CHECK_FALSE(cache.get_or_load("missing-m", load).has_value());
  CHECK_FALSE(cache.get_or_load("missing-m", load).has_value());
  CHECK(db.queries == 2);
  clock.advance(3min);  // past fresh + stale (2 min +- 10 %): gone
  CHECK(cache.get_or_load("3", load) == sample_product(3));
  CHECK(db.queries == 3);
  std::vector<std::string_view> ids{"3", "4"};
  const auto many = cache.get_many(ids, [&](std::span<const std::string_view> missing) {
    std::vector<std::optional<Product>> out;
    for (auto id : missing) out.push_back(db.find(id));
    return out;
  });
  CHECK(many[1] == sample_product(4));
  CHECK(db.queries == 4);
}

TEST_CASE("get_many reloads stale and stale-negative entries and keeps fresh ones, judged by the cache's clock") {
  cachet::ManualClock clock;
  using Store = cachet::BasicMemoryStore<cachet::ClockRef<cachet::ManualClock>>;
  cachet::CacheAside<Product, cachet::JsonCodec<Product>, cachet::NoGuard, Store, cachet::ClockRef<cachet::ManualClock>>
      cache(Store({.max_entries = 1000}, cachet::ClockRef(clock)), options("memory-stale"), {}, {},
            cachet::ClockRef(clock));
  Db db;
  auto load = [&](std::string_view id) { return db.find(id); };
  cache.get_or_load("5", load);
  cache.get_or_load("missing-s", load);
  clock.advance(70s);  // past fresh (1 min + 10 % at most), before fresh + stale: both stale, still stored
  cache.get_or_load("7", load);  // fresh
  std::vector<std::string> asked;
  std::vector<std::string_view> ids{"5", "missing-s", "7"};
  const auto many = cache.get_many(ids, [&](std::span<const std::string_view> missing) {
    std::vector<std::optional<Product>> out;
    for (auto id : missing) asked.emplace_back(id), out.push_back(db.find(id));
    return out;
  });
  CHECK(asked == std::vector<std::string>{"5", "missing-s"});
  REQUIRE(many.size() == 3);
  CHECK(many[0] == sample_product(5));
  CHECK_FALSE(many[1].has_value());
  CHECK(many[2] == sample_product(7));
}

TEST_CASE("a batch loader that throws caches nothing") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), options("product"));
  std::vector<std::string_view> ids{"1", "2"};
  CHECK_THROWS_WITH(cache.get_many(ids, [](auto) -> std::vector<std::optional<Product>> { throw std::runtime_error("db"); }),
                    "db");
  CHECK(server.connect().key_count() == 0);
  CHECK(cache.metrics().value(Event::load) == 1);  // a batch load is one loader call
  CHECK(cache.metrics().value(Event::load_error) == 1);
  CHECK(cache.metrics().load_latency().count() == 1);
}

// As a value that cannot be encoded: the read returns what it loaded, the entry is not stored.
TEST_CASE("a tags callback that throws on a load's write is a cache write error: the reader gets the value") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto o = options("product");
  o.breaker = {.failure_threshold = 1, .open_for = std::chrono::hours(1)};  // one failure would open it for the test
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), o);
  cache.tag_loaded_values([](const Product& p) {
    if (p.id == 2) throw std::domain_error("no tags for 2");
    return std::vector<std::string>{"t"};
  });
  Db db;
  std::vector<std::string_view> ids{"1", "2"};
  const auto many = cache.get_many(ids, [&](auto m) { return load_each(db, m); });
  REQUIRE(many.size() == 2);
  CHECK(many[0] == sample_product(1));
  CHECK(many[1] == sample_product(2));
  CHECK(cache.metrics().value(Event::cache_write_error) == 1);
  CHECK(cache.get("1") == sample_product(1));  // the batch's other entry is written
  CHECK_FALSE(cache.get("2"));
  CHECK(cache.get_or_load("2", [&](auto id) { return db.find(id); }) == sample_product(2));
  CHECK(cache.metrics().value(Event::cache_write_error) == 2);
  CHECK_FALSE(cache.get("2"));
  CHECK(cache.breaker().state() == cachet::BreakerState::closed);
  CHECK(cache.metrics().value(Event::redis_error) == 0);
  CHECK(cache.get_or_load("3", [&](auto id) { return db.find(id); }) == sample_product(3));
  CHECK(cache.get("3") == sample_product(3));  // written: Redis still reached
  CHECK_THROWS_AS(cache.set("2", sample_product(2)), std::domain_error);  // an explicit write reports it
}

namespace {
struct Unencodable {
  int v = 0;
  bool operator==(const Unencodable&) const = default;
};
void to_json(nlohmann::json&, const Unencodable&) { throw std::runtime_error("cannot serialise"); }
void from_json(const nlohmann::json& j, Unencodable& u) { u.v = j.get<int>(); }
}  // namespace

TEST_CASE("a value that cannot be encoded is still returned and the failed write is counted") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheAside<Unencodable> cache(cachet::RedisStore(pool), options("unencodable"));
  CHECK(cache.get_or_load("1", [](std::string_view) { return Unencodable{7}; }) == Unencodable{7});
  CHECK(cache.metrics().value(Event::cache_write_error) == 1);
  CHECK_THROWS_AS(cache.set("1", Unencodable{8}), cachet::EncodeError);  // an explicit write reports it
}

TEST_CASE("sliding expiry renews TTLs through get_many, and refuses a negative TTL") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheOptions o;
  o.ns = "test";
  o.name = "session";
  o.ttl = cachet::TtlPolicy({.fresh = 2s, .jitter = 0, .sliding = true});
  cachet::CacheAside<std::string, cachet::StringCodec> sessions(cachet::RedisStore(pool), o);
  auto conn = server.connect();
  sessions.set("a", "alice");
  sessions.set("b", "bob");
  conn.command({"PEXPIRE", sessions.key("a"), 1000});  // half its life left: renewed to 2 s, it shows over 1.5 s
  std::vector<std::string_view> ids{"a", "b"};
  const auto got = sessions.get_many(ids, [](auto m) { return std::vector<std::optional<std::string>>(m.size()); });
  CHECK(got[0] == std::optional<std::string>("alice"));
  CHECK(conn.command({"PTTL", sessions.key("a")}).as_integer() > 1500);

  o.ttl = cachet::TtlPolicy({.fresh = 2s, .negative = 1s, .sliding = true});
  o.name = "session2";
  const auto registered = cachet::MetricsRegistry::global().metrics().size();
  CHECK_THROWS_AS((cachet::CacheAside<std::string, cachet::StringCodec>(cachet::RedisStore(pool), o)),
                  std::invalid_argument);
  CHECK(cachet::MetricsRegistry::global().metrics().size() == registered);  // nothing left registered
}

// Its own server, killed or configured: the same on either target.
TEST_CASE("refused writes in a batch are counted one by one and keep the connection", "[single-server]") {
  cachet::testing::RedisServer server({.config = {"maxmemory 1mb", "maxmemory-policy noeviction"}});
  auto conn = server.connect();
  for (int i = 0; i < 10'000; ++i) {
    try {
      conn.command({"SET", "filler:" + std::to_string(i), std::string(10'000, 'f')});
    } catch (const cachet::ReplyError&) {
      break;
    }
  }
  cachet::Pool pool(server.connection_options(), {.size = 1});
  cachet::RedisStore store(pool);
  const std::vector<cachet::StoreEntry> entries{{"a", "1", 10s}, {"b", "2", 10s}, {"c", "3", 10s}};
  try {
    store.set_many(entries);
    FAIL("an OOM server accepted every write");
  } catch (const cachet::BatchWriteError& e) {
    CHECK(e.failed() == 3);
    CHECK(e.total() == 3);
    CHECK(e.code() == "OOM");
  }
  CHECK(pool.stats().discarded == 0);  // every reply was read: the connection is still good
  CHECK(pool.stats().created == 1);
}

// Its own server, killed or configured: the same on either target.
TEST_CASE("a refused AUTH is an outage: the pool backs off and the breaker opens", "[single-server]") {
  cachet::testing::RedisServer server({.config = {"requirepass right"}});
  auto ro = server.connection_options();
  ro.password = "wrong";
  cachet::Pool pool(ro, {.verify = false});  // as after a rotation under a running pool (verify would throw ConfigError)
  CHECK_THROWS_AS(pool.acquire(), cachet::HandshakeError);
  auto o = options("product");
  o.breaker = {.failure_threshold = 2, .open_for = 10s};
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), o);
  Db db;
  for (int i = 0; i < 5; ++i) CHECK(cache.get_or_load("1", [&](std::string_view id) { return db.find(id); }));
  CHECK(cache.breaker().state() == cachet::BreakerState::open);
}

TEST_CASE("an entry past its soft expiry is reloaded, not served as fresh") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::ManualClock clock;
  auto o = options("product");
  o.ttl = cachet::TtlPolicy({.fresh = 1min, .stale = 10min, .jitter = 0, .negative = 30s});
  cachet::CacheAside<Product, cachet::JsonCodec<Product>, cachet::NoGuard, cachet::RedisStore,
                     cachet::ClockRef<cachet::ManualClock>>
      cache(cachet::RedisStore(pool), o, {}, {}, cachet::ClockRef(clock));
  Db db;
  auto load = [&](std::string_view id) { return db.find(id); };
  cache.get_or_load("1", load);
  cache.get_or_load("missing-s", load);
  clock.advance(59s);
  CHECK(cache.get("1") == sample_product(1));  // still fresh
  CHECK(db.queries == 2);
  clock.advance(2s);  // past fresh_until; Redis still keeps it (stale window)
  CHECK(server.connect().command({"EXISTS", cache.key("1")}).as_integer() == 1);
  CHECK_FALSE(cache.get("1").has_value());  // get() answers with fresh values only
  CHECK(cache.get_or_load("1", load) == sample_product(1));  // reloaded
  CHECK_FALSE(cache.get_or_load("missing-s", load).has_value());  // the negative entry expired too
  CHECK(db.queries == 4);
  CHECK(cache.get_or_load("1", load) == sample_product(1));  // fresh again: a hit
  CHECK(db.queries == 4);
}

TEST_CASE("on a cluster a cache's keys carry the entity's hash tag: its lock and write version share the value's slot") {
  auto& target = cachet::test::clean_target();
  cachet::Pool pool(target.connection_options());
  cachet::CacheAside<Product> cache(cachet::RedisStore(pool), options("product"));
  const std::string key = cache.key("42");
  CHECK(key == (target.cluster() ? "test:product:{42}" : "test:product:42"));
  if (target.cluster()) {
    CHECK(cachet::detail::hash_slot(cache.keys().lock(key)) == cachet::detail::hash_slot(key));
    CHECK(cachet::detail::hash_slot(cache.keys().write_version(key)) == cachet::detail::hash_slot(key));
  }
  auto ns_wide = options("product");
  ns_wide.keys.hash_tag = cachet::HashTag::ns;  // chosen: kept
  CHECK(cachet::CacheAside<Product>(cachet::RedisStore(pool), ns_wide).key("42") == "{test}:product:42");
}
