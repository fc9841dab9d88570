// Tags on Redis Cluster: per-tag version counters stamped
// in the entry (invalidation/tag_versions.hpp), compared on read. One local
// cluster (3 masters, no replicas) for the binary's cluster cases, flushed
// between sections. What a user of tags sees on either target (set with tags,
// tag_loaded_values, invalidate_tags, the tag race, loads racing an
// invalidation, a versioned namespace) is in tags_test and
// cache_aside_invalidation_test, which run here too (`_cluster`); this suite
// keeps what only the counters have.

#include <cachet/codec/entry.hpp>
#include <cachet/codec/envelope.hpp>
#include <cachet/codec/string.hpp>
#include <cachet/invalidation/dependencies.hpp>
#include <cachet/invalidation/tags.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/warm.hpp>
#include <cachet/policy/write_through.hpp>
#include <cachet/testing/redis_cluster.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using cachet::TagStamp;

namespace {

using Cache = cachet::CacheAside<std::string, cachet::StringCodec>;

cachet::testing::RedisCluster& cluster() {
  static cachet::testing::RedisCluster c(cachet::testing::RedisClusterOptions{.replicas_per_master = 0});
  return c;
}

// A cluster pool over the shared cluster, every master flushed.
cachet::Pool& fresh_pool() {
  static cachet::Pool pool(cluster().client_options());
  pool.for_each_master([](cachet::Connection& c) { c.command({"FLUSHALL"}); });
  return pool;
}

// A loader that returns the id, counting its calls in `loads`.
auto counting_loader(int& loads) {
  return [&loads](std::string_view id) {
    ++loads;
    return std::string(id);
  };
}

// get_or_load("a") twice: one load, then a hit.
template <class Loader>
void check_loaded_once(Cache& cache, const Loader& loader, const int& loads) {
  CHECK(cache.get_or_load("a", loader) == "a");
  CHECK(cache.get_or_load("a", loader) == "a");
  CHECK(loads == 1);
}

// The first tag "<prefix><i>" whose counter is on another master than `key`.
std::string tag_off(cachet::Pool& pool, const cachet::KeyBuilder& keys, std::string_view key, std::string_view prefix) {
  for (int i = 0;; ++i) {
    std::string tag = std::string(prefix) + std::to_string(i);
    if (pool.cluster_master_of(keys.tag_version(tag)) != pool.cluster_master_of(key)) return tag;
  }
}

cachet::CacheOptions options(std::string name) {
  return {.ns = "shop", .name = std::move(name), .ttl = cachet::TtlPolicy({.fresh = 10min})};
}
// A write-through cache's options: HashTag::entity puts a value's write version in its slot.
cachet::CacheOptions entity_options(std::string name) {
  cachet::CacheOptions o = options(std::move(name));
  o.keys.hash_tag = cachet::HashTag::entity;
  return o;
}

}  // namespace

TEST_CASE("a stamped envelope keeps its stamps and payload, and readers without bit 2 refuse it") {
  const cachet::EntryCodec<cachet::StringCodec> codec;
  cachet::EntryMeta meta;
  meta.created_at = cachet::EntryMeta::time_point(1'700'000'000'000ms);
  meta.fresh_until = meta.created_at + 1min;
  const std::string plain = codec.encode("value", meta);
  const std::vector<TagStamp> stamps{{"category:9", 7}, {"", 0}, {"brand:{4}", 1ull << 60}};
  const std::string stamped = cachet::envelope::stamp(plain, stamps);

  const cachet::envelope::View v = cachet::envelope::decode(stamped);
  CHECK(v.meta.stamped);
  CHECK(cachet::envelope::stamps_of(v.stamps) == stamps);
  CHECK(codec.decode(stamped).value == "value");
  CHECK_FALSE(cachet::envelope::decode(plain).meta.stamped);
  // A version-1 reader knows flags 0-1 only: bit 2 makes it throw DecodeError (a miss).
  CHECK((static_cast<unsigned char>(stamped[4]) & ~0x03u) != 0);

  CHECK_THROWS_AS(cachet::envelope::stamp(stamped, stamps), cachet::EncodeError);  // stamped once
  std::string cut = stamped;
  cut.resize(cachet::envelope::header_size + 2);  // the section's length cut short
  CHECK_THROWS_AS(cachet::envelope::decode(cut), cachet::DecodeError);
  CHECK_THROWS_AS(cachet::envelope::stamps_of(std::string_view("\x05\x00" "ab", 4)), cachet::DecodeError);

  // Bounded: more stamps than max_stamps are refused when written and corrupt when read.
  const std::vector<TagStamp> many(cachet::envelope::max_stamps + 1, TagStamp{"t", 1});
  CHECK_THROWS_AS(cachet::envelope::stamp(plain, many), cachet::EncodeError);
  std::string section;
  for (std::size_t i = 0; i < many.size(); ++i) section.append("\x01\x00" "t" "\x01\x00\x00\x00\x00\x00\x00\x00", 11);
  CHECK_THROWS_AS(cachet::envelope::stamps_of(section), cachet::DecodeError);
  section.resize(section.size() - 11);
  CHECK(cachet::envelope::stamps_of(section).size() == cachet::envelope::max_stamps);
}

TEST_CASE("tags on Redis Cluster: the version counters", "[cluster]") {
  SECTION("a missing counter makes its entries misses, and the plain format cannot carry tags") {
    cachet::Pool& pool = fresh_pool();
    Cache cache(cachet::RedisStore(pool), options("product"));
    cache.set("x", "1", {"gone"});
    CHECK(cache.get("x") == "1");
    cachet::RedisStore(pool).del(cache.keys().tag_version("gone"));  // evicted, say
    CHECK(cache.get("x") == std::nullopt);

    cachet::CacheOptions plain = options("plain");
    plain.format = cachet::Format::plain;
    Cache readable(cachet::RedisStore(pool), plain);
    CHECK_THROWS_AS(readable.set("x", "1", {"t"}), cachet::ConfigError);
    CHECK_THROWS_AS(readable.tag_loaded_values([](const std::string&) { return std::vector<std::string>{}; }),
                    cachet::ConfigError);
  }

  SECTION("DependencyMap and invalidate_after_write bump versioned tags, apart from the script") {
    cachet::Pool& pool = fresh_pool();
    Cache cache(cachet::RedisStore(pool), entity_options("product"));
    cache.set("p1", "v1", {"category:1"});
    cache.set("p2", "v2", {"category:2"});
    cachet::Tags tags(pool, cachet::KeyBuilder("shop"));
    cachet::DependencyMap deps(tags);
    deps.on("category", [](std::string_view id) { return cachet::Targets{.tags = {"category:" + std::string(id)}}; });
    CHECK(deps.invalidate_for("category", "1").tags == 1);
    CHECK(cache.get("p1") == std::nullopt);
    CHECK(cache.get("p2") == "v2");

    auto products = cachet::write_through(cache, [](std::string_view, const std::string&) {});
    products.invalidate_after_write([](std::string_view, const std::string&) { return cachet::Targets{.tags = {"category:2"}}; });
    CHECK(products.put("p3", "v3") == cachet::WriteOutcome::cached);
    CHECK(cache.get("p2") == std::nullopt);
    CHECK(cache.get("p3") == "v3");
  }

  SECTION("WriteThrough and Warm stamp tagged values: invalidate_tags reaches them") {
    cachet::Pool& pool = fresh_pool();
    Cache cache(cachet::RedisStore(pool), entity_options("product"));
    cache.tag_loaded_values([](const std::string& v) { return std::vector<std::string>{"t:" + v}; });
    auto products = cachet::write_through(cache, [](std::string_view, const std::string&) {});
    CHECK(products.put("a", "a") == cachet::WriteOutcome::cached);
    CHECK(cache.get("a") == "a");
    const std::vector<std::string_view> ids{"b", "c"};
    const cachet::WarmResult r = cachet::warm(cache, ids, [](std::span<const std::string_view> missing) {
      std::vector<std::optional<std::string>> out;
      for (auto id : missing) out.emplace_back(std::string(id));
      return out;
    });
    CHECK(r.progress.failed == 0);
    CHECK(cache.get("b") == "b");
    cache.invalidate_tags({"t:a", "t:b"});
    CHECK(cache.get("a") == std::nullopt);
    CHECK(cache.get("b") == std::nullopt);
    CHECK(cache.get("c") == "c");
    CHECK(cache.metrics().value(cachet::Event::cache_write_error) == 0);
  }

  SECTION("a keys-across-slots invalidation is a usage error, never a breaker failure") {
    cachet::Pool& pool = fresh_pool();
    cachet::CacheOptions o = entity_options("product");
    o.breaker.failure_threshold = 2;
    Cache cache(cachet::RedisStore(pool), o);
    auto products = cachet::write_through(cache, [](std::string_view, const std::string&) {});
    products.invalidate_after_write([&](std::string_view, const std::string&) {
      return cachet::Targets{.keys = {cache.key("x"), cache.key("y"), cache.key("z")}};
    });
    for (int i = 0; i < 4; ++i) products.put("p", "v");  // CrossSlotError each time
    CHECK(cache.breaker().state() == cachet::BreakerState::closed);
  }

  SECTION("an evicted counter or epoch, bumped again, never returns to a version already stamped") {
    cachet::Pool& pool = fresh_pool();
    cachet::RedisStore store(pool);
    Cache cache(store, options("product"));
    cache.set("x", "old", {"t"});
    store.del(cache.keys().tag_version("t"));  // evicted
    cache.invalidate_tags({"t"});
    cache.set("y", "stamped after", {"t"});
    store.del(cache.keys().tag_version("t"));  // evicted again
    cache.invalidate_tags({"t"});
    CHECK(cache.get("y") == std::nullopt);
    CHECK(store.get(cache.keys().tag_version("t")) != "1");

    // A load that read the epoch, then saw it evicted and an invalidation recreate it.
    cache.tag_loaded_values([](const std::string&) { return std::vector<std::string>{"all"}; });
    store.del(cache.keys().tag_epoch());  // evicted: recreated by the next invalidation
    cache.invalidate_tags({"all"});
    const std::string epoch = store.get(cache.keys().tag_epoch()).value_or("");
    CHECK(cache.get_or_load("z", [&](std::string_view) {
      store.del(cache.keys().tag_epoch());
      cache.invalidate_tags({"all"});  // after the database read
      return std::string("read before");
    }) == "read before");
    CHECK(store.get(cache.keys().tag_epoch()) != epoch);
    CHECK(cache.get("z") == std::nullopt);
    CHECK(cache.metrics().value(cachet::Event::stale_write_refused) == 1);
  }

  SECTION("an empty tag list bumps nothing, and a moved epoch refuses only a batch's tagged writes") {
    cachet::Pool& pool = fresh_pool();
    cachet::RedisStore store(pool);
    Cache cache(store, options("product"));
    cache.invalidate_tags(std::vector<std::string>{});
    CHECK(store.get(cache.keys().tag_epoch()) == std::nullopt);
    cache.tag_loaded_values([](const std::string& v) {
      return v == "tagged" ? std::vector<std::string>{"t"} : std::vector<std::string>{};
    });
    int loads = 0;
    const auto batch = [&](std::span<const std::string_view> missing) {
      std::vector<std::optional<std::string>> out;
      for (auto id : missing) out.emplace_back(std::string(id)), ++loads;
      if (loads <= 2) cache.invalidate_tags({"other"});  // during the first load
      return out;
    };
    const std::vector<std::string_view> ids{"tagged", "plain"};
    CHECK(cache.get_many(ids, batch) == std::vector<std::optional<std::string>>{"tagged", "plain"});
    CHECK(cache.metrics().value(cachet::Event::stale_write_refused) == 1);
    CHECK(cache.get("plain") == "plain");
    CHECK(cache.get("tagged") == std::nullopt);
  }

  SECTION("tags of any length are stamped in their key form") {
    cachet::Pool& pool = fresh_pool();
    Cache cache(cachet::RedisStore(pool), options("product"));
    const std::string long_tag(70'000, 'x');
    cache.tag_loaded_values([&](const std::string&) { return std::vector<std::string>{long_tag}; });
    int loads = 0;
    check_loaded_once(cache, counting_loader(loads), loads);
    CHECK(cache.breaker().state() == cachet::BreakerState::closed);
    cache.invalidate_tags(std::vector<std::string>{long_tag});
    CHECK(cache.get("a") == std::nullopt);
  }

  SECTION("the stamp check runs under the breaker and throws with throw_redis_errors") {
    cachet::Pool& shared = fresh_pool();
    cachet::Pool pool([] {
      cachet::ConnectionOptions o = cluster().client_options();
      o.command_timeout = 300ms;
      return o;
    }());
    cachet::CacheOptions o = options("product");
    o.throw_redis_errors = true;
    Cache cache(cachet::RedisStore(pool), o);
    const std::string tag = tag_off(pool, cache.keys(), cache.key("x"), "t");
    cache.set("x", "1", {std::string_view(tag)});
    CHECK(cache.get("x") == "1");
    // The counter's master stops answering (for 1 s); the value's still does.
    pool.run(cache.keys().tag_version(tag), [](cachet::Connection& c) { c.command({"CLIENT", "PAUSE", "1000", "ALL"}); });
    CHECK_THROWS_AS(cache.get("x"), cachet::Error);
    CHECK(cache.metrics().value(cachet::Event::redis_error) == 1);
    shared.for_each_master([](cachet::Connection& c) { c.command({"PING"}); });  // waits out the pause
  }
}
