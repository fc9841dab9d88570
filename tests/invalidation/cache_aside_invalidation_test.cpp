#include <cachet/codec/string.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/make.hpp>
#include <cachet/policy/read_through.hpp>
#include <cachet/policy/write_through.hpp>
#include <cachet/testing/redis_server.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/product.hpp>
#include <support/server.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using cachet::test::Product;

namespace {

cachet::CacheOptions options(cachet::NamespaceVersions* versions = nullptr) {
  return {.ns = "shop", .name = "product", .ttl = cachet::TtlPolicy({.fresh = 10min}), .versions = versions};
}

std::string category_of(const Product& p) { return "category:" + std::to_string(p.id % 2); }

// What invalidate_tags returns for `n` values: their count, or 0 on a cluster,
// where it bumps the tags' version counters and counts nothing (docs/cluster.md).
std::size_t invalidated(std::size_t n) { return cachet::test::on_cluster() ? 0 : n; }

using cachet::test::Gate;

}  // namespace

TEST_CASE("CacheAside: a value set with tags is removed by invalidate_tags") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheAside<Product> products(cachet::RedisStore(pool), options());
  products.set("1", cachet::test::sample_product(1), {"category:1", "brand:7"});
  products.set("2", cachet::test::sample_product(2), std::vector<std::string>{"category:0"});
  REQUIRE(products.get("1"));
  if (!server.cluster())  // a tag set, of one server's design: its TTL is the value's
    CHECK(server.connect().command({"PTTL", "shop:tag:brand%3A7"}).as_integer() > 500'000);
  CHECK(products.invalidate_tags({"brand:7"}) == invalidated(1));
  CHECK_FALSE(products.get("1"));
  CHECK(products.get("2"));
  products.set("1", cachet::test::sample_product(1), {"brand:7"});  // tagged after the invalidation
  CHECK(products.get("1"));
  if (server.cluster()) {  // the tags' version counters spread over the masters
    std::set<std::string> masters;
    for (int i = 0; i < 12; ++i)
      masters.insert(pool.cluster_master_of(products.keys().tag_version("category:" + std::to_string(i))));
    CHECK(masters.size() > 1);
  }
}

TEST_CASE("CacheAside: loaded values are tagged by tag_loaded_values, one by one and in batches") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheAside<Product> products(cachet::RedisStore(pool), options());
  products.tag_loaded_values([](const Product& p) { return std::vector<std::string>{category_of(p)}; });
  int loads = 0;
  auto load = [&](std::string_view id) {
    ++loads;
    return cachet::test::sample_product(std::stoll(std::string(id)));
  };
  products.get_or_load("1", load);
  products.get_or_load("3", load);
  const std::vector<std::string_view> ids{"2", "4", "5"};
  const auto load_batch = [&](std::span<const std::string_view> missing) {
    std::vector<std::optional<Product>> out;
    for (auto id : missing) out.emplace_back(load(id));
    return out;
  };
  products.get_many(ids, load_batch);
  REQUIRE(loads == 5);
  if (!server.cluster()) {  // the tag sets, of one server's design
    auto conn = server.connect();
    CHECK(conn.command({"SCARD", "shop:tag:category%3A1"}).as_integer() == 3);
    CHECK(conn.command({"SCARD", "shop:tag:category%3A0"}).as_integer() == 2);
  }

  CHECK(products.invalidate_tags({"category:1"}) == invalidated(3));
  products.get_or_load("1", load);  // reloaded
  products.get_or_load("2", load);  // still cached
  CHECK(loads == 6);
  products.get_many(ids, load_batch);
  CHECK(loads == 7);  // "5" of the batch reloaded, "2" and "4" cached
}

TEST_CASE("CacheAside: a tagging cache tags what set() is given, so its tags' invalidation finds it") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheAside<Product> products(cachet::RedisStore(pool), options());
  products.tag_loaded_values([](const Product& p) { return std::vector<std::string>{category_of(p)}; });
  products.set("1", cachet::test::sample_product(1));
  if (!server.cluster()) {  // the tag set, of one server's design
    auto conn = server.connect();
    CHECK(conn.command({"SISMEMBER", "shop:tag:category%3A1", products.key("1")}).as_integer() == 1);
    // Absolute expiry times: two PTTLs would differ by the time between the reads, in whichever order they ran.
    const long long tag_ends = conn.command({"PEXPIRETIME", "shop:tag:category%3A1"}).as_integer();
    CHECK(tag_ends >= conn.command({"PEXPIRETIME", products.key("1")}).as_integer());
  }
  REQUIRE(products.get("1"));
  CHECK(products.invalidate_tags({"category:1"}) == invalidated(1));
  CHECK_FALSE(products.get("1"));
}

TEST_CASE("ReadThrough: values loaded through it are tagged via its cache") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  int loads = 0;
  auto products = cachet::make_read_through<Product>(pool, options(), [&](std::string_view id) {
    ++loads;
    return cachet::test::sample_product(std::stoll(std::string(id)));
  });
  products.cache().tag_loaded_values([](const Product& p) { return std::vector<std::string>{category_of(p)}; });
  products.get("1");
  products.get("1");
  CHECK(loads == 1);
  CHECK(products.cache().invalidate_tags({"category:1"}) == invalidated(1));
  products.get("1");
  CHECK(loads == 2);
}

namespace {

// What a race of loads against an invalidate_tags left in the cache: tagged
// values (even ids) cached, untagged ones (odd ids: no tags) cached as loaded.
struct LoadRace {
  std::size_t tagged_cached = 0, untagged_cached = 0, refused = 0;
};

// Eight loads (`per_load` ids each: a get_many when more than one) read the
// database, then an update's invalidate_tags runs and returns, then the loads
// write; five rounds. Each load read the tag epoch before its loader, so each
// tagged write is refused: on a cluster (keys under `hash_tag`: the default
// spreads them, tags are version counters) after stamping, on one server (and
// on a cluster under HashTag::ns) by the write's script. The untagged writes,
// of the same loads and batches, are not.
LoadRace race_loads(cachet::HashTag hash_tag, std::size_t per_load) {
  cachet::Pool pool(cachet::test::target().connection_options());
  const cachet::CacheOptions o{
      .ns = "shop", .name = "row", .keys = {.hash_tag = hash_tag}, .ttl = cachet::TtlPolicy({.fresh = 10min})};
  cachet::CacheAside<std::string, cachet::StringCodec> cache(cachet::RedisStore(pool), o);
  cache.tag_loaded_values([](const std::string& v) {  // v: "<n>-<round>@<row>", its id's number n first
    return std::stoul(v) % 2 ? std::vector<std::string>{} : std::vector<std::string>{"all"};
  });
  constexpr std::size_t threads = 8, rounds = 5;
  std::vector<std::atomic<int>> db(threads);
  Gate read_db, invalidated;
  LoadRace out;
  // A new key each round (always a miss), numbered across the loads: the
  // batches hold even and odd ones.
  const auto key = [&](std::size_t round, std::size_t t, std::size_t i) {
    return std::to_string(t * per_load + i) + "-" + std::to_string(round);
  };
  const auto read = [&](std::size_t t) {  // the database read, then the update and its invalidation
    const std::string v = std::to_string(db[t].load());
    read_db.arrive();
    if (!invalidated.wait_for(1)) throw std::runtime_error("invalidate_tags did not return");
    return v;
  };
  for (std::size_t round = 0; round < rounds; ++round) {
    read_db.reset();
    invalidated.reset();
    std::vector<cachet::test::Thread> loaders;
    for (std::size_t t = 0; t < threads; ++t)
      loaders.emplace_back([&, t] {
        std::vector<std::string> ids;
        for (std::size_t i = 0; i < per_load; ++i) ids.push_back(key(round, t, i));
        if (per_load == 1)
          return void(cache.get_or_load(ids[0], [&](std::string_view id) { return std::string(id) + "@" + read(t); }));
        const std::vector<std::string_view> views(ids.begin(), ids.end());
        cache.get_many(views, [&](std::span<const std::string_view> missing) {
          const std::string v = read(t);
          std::vector<std::optional<std::string>> values;
          for (auto id : missing) values.emplace_back(std::string(id) + "@" + v);
          return values;
        });
      });
    {
      const cachet::test::ArriveOnExit release(invalidated);  // also when what follows fails
      REQUIRE(read_db.wait_for(threads));
      for (auto& row : db) ++row;
      cache.invalidate_tags({"all"});
    }
    for (auto& l : loaders) l.join();
    for (std::size_t t = 0; t < threads; ++t)
      for (std::size_t i = 0; i < per_load; ++i) {
        const std::string k = key(round, t, i);
        const std::optional<std::string> cached = cache.get(k);
        if ((t * per_load + i) % 2 == 0) out.tagged_cached += cached ? 1 : 0;
        else out.untagged_cached += cached == k + "@" + std::to_string(db[t].load() - 1) ? 1 : 0;
      }
  }
  out.refused = cache.metrics().value(cachet::Event::stale_write_refused);
  return out;
}

}  // namespace

TEST_CASE("loads that read the database before an invalidate_tags and write after it are refused") {
  cachet::test::clean_target();
  // The default keys (HashTag::entity on a cluster: version counters), then HashTag::ns (the one-server scripts).
  for (const cachet::HashTag h : {cachet::HashTag::none, cachet::HashTag::ns}) {
    const LoadRace r = race_loads(h, 1);
    CHECK(r.tagged_cached == 0);  // every load read the data before the update
    CHECK(r.untagged_cached == 4 * 5);  // the odd loads' of each round
    CHECK(r.refused == 4 * 5);
  }
}

TEST_CASE("batch loads (get_many) that read the database before an invalidate_tags and write after it are refused") {
  cachet::test::clean_target();
  for (const cachet::HashTag h : {cachet::HashTag::none, cachet::HashTag::ns}) {
    const LoadRace r = race_loads(h, 3);
    CHECK(r.tagged_cached == 0);
    CHECK(r.untagged_cached == 12 * 5);  // each batch's odd entries (24 ids a round)
    CHECK(r.refused == 12 * 5);          // each tagged entry of each batch
  }
}

TEST_CASE("an untagged load reads no tag epoch and a tagged one reads it once", "[single-server]") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  cachet::CacheAside<std::string, cachet::StringCodec> cache(cachet::RedisStore(pool), options());
  const auto load = [](std::string_view id) { return std::string(id); };
  conn.command({"CONFIG", "RESETSTAT"});
  cache.get_or_load("1", load);
  CHECK(cachet::test::command_calls(conn, "get") == 1);  // the lookup
  CHECK(cachet::test::command_calls(conn, "evalsha") + cachet::test::command_calls(conn, "eval") == 0);  // a SET
  cache.tag_loaded_values([](const std::string&) { return std::vector<std::string>{"all"}; });
  conn.command({"CONFIG", "RESETSTAT"});
  cache.get_or_load("2", load);
  // The lookup, the epoch, the write script's check of it: Redis 7's commandstats
  // count the commands a script runs (redis.call) as their own.
  CHECK(cachet::test::command_calls(conn, "get") == 3);
  CHECK(cache.invalidate_tags({"all"}) == 1);
  CHECK_FALSE(cache.get("2"));
}

TEST_CASE("a write-through cache's tagged load reads the epoch in the MGET of its write version", "[single-server]") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  cachet::CacheAside<std::string, cachet::StringCodec> cache(cachet::RedisStore(pool), options());
  cache.tag_loaded_values([](const std::string&) { return std::vector<std::string>{"all"}; });
  auto written = cachet::write_through(cache, [](std::string_view, const std::string&) {});
  const auto load = [](std::string_view id) { return std::string(id); };
  conn.command({"CONFIG", "RESETSTAT"});
  cache.get_or_load("1", load);
  const std::vector<std::string_view> ids{"2", "3"};
  cache.get_many(ids, [](std::span<const std::string_view> missing) {
    return std::vector<std::optional<std::string>>(missing.begin(), missing.end());
  });
  // Each load reads its write versions and the epoch in one MGET, no GET of its
  // own for the epoch; the batch's lookup is an MGET too. The GETs: the single
  // load's lookup, and each write script's checks of its watch and the epoch
  // (Redis 7's commandstats count the commands a script runs).
  CHECK(cachet::test::command_calls(conn, "mget") == 1 + 2);
  CHECK(cachet::test::command_calls(conn, "get") == 1 + 2 * 3);
  CHECK(cache.invalidate_tags({"all"}) == 3);
}

TEST_CASE("CacheAside: tags are refused on a sliding-expiry cache, whose hits would outlive the tag sets") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::CacheAside<Product> sessions(cachet::RedisStore(pool),
                                       {.ns = "shop", .name = "session", .ttl = cachet::TtlPolicy({.fresh = 10min, .sliding = true})});
  CHECK_THROWS_AS(sessions.set("1", cachet::test::sample_product(1), {"user:1"}), std::invalid_argument);
  CHECK_THROWS_AS(sessions.tag_loaded_values([](const Product&) { return std::vector<std::string>{}; }),
                  std::invalid_argument);
  CHECK(server.connect().key_count() == 0);
}

TEST_CASE("CacheAside in a versioned namespace: a bump invalidates every value at once") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::NamespaceVersions versions(pool, cachet::KeyBuilder("shop"), {.cache_for = 1h});
  cachet::CacheAside<Product> products(cachet::RedisStore(pool), options(&versions));
  int loads = 0;
  auto load = [&](std::string_view id) {
    ++loads;
    return cachet::test::sample_product(std::stoll(std::string(id)));
  };
  // A cluster pool's keys default to HashTag::entity (docs/cluster.md).
  const std::string v0 = server.cluster() ? "shop:product:v0:{42}" : "shop:product:v0:42";
  CHECK(products.key("42") == v0);
  products.get_or_load("42", load);
  products.get_or_load("43", load);
  products.get_or_load("42", load);
  REQUIRE(loads == 2);

  versions.bump("product");
  CHECK(products.key("42") == (server.cluster() ? "shop:product:v1:{42}" : "shop:product:v1:42"));
  CHECK_FALSE(products.get("42"));
  products.get_or_load("42", load);
  CHECK(loads == 3);
  auto conn = server.connect();
  CHECK(conn.command({"EXISTS", v0}).as_integer() == 1);  // left to expire
  CHECK(conn.command({"PTTL", v0}).as_integer() > 0);
  if (server.cluster()) {  // a versioned namespace's keys spread over the masters
    std::set<std::string> masters;
    for (int i = 0; i < 12; ++i) masters.insert(pool.cluster_master_of(products.key(std::to_string(i))));
    CHECK(masters.size() > 1);
  }
}

// Its own server, killed.
TEST_CASE("CacheAside in a versioned namespace with Redis down since start: reads are served by the loader",
          "[single-server]") {
  cachet::testing::RedisServer own;
  cachet::Pool pool(cachet::test::quick_to_fail(own));
  cachet::NamespaceVersions versions(pool, cachet::KeyBuilder("shop"), {.cache_for = 10ms});
  cachet::CacheAside<Product> products(cachet::RedisStore(pool), options(&versions));
  own.kill();  // before the version was ever read
  int loads = 0;
  auto load = [&](std::string_view id) {
    ++loads;
    return cachet::test::sample_product(std::stoll(std::string(id)));
  };
  CHECK(products.get_or_load("42", load).id == 42);
  CHECK_FALSE(products.get("42"));
  const std::vector<std::string_view> ids{"1", "2"};
  const auto many = products.get_many(ids, [&](std::span<const std::string_view> missing) {
    std::vector<std::optional<Product>> out;
    for (auto id : missing) out.push_back(load(id));
    return out;
  });
  REQUIRE(many.size() == 2);
  CHECK((many[0] && many[1] && many[1]->id == 2));
  CHECK(loads == 3);
  CHECK_THROWS_AS(products.set("42", cachet::test::sample_product(42)), cachet::ConnectionError);  // writes are not silent
}
