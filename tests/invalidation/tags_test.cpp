#include <cachet/codec/string.hpp>
#include <cachet/detail/hash_slot.hpp>
#include <cachet/invalidation/tags.hpp>
#include <cachet/policy/cache_aside.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::test::Client;
using cachet::test::on_cluster;

namespace {

// Over a test::Client (the server, or a cluster) or a Connection.
template <class C>
long long scard(C& conn, const std::string& set) { return conn.command({"SCARD", set}).as_integer(); }
template <class C>
long long pttl(C& conn, const std::string& key) { return conn.command({"PTTL", key}).as_integer(); }
template <class C>
bool exists(C& conn, const std::string& key) { return conn.command({"EXISTS", key}).as_integer() == 1; }

// Namespace `ns`'s keys. On a cluster under HashTag::ns, so that values and tag
// sets share one slot and Tags' one-server scripts run there (docs/cluster.md):
// raw bytes can be tagged only so.
cachet::KeyBuilder keys_of(std::string ns) {
  return cachet::KeyBuilder(std::move(ns), {.hash_tag = on_cluster() ? cachet::HashTag::ns : cachet::HashTag::none});
}

// What the race does to the cache: tag an id, invalidate tags, and whether an id is still served.
struct RaceOps {
  std::function<void(const std::string& id, const std::vector<std::string>& tags)> tag;
  std::function<void(const std::vector<std::string>& tags)> invalidate;
  std::function<bool(const std::string& id)> served;
};

// Tags' own sets: set_tagged raw bytes at "race:<id>", invalidate in one script, a
// key served while it exists. `invalidate` replaces the script (the naive test).
RaceOps tag_sets(cachet::Tags& tags, std::function<void(const std::vector<std::string>&)> invalidate = {}) {
  if (!invalidate) invalidate = [&tags](const std::vector<std::string>& names) { tags.invalidate(names); };
  return {[&tags](const std::string& id, const std::vector<std::string>& names) {
            tags.set_tagged("race:" + id, "value", 60s, names);
          },
          std::move(invalidate),
          [&tags](const std::string& id) { return exists(*tags.pool().acquire(), "race:" + id); }};
}

using StringCache = cachet::CacheAside<std::string, cachet::StringCodec>;

// A cache's tags: on a cluster, version counters stamped in the entries; an entry
// is served while get() returns it.
RaceOps cache_tags(StringCache& cache) {
  return {[&cache](const std::string& id, const std::vector<std::string>& names) { cache.set(id, "value", names); },
          [&cache](const std::vector<std::string>& names) { cache.invalidate_tags(names); },
          [&cache](const std::string& id) { return cache.get(id).has_value(); }};
}

// The race of the issue: `taggers` threads tag keys while `invalidators` threads
// invalidate the same tags. Each key belongs to one tagging thread, so its
// taggings are sequential. A process-wide sequence orders what the threads saw:
// a tagging takes its number after its write returned, an invalidation before
// it starts, so tagged_at < invalidated_at means the invalidation began after the
// tagging had run (the fetch_adds synchronise the threads). The check runs when
// the threads stop, and again after every tag is invalidated once more, when
// each key's last tagging precedes its tags' last invalidation and no key may be
// served (on one server: a key missing from a set it joined).
struct TagRace {
  static constexpr int taggers = 8, invalidators = 8, tag_count = 8, keys_per_tagger = 256;

  std::atomic<std::uint64_t> sequence{0};
  std::vector<std::vector<std::uint64_t>> tagged_at =  // [tagger][key]: sequence of its last tagging
      std::vector<std::vector<std::uint64_t>>(taggers, std::vector<std::uint64_t>(keys_per_tagger, 0));
  std::vector<std::uint64_t> invalidated_at = std::vector<std::uint64_t>(tag_count, 0);  // last start, per tag
  std::atomic<long> taggings{0}, invalidations{0};

  static std::string tag(int t) { return "t" + std::to_string(t); }
  static std::string id(int tagger, int k) { return std::to_string(tagger) + ":" + std::to_string(k); }
  static std::vector<int> tags_of(int tagger, int k) {
    const int a = k % tag_count, b = (k / tag_count + tagger) % tag_count;
    return a == b ? std::vector<int>{a} : std::vector<int>{a, b};
  }

  // Runs the race for `duration`, then the final invalidation of every tag; returns
  // the ids served although a tag of theirs was invalidated after their last
  // tagging, found before the final invalidation or after it.
  std::vector<std::string> run(const RaceOps& ops, std::chrono::milliseconds duration) {
    std::atomic<bool> stop{false};
    std::mutex invalidated_mutex;
    auto record_start = [&](const std::vector<int>& ts) {
      const std::uint64_t start = ++sequence;
      std::lock_guard lock(invalidated_mutex);
      for (int t : ts) invalidated_at[t] = std::max(invalidated_at[t], start);
    };
    auto invalidate_tags = [&](const std::vector<int>& ts) {
      std::vector<std::string> names;
      for (int t : ts) names.push_back(tag(t));
      record_start(ts);
      ops.invalidate(names);
      ++invalidations;
    };
    std::vector<cachet::test::Thread> threads;
    for (int w = 0; w < taggers; ++w)
      threads.emplace_back([&, w] {
        for (int k = 0; !stop; k = (k + 1) % keys_per_tagger) {
          std::vector<std::string> names;
          for (int t : tags_of(w, k)) names.push_back(tag(t));
          ops.tag(id(w, k), names);
          tagged_at[w][k] = ++sequence;
          ++taggings;
        }
      });
    for (int w = 0; w < invalidators; ++w)
      threads.emplace_back([&, w] {
        for (int i = w; !stop; ++i) {
          if (i % 4 == 0) invalidate_tags({i % tag_count, (i + 3) % tag_count});  // several tags in one call
          else invalidate_tags({i % tag_count});
        }
      });
    std::this_thread::sleep_for(duration);
    stop = true;
    for (auto& t : threads) t.join();

    std::vector<std::string> survivors;
    auto check = [&] {
      for (int w = 0; w < taggers; ++w)
        for (int k = 0; k < keys_per_tagger; ++k) {
          bool outdated = false;
          for (int t : tags_of(w, k)) outdated = outdated || tagged_at[w][k] < invalidated_at[t];
          if (outdated && ops.served(id(w, k))) survivors.push_back(id(w, k));
        }
    };
    check();
    for (int t = 0; t < tag_count; ++t) invalidate_tags({t});
    check();
    return survivors;
  }
};

}  // namespace

TEST_CASE("a tagged value is stored with its TTL and in each tag set, and invalidating a tag removes it") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const cachet::KeyBuilder keys = keys_of("shop");
  const std::string p1 = keys.value("product", "1"), p2 = keys.value("product", "2"), p3 = keys.value("product", "3");
  cachet::Tags tags(pool, keys);
  tags.set_tagged(p1, "one", 60s, {"category:9", "brand 4"});
  tags.set_tagged(p2, "two", 60s, std::vector<std::string>{"category:9"});
  tags.set_tagged(p3, "three", 60s, {"brand 4"});

  CHECK(conn.command({"GET", p1}).as_string() == "one");
  CHECK(pttl(conn, p1) > 59'000);
  CHECK(tags.tag_key("category:9") == (on_cluster() ? "{shop}" : "shop") + std::string(":tag:category%3A9"));
  CHECK(scard(conn, tags.tag_key("category:9")) == 2);
  CHECK(scard(conn, tags.tag_key("brand 4")) == 2);

  CHECK(tags.invalidate({"category:9"}) == 2);
  CHECK_FALSE(exists(conn, p1));
  CHECK_FALSE(exists(conn, p2));
  CHECK(exists(conn, p3));
  CHECK_FALSE(exists(conn, tags.tag_key("category:9")));
  CHECK(tags.invalidate({"category:9"}) == 0);  // nothing left
}

TEST_CASE("several tags are invalidated in one call, a value in two of them counted once") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const cachet::KeyBuilder keys = keys_of("ns");
  cachet::Tags tags(pool, keys);
  tags.set_tagged(keys.value("v", "1"), "x", 60s, {"a", "b"});
  tags.set_tagged(keys.value("v", "2"), "x", 60s, {"b"});
  tags.set_tagged(keys.value("v", "3"), "x", 60s, {"c"});
  tags.set_tagged(keys.value("v", "4"), "x", 60s, {"d"});
  conn.command({"CONFIG", "RESETSTAT"});
  CHECK(tags.invalidate(std::vector<std::string>{"a", "b", "c"}) == 3);
  CHECK(cachet::test::command_calls(conn, "evalsha") == 1);  // one script for all three
  CHECK(exists(conn, keys.value("v", "4")));
  CHECK(conn.key_count() == 3);  // v:4, its tag set and the namespace's tag epoch
}

// The epoch a tagged load reads before its loader and its write checks
// (cache_aside_invalidation_test runs that race): bumped in the invalidation's
// own script, created at a random start (never 0 or 1) when missing, in the
// namespace's slot under HashTag::ns.
TEST_CASE("an invalidation bumps the namespace's tag epoch in its script, from a random start") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const cachet::KeyBuilder keys = keys_of("ns");
  cachet::Tags tags(pool, keys);
  const std::string epoch = keys.tag_epoch();
  CHECK(epoch == (on_cluster() ? "{ns}" : "ns") + std::string(":tagepoch"));
  if (on_cluster()) CHECK(cachet::detail::hash_slot(epoch) == cachet::detail::hash_slot(tags.tag_key("a")));
  CHECK(tags.invalidate(std::vector<std::string>{}) == 0);  // no tags: nothing bumped
  CHECK_FALSE(exists(conn, epoch));
  tags.set_tagged(keys.value("v", "1"), "x", 60s, {"a"});
  conn.command({"CONFIG", "RESETSTAT"});
  CHECK(tags.invalidate({"a"}) == 1);
  CHECK(cachet::test::command_calls(conn, "evalsha") == 1);  // the epoch in the same script
  const long long first = std::stoll(conn.command({"GET", epoch}).as_string());
  CHECK(first > 2);  // a random start >= 2, then INCR
  CHECK(tags.invalidate({"b"}) == 0);
  CHECK(std::stoll(conn.command({"GET", epoch}).as_string()) == first + 1);
}

TEST_CASE("an invalidation of a large tag removes every member (UNLINK in chunks)") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const cachet::KeyBuilder keys = keys_of("ns");
  cachet::Tags tags(pool, keys);
  std::vector<std::string> values;
  for (int i = 0; i < 20'000; ++i) values.push_back(keys.value("big", std::to_string(i)));
  std::vector<cachet::TaggedEntry> entries;
  for (const auto& k : values) entries.push_back({k, "v", 60s, {"big"}});
  tags.set_tagged_many(entries);  // one pipeline
  REQUIRE(scard(conn, tags.tag_key("big")) == 20'000);
  CHECK(tags.invalidate({"big"}) == 20'000);  // more than Lua's unpack() limit
  CHECK(conn.key_count() == 1);  // the namespace's tag epoch
}

TEST_CASE("a tag set lives at least as long as its longest-lived member, and is never shortened") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const cachet::KeyBuilder keys = keys_of("ns");
  cachet::Tags tags(pool, keys);
  const std::string set = tags.tag_key("t");
  tags.set_tagged(keys.value("v", "1"), "x", 60s, {"t"});
  CHECK(pttl(conn, set) > 59'000);
  tags.set_tagged(keys.value("v", "2"), "x", 1s, {"t"});
  CHECK(pttl(conn, set) > 59'000);  // a shorter member does not shorten it
  tags.set_tagged(keys.value("v", "3"), "x", 120s, {"t"});
  CHECK(pttl(conn, set) > 119'000);
  CHECK(pttl(conn, set) <= 120'000);
  tags.set_tagged(keys.value("v", "4"), "x", 50ms, {"brief"});
  std::this_thread::sleep_for(300ms);
  CHECK_FALSE(exists(conn, tags.tag_key("brief")));  // and no longer: gone with its last member
}

TEST_CASE("a tagged value needs a positive TTL") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const cachet::KeyBuilder keys = keys_of("ns");
  cachet::Tags tags(pool, keys);
  CHECK_THROWS_AS(tags.set_tagged(keys.value("v", "1"), "x", 0ms, {"t"}), std::invalid_argument);
  CHECK(server.connect().key_count() == 0);
}

TEST_CASE("prune sweeps a tag set in bounded steps and removes only members whose keys are gone") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const cachet::KeyBuilder keys = keys_of("ns");
  cachet::Tags tags(pool, keys, {.prune_sample = 0});
  for (int i = 0; i < 1000; ++i) tags.set_tagged(keys.value("v", std::to_string(i)), "x", 60s, {"t"});
  for (int i = 0; i < 1000; i += 5) conn.command({"DEL", keys.value("v", std::to_string(i))});  // 200 gone

  cachet::PruneResult step = tags.prune("t", 100);
  CHECK(step.examined >= 100);
  CHECK(step.examined < 1000);  // bounded: a budget of 100 does not sweep everything
  CHECK_FALSE(step.done());
  std::size_t removed = step.removed, steps = 1;
  while (!step.done()) {
    step = tags.prune("t", 100, step.cursor);
    removed += step.removed;
    ++steps;
  }
  CHECK(steps > 5);
  CHECK(removed == 200);
  CHECK(scard(conn, tags.tag_key("t")) == 800);
  CHECK(tags.invalidate({"t"}) == 800);
}

TEST_CASE("tag sets stay bounded over a run where keys keep expiring") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const cachet::KeyBuilder keys = keys_of("ns");
  constexpr int writes = 20'000;
  auto run = [&](std::size_t sample, const std::string& tag) {
    cachet::Tags tags(pool, keys, {.prune_sample = sample});
    // A long-lived member keeps the set alive: a pause of 5 ms would otherwise let it expire and start afresh.
    tags.set_tagged(keys.value("v", tag + ":anchor"), "x", 60s, {tag});
    long long largest = 0;
    for (int i = 0; i < writes; ++i) {
      tags.set_tagged(keys.value("v", tag + ":" + std::to_string(i)), "x", 5ms, {tag});  // expires almost at once
      if (i % 1000 == 999) largest = std::max(largest, scard(conn, tags.tag_key(tag)));
    }
    return largest;
  };
  const long long pruned = run(3, "pruned");
  const long long unpruned = run(0, "unpruned");  // the control: without pruning the set keeps every key
  INFO("largest tag set with pruning " << pruned << ", without " << unpruned);
  CHECK(unpruned > writes / 2);
  CHECK(pruned < 1000);  // about 1.5x the keys alive at once (a few hundred at most)
  // pruned: the dead only
  CHECK(conn.command({"SISMEMBER", keys.tag("pruned"), keys.value("v", "pruned:anchor")}).as_integer() == 1);
}

TEST_CASE("set_tagged_many tags each entry, and survives a SCRIPT FLUSH") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const cachet::KeyBuilder keys = keys_of("ns");
  cachet::Tags tags(pool, keys);
  tags.set_tagged(keys.value("v", "0"), "x", 60s, {"a"});  // the script's SHA is now known
  conn.command({"SCRIPT", "FLUSH"});
  const std::string v1 = keys.value("v", "1"), v2 = keys.value("v", "2"), v3 = keys.value("v", "3");
  const std::vector<cachet::TaggedEntry> entries{{v1, "one", 60s, {"a"}}, {v2, "two", 60s, {"a", "b"}},
                                                 {v3, "three", 60s, {}}};
  tags.set_tagged_many(entries);
  CHECK(conn.command({"GET", v3}).as_string() == "three");
  CHECK(scard(conn, tags.tag_key("a")) == 3);
  CHECK(scard(conn, tags.tag_key("b")) == 1);
  CHECK(tags.invalidate({"a"}) == 3);
  CHECK(exists(conn, v3));
}

// On one server the race runs over Tags' sets; on a cluster over a cache's
// tags, version counters stamped in its entries (docs/cluster.md), for 4 s:
// about 30,000 taggings there, at a third of the CI time.
TEST_CASE("8 threads tagging while 8 threads invalidate the same tags for 10 s (4 s on a cluster): no outdated key survives") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options(), {.size = 16});
  cachet::Tags tags(pool, cachet::KeyBuilder("race"));
  StringCache cache(cachet::RedisStore(pool), {.ns = "race", .name = "v", .ttl = cachet::TtlPolicy({.fresh = 1min})});
  TagRace race;
  const auto survivors = on_cluster() ? race.run(cache_tags(cache), 4s) : race.run(tag_sets(tags), 10s);
  INFO(race.taggings << " taggings, " << race.invalidations << " invalidations");
  // A cluster's taggings read the counters first: under the sanitizers, a tenth.
  const long enough = on_cluster() ? cachet::test::sized(10'000, 1'000) : 10'000;
  CHECK(race.taggings > enough);
  CHECK(race.invalidations > enough);
  CHECK(survivors.empty());
  // The final round left nothing behind but the tag epoch; on a cluster, stale entries are left to expire.
  if (!on_cluster()) CHECK(server.connect().key_count() == 1);
}

// Why invalidation is one script: the articles' invalidateByTag reads the set
// (SMEMBERS), then deletes the members and the set. A key tagged in between is
// not among the members read, but its membership is deleted with the set: the
// key lives on outside every set, and no later invalidation of its tag can find
// it. This test runs that version in the same race and asserts that it DOES
// leave outdated keys behind; then, so that the leak is shown in every run and
// not only when the race's timing falls into the window, it forces the window:
// another client's tagged write lands between the two steps.
// [single-server]: the naive version reads and deletes tag sets of member keys, one server's design.
TEST_CASE("the naive SMEMBERS-then-DEL invalidation leaves outdated keys behind (why tags use one script)",
          "[single-server]") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options(), {.size = 16});
  cachet::Tags tags(pool, cachet::KeyBuilder("race"));
  std::atomic<bool> force_window{false};
  auto naive = [&](const std::vector<std::string>& names) {
    auto conn = tags.pool().acquire();
    for (const auto& name : names) {
      const std::string set = tags.tag_key(name);
      const cachet::Reply members = conn->command({"SMEMBERS", set});
      if (force_window.exchange(false))  // another client's tagged write lands between the two steps
        std::async(std::launch::async, [&] { tags.set_tagged("race:leaked", "v", 60s, std::vector<std::string>{name}); }).get();
      std::vector<std::string_view> unlink{"UNLINK", set};
      for (cachet::ReplyView m : members) unlink.push_back(m.as_string());
      conn->command(unlink);
    }
  };
  TagRace race;
  const auto survivors = race.run(tag_sets(tags, naive), 2s);
  INFO(survivors.size() << " outdated keys of the race survived, e.g. " << (survivors.empty() ? "" : survivors.front()));
  CHECK(race.invalidations > 100);

  force_window = true;
  naive({"solo"});  // "race:leaked" is tagged "solo" in its window
  naive({"solo"});  // and "solo" invalidated again, after that tagging
  CHECK(exists(*pool.acquire(), "race:leaked"));  // yet the key lives on, outside every set
}
