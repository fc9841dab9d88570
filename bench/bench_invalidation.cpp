// What invalidation costs, next to raw hiredis doing the same deletions in the
// same run:
// - a tag of 10k keys: Tags::invalidate (one script: SMEMBERS + UNLINK inside
//   Redis) next to raw hiredis SMEMBERS + pipelined UNLINK (the racy two-step it
//   replaces), and next to a pipelined UNLINK of the same 10k keys by a client
//   that already knows them (the floor: no set to read);
// - a name of 100k keys: NamespaceVersions::bump (one INCR) next to
//   invalidate_matching (SCAN + UNLINK in batches of 1000), itself next to a raw
//   hiredis SCAN + UNLINK loop.
// Keys are recreated server-side, untimed, before each iteration. Pinned:
//   taskset -c 0 build/bench/bench/bench_invalidation --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true

#include "ratio_reporter.hpp"

#include <cachet/invalidation/namespace_version.hpp>
#include <cachet/invalidation/pattern_invalidation.hpp>
#include <cachet/invalidation/tags.hpp>
#include <cachet/testing/redis_server.hpp>

#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr int tagged_keys = 10'000;
constexpr int scanned_keys = 100'000;

struct Fixture {
  cachet::testing::RedisServer server{{.tcp = true}};
  cachet::Pool pool{server.tcp_connection_options(), {.size = 1}};
  cachet::Connection admin = server.connect();
};
Fixture& fixture() {
  static Fixture f;
  return f;
}

// 10k values bench:v:{i}, all in the set of tag "t" (bench:tag:t), made inside Redis.
void make_tagged_keys() {
  static const cachet::Script fill(R"lua(
for i = 1, tonumber(ARGV[1]) do
  local k = 'bench:v:' .. i
  redis.call('SET', k, 'value', 'PX', 3600000)
  redis.call('SADD', KEYS[1], k)
end
return 1)lua");
  fill.run(fixture().admin, {"bench:tag:t"}, {tagged_keys});
}

void make_scanned_keys() {
  fixture().admin.command({"FLUSHALL"});
  fixture().admin.command({"DEBUG", "POPULATE", scanned_keys, "bench:product"});
}

redisContext* raw_connect() {
  redisContext* c = redisConnect("127.0.0.1", fixture().server.port());
  if (!c || c->err) throw std::runtime_error("raw hiredis connect failed");
  return c;
}

void raw_reply(redisContext* c) {
  void* r = nullptr;
  if (redisGetReply(c, &r) != REDIS_OK) throw std::runtime_error("raw hiredis read failed");
  freeReplyObject(r);
}

// UNLINK of a list of keys in batches of 1000, pipelined: one round trip.
void raw_unlink(redisContext* c, const std::vector<std::string>& keys) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  std::size_t batches = 0;
  for (std::size_t i = 0; i < keys.size(); i += 1000, ++batches) {
    argv.assign({"UNLINK"});
    lens.assign({6});
    for (std::size_t j = i; j < std::min(keys.size(), i + 1000); ++j) {
      argv.push_back(keys[j].data());
      lens.push_back(keys[j].size());
    }
    redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
  }
  for (std::size_t b = 0; b < batches; ++b) raw_reply(c);
}

void raw_unlink_10k_known_keys(benchmark::State& state) {
  redisContext* c = raw_connect();
  std::vector<std::string> keys;
  for (int i = 1; i <= tagged_keys; ++i) keys.push_back("bench:v:" + std::to_string(i));
  for (auto _ : state) {
    state.PauseTiming();
    make_tagged_keys();
    state.ResumeTiming();
    raw_unlink(c, keys);
  }
  redisFree(c);
}

// What a client does without the script (the articles' racy two-step): SMEMBERS,
// then the pipelined UNLINKs of what it read, then the set.
void raw_smembers_unlink_10k(benchmark::State& state) {
  redisContext* c = raw_connect();
  for (auto _ : state) {
    state.PauseTiming();
    make_tagged_keys();
    state.ResumeTiming();
    const char* smembers[] = {"SMEMBERS", "bench:tag:t"};
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, 2, smembers, nullptr));
    std::vector<std::string> keys;
    keys.reserve(r->elements + 1);
    for (size_t i = 0; i < r->elements; ++i) keys.emplace_back(r->element[i]->str, r->element[i]->len);
    freeReplyObject(r);
    keys.emplace_back("bench:tag:t");
    raw_unlink(c, keys);
  }
  redisFree(c);
}

void tags_invalidate_10k(benchmark::State& state) {
  cachet::Tags tags(fixture().pool, cachet::KeyBuilder("bench"));
  for (auto _ : state) {
    state.PauseTiming();
    make_tagged_keys();
    state.ResumeTiming();
    if (tags.invalidate({"t"}) != tagged_keys) state.SkipWithError("not every tagged key was removed");
  }
}

void version_bump(benchmark::State& state) {
  cachet::NamespaceVersions versions(fixture().pool, cachet::KeyBuilder("bench"));
  for (auto _ : state) benchmark::DoNotOptimize(versions.bump("product"));
}

void raw_scan_unlink_100k(benchmark::State& state) {
  redisContext* c = raw_connect();
  for (auto _ : state) {
    state.PauseTiming();
    make_scanned_keys();
    state.ResumeTiming();
    std::string cursor = "0";
    do {
      const char* argv[] = {"SCAN", cursor.c_str(), "MATCH", "bench:product:*", "COUNT", "1000"};
      auto* r = static_cast<redisReply*>(redisCommandArgv(c, 6, argv, nullptr));
      cursor.assign(r->element[0]->str, r->element[0]->len);
      const redisReply* keys = r->element[1];
      if (keys->elements != 0) {
        std::vector<const char*> del{"UNLINK"};
        std::vector<size_t> lens{6};
        for (size_t i = 0; i < keys->elements; ++i) {
          del.push_back(keys->element[i]->str);
          lens.push_back(keys->element[i]->len);
        }
        freeReplyObject(redisCommandArgv(c, static_cast<int>(del.size()), del.data(), lens.data()));
      }
      freeReplyObject(r);
    } while (cursor != "0");
  }
  redisFree(c);
}

void invalidate_matching_100k(benchmark::State& state) {
  const std::string pattern = cachet::KeyBuilder("bench").pattern("product");
  for (auto _ : state) {
    state.PauseTiming();
    make_scanned_keys();
    state.ResumeTiming();
    if (cachet::invalidate_matching(fixture().pool, pattern) != scanned_keys) state.SkipWithError("keys left behind");
  }
}

}  // namespace

BENCHMARK(raw_unlink_10k_known_keys)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(raw_smembers_unlink_10k)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(tags_invalidate_10k)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(version_bump)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(raw_scan_unlink_100k)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(invalidate_matching_100k)->Unit(benchmark::kMicrosecond)->UseRealTime();

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  cachet::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios({{"tags_invalidate_10k", "raw_smembers_unlink_10k"},
                         {"tags_invalidate_10k", "raw_unlink_10k_known_keys"},
                         {"invalidate_matching_100k", "raw_scan_unlink_100k"},
                         {"invalidate_matching_100k", "version_bump"}});
  benchmark::Shutdown();
}
