#pragma once
// What the read-path suites share: the timed loops of a hit and of get_many(100)
// over any cache (skipped with an error if one loaded), the ids "0".."n-1", a
// batch loader of their items, and get_many's raw baseline: one MGET of the
// plain JSON values and the same parse of each into its slot.

#include "bench_fixture.hpp"
#include "raw_context.hpp"

#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

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

// What get_many of 100 hits cannot avoid: one MGET of the 100 plain JSON values
// (bench:plain:{0..99}, written first through `pool`, on the server at `port`)
// and the same parse of each into its slot, per iteration.
inline void raw_mget_parse_100(benchmark::State& state, Pool& pool, int port) {
  CacheOptions plain = cache_options("plain");
  plain.format = Format::plain;
  std::vector<std::string> keys = ids(100);
  const std::vector<std::string_view> views(keys.begin(), keys.end());
  CacheAside<Item>(RedisStore(pool), plain).get_many(views, load_batch);
  for (auto& k : keys) k = "bench:plain:" + k;
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
    for (std::size_t i = 0; i < r->elements; ++i)
      out[i] = nlohmann::json::parse(std::string_view(r->element[i]->str, r->element[i]->len)).get<Item>();
    benchmark::DoNotOptimize(out);
    freeReplyObject(r);
  }
}

}  // namespace cachet::bench
