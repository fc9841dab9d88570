#pragma once
// What the read-path suites share: the timed loops of a hit and of get_many(100)
// over any cache (skipped with an error if one loaded), the ids "0".."n-1", a
// batch loader of their items, and get_many's raw baseline: one MGET of the
// plain JSON values and the same parse of each into its slot.

#include "bench_fixture.hpp"
#include "raw_context.hpp"

#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cachet::bench {

inline std::vector<std::string> ids(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(std::to_string(i));
  return out;
}

inline std::vector<std::optional<Item>> load_batch(std::span<const std::string_view> missing) {
  std::vector<std::optional<Item>> out;
  for (auto id : missing) out.emplace_back(item(std::stoll(std::string(id))));
  return out;
}

// get_or_load("1") per iteration, every one a hit.
template <class Cache>
void hit_loop(benchmark::State& state, Cache& cache) {
  auto load = [](std::string_view) { return item(1); };
  cache.get_or_load("1", load);
  const auto loads = cache.metrics().value(Event::load);  // shared by caches with these labels
  for (auto _ : state) {
    Item v = cache.get_or_load("1", load);
    benchmark::DoNotOptimize(v);
  }
  if (cache.metrics().value(Event::load) != loads) state.SkipWithError("a hit loaded");
}

// get_many of the ids "0".."99" per iteration, every one a hit.
template <class Cache>
void get_many_100_loop(benchmark::State& state, Cache& cache) {
  const auto keys = ids(100);
  const std::vector<std::string_view> views(keys.begin(), keys.end());
  cache.get_many(views, load_batch);
  const auto loads = cache.metrics().value(Event::load);
  for (auto _ : state) benchmark::DoNotOptimize(cache.get_many(views, load_batch));
  if (cache.metrics().value(Event::load) != loads) state.SkipWithError("a get_many loaded");
}

// The plain JSON values of the ids "0".."99", written through `pool` (a cluster
// pool keys them bench:plain:{i}); returns their keys.
inline std::vector<std::string> write_plain_100(Pool& pool) {
  CacheOptions plain = cache_options("plain");
  plain.format = Format::plain;
  std::vector<std::string> keys = ids(100);
  const std::vector<std::string_view> views(keys.begin(), keys.end());
  CacheAside<Item>(RedisStore(pool), plain).get_many(views, load_batch);
  const KeyBuilder layout(plain.ns, {.hash_tag = pool.cluster() ? HashTag::entity : HashTag::none});  // the cache's
  for (auto& k : keys) k = layout.value(plain.name, k);
  return keys;
}

// A value the raw baselines read; false (the benchmark skips) for anything but a string.
inline bool parse_into(std::optional<Item>& slot, const redisReply* r) {
  if (r->type != REDIS_REPLY_STRING) return false;
  slot = nlohmann::json::parse(std::string_view(r->str, r->len)).get<Item>();
  return true;
}

// What get_many of 100 hits cannot avoid: one MGET of the 100 plain JSON values
// (bench:plain:{0..99}, written first through `pool`, on the server at `port`)
// and the same parse of each into its slot, per iteration.
inline void raw_mget_parse_100(benchmark::State& state, Pool& pool, int port) {
  const std::vector<std::string> keys = write_plain_100(pool);
  std::vector<const char*> argv{"MGET"};
  std::vector<size_t> lens{4};
  for (const auto& k : keys) {
    argv.push_back(k.data());
    lens.push_back(k.size());
  }
  RawContext raw(port);
  for (auto _ : state) {
    auto* r = static_cast<redisReply*>(redisCommandArgv(raw.c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    std::vector<std::optional<Item>> out(r->elements);
    bool parsed = true;
    for (std::size_t i = 0; i < r->elements && parsed; ++i) parsed = parse_into(out[i], r->element[i]);
    benchmark::DoNotOptimize(out);
    freeReplyObject(r);
    if (!parsed) return state.SkipWithError("MGET answered a non-string");
  }
}

// The same work on a cluster with nothing but hiredis: a GET per key (an MGET
// cannot span slots), one pipeline per master holding any of the 100 keys (from
// `pool`'s slot map), every pipeline sent before any reply is read, and the same
// parse into the caller's order. The floor of get_many(100) on a cluster.
inline void raw_cluster_get_parse_100(benchmark::State& state, Pool& pool) {
  const std::vector<std::string> keys = write_plain_100(pool);
  struct Node {
    std::unique_ptr<RawContext> raw;
    std::vector<std::size_t> positions;  // of its keys, in the caller's order
  };
  std::map<std::string, Node> nodes;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const std::string at = pool.cluster_master_of(keys[i]);  // "127.0.0.1:<port>"
    Node& n = nodes[at];
    if (!n.raw) n.raw = std::make_unique<RawContext>(std::stoi(at.substr(at.rfind(':') + 1)));
    n.positions.push_back(i);
  }
  for (auto _ : state) {
    for (auto& [at, n] : nodes)
      for (std::size_t i : n.positions) {
        const char* argv[] = {"GET", keys[i].data()};
        const size_t lens[] = {3, keys[i].size()};
        redisAppendCommandArgv(n.raw->c, 2, argv, lens);
      }
    for (auto& [at, n] : nodes)  // hiredis sends a context's buffer on its first read: send them all now
      for (int done = 0; !done;)
        if (redisBufferWrite(n.raw->c, &done) != REDIS_OK) return state.SkipWithError("raw cluster write failed");
    std::vector<std::optional<Item>> out(keys.size());
    for (auto& [at, n] : nodes)
      for (std::size_t i : n.positions) {
        void* r = nullptr;
        if (redisGetReply(n.raw->c, &r) != REDIS_OK) return state.SkipWithError("raw cluster GET failed");
        const bool parsed = parse_into(out[i], static_cast<redisReply*>(r));
        freeReplyObject(r);
        if (!parsed) return state.SkipWithError("a raw cluster GET answered a non-string");
      }
    benchmark::DoNotOptimize(out);
  }
}

}  // namespace cachet::bench
