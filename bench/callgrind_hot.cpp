// Client instructions per operation of issue 19's hot paths, for callgrind:
// instrumentation covers only the loop, so (Ir at M - Ir at N) / (M - N) is the
// cost of one operation with set-up cancelled out. Not a CMake target (it needs
// valgrind's header); bench/README.md ("Hot paths") has the build and run lines.
// Operations: map l1 raw_get_parse ca_plain ca_env guarded raw_mget_parse
// gm_plain gm_env gm_cluster raw_pipe pipe_vec pipe_stream; a third argument times the
// loop instead (5 rounds, ns/op).
#include "bench_fixture.hpp"
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/make.hpp>
#include <cachet/redis/pipeline.hpp>
#include <cachet/testing/redis_cluster.hpp>
#include <hiredis/hiredis.h>
#include <valgrind/callgrind.h>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

using cachet::bench::Item;
using cachet::bench::item;

cachet::CacheOptions opts(const char* name, cachet::Format f) {
  auto o = cachet::bench::cache_options(name);
  o.format = f;
  return o;
}

bool timed = false;
template <class F>
void run(int n, F f) {
  f();
  if (timed) {
    for (int r = 0; r < 5; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < n; ++i) f();
      std::printf("%.1f ns/op\n", std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / n);
    }
    return;
  }
  CALLGRIND_START_INSTRUMENTATION;
  for (int i = 0; i < n; ++i) f();
  CALLGRIND_STOP_INSTRUMENTATION;
}

int main(int argc, char** argv) {
  const std::string what = argv[1];
  const int n = std::atoi(argv[2]);
  timed = argc > 3;
  auto& server = cachet::bench::server();
  cachet::Pool pool(server.tcp_connection_options(), {.size = 2});
  std::vector<std::string> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(std::to_string(i));
  const std::vector<std::string_view> views(ids.begin(), ids.end());
  auto batch = [](std::span<const std::string_view> missing) {
    std::vector<std::optional<Item>> out;
    for (auto id : missing) out.emplace_back(item(std::stoll(std::string(id))));
    return out;
  };
  auto load = [](std::string_view) { return item(1); };
  if (what == "map") {
    std::unordered_map<std::string, Item> m;
    std::shared_mutex mu;
    m.emplace("bench:tiered:1", item(1));
    const std::string k = "bench:tiered:1";
    run(n, [&] { std::shared_lock l(mu); Item v = m.find(k)->second; asm volatile("" ::"r"(&v) : "memory"); });
  } else if (what == "l1") {
    cachet::Tracking tracking(server.tcp_connection_options(), {.prefixes = {"bench:"}});
    tracking.wait_live(std::chrono::seconds(5));
    cachet::TieredCache<Item, cachet::JsonCodec<Item>, cachet::NoGuard> c(
        cachet::TieredStore(cachet::ValueStore<Item>({.max_entries = 1024}), cachet::RedisStore(pool), &tracking),
        opts("tiered", cachet::Format::envelope));
    c.set("1", item(1));
    tracking.sync();
    c.get_shared("1");
    run(n, [&] { auto p = c.get_shared("1"); asm volatile("" ::"r"(p.get()) : "memory"); });
  } else if (what == "raw_get_parse" || what == "raw_mget_parse") {
    cachet::CacheAside<Item> c(cachet::RedisStore(pool), opts("plain", cachet::Format::plain));
    c.get_many(views, batch);
    redisContext* rc = redisConnect("127.0.0.1", server.port());
    std::vector<std::string> keys;
    std::vector<const char*> argv{"MGET"};
    std::vector<size_t> lens{4};
    for (auto& id : ids) keys.push_back("bench:plain:" + id);
    for (auto& k : keys) { argv.push_back(k.data()); lens.push_back(k.size()); }
    if (what == "raw_get_parse")
      run(n, [&] {
        const char* a[] = {"GET", keys[1].data()};
        const size_t l[] = {3, keys[1].size()};
        auto* r = static_cast<redisReply*>(redisCommandArgv(rc, 2, a, l));
        Item v = nlohmann::json::parse(std::string_view(r->str, r->len)).get<Item>();
        asm volatile("" ::"r"(&v) : "memory");
        freeReplyObject(r);
      });
    else
      run(n, [&] {
        auto* r = static_cast<redisReply*>(redisCommandArgv(rc, (int)argv.size(), argv.data(), lens.data()));
        std::vector<std::optional<Item>> out(r->elements);
        for (size_t i = 0; i < r->elements; ++i)
          out[i] = nlohmann::json::parse(std::string_view(r->element[i]->str, r->element[i]->len)).get<Item>();
        asm volatile("" ::"r"(out.data()) : "memory");
        freeReplyObject(r);
      });
  } else if (what == "ca_plain" || what == "ca_env") {
    cachet::CacheAside<Item> c(cachet::RedisStore(pool), opts(what == "ca_plain" ? "plain" : "enveloped",
                                                                what == "ca_plain" ? cachet::Format::plain : cachet::Format::envelope));
    run(n, [&] { Item v = c.get_or_load("1", load); asm volatile("" ::"r"(&v) : "memory"); });
  } else if (what == "guarded") {
    auto c = cachet::make_cache<Item>(pool, opts("enveloped", cachet::Format::envelope));
    run(n, [&] { Item v = c.get_or_load("1", load); asm volatile("" ::"r"(&v) : "memory"); });
  } else if (what == "gm_plain" || what == "gm_env") {
    cachet::CacheAside<Item> c(cachet::RedisStore(pool), opts(what == "gm_plain" ? "plain" : "enveloped",
                                                                what == "gm_plain" ? cachet::Format::plain : cachet::Format::envelope));
    run(n, [&] { auto v = c.get_many(views, batch); asm volatile("" ::"r"(v.data()) : "memory"); });
  } else if (what == "gm_cluster") {  // get_many(100) over a 3-master cluster (issue 17)
    cachet::testing::RedisCluster cluster({.replicas_per_master = 0});
    cachet::Pool sharded(cluster.client_options(), {.size = 1});
    cachet::CacheAside<Item> c(cachet::RedisStore(sharded), opts("enveloped", cachet::Format::envelope));
    run(n, [&] { auto v = c.get_many(views, batch); asm volatile("" ::"r"(v.data()) : "memory"); });
  } else if (what == "raw_pipe") {
    redisContext* rc = redisConnect("127.0.0.1", server.port());
    const char* a[] = {"GET", "bench:plain:1"};
    const size_t l[] = {3, 13};
    run(n, [&] {
      for (int k = 0; k < 100; ++k) redisAppendCommandArgv(rc, 2, a, l);
      for (int k = 0; k < 100; ++k) { void* r; redisGetReply(rc, &r); freeReplyObject(r); }
    });
  } else if (what == "pipe_vec" || what == "pipe_stream") {
    run(n, [&] {
      auto lease = pool.acquire();
      cachet::Pipeline p(*lease);
      for (int k = 0; k < 100; ++k) p.add({"GET", "bench:plain:1"});
      if (what == "pipe_vec") { auto v = p.execute(); asm volatile("" ::"r"(v.data()) : "memory"); }
      else p.execute([](cachet::Reply&&) {});
    });
  }
}
