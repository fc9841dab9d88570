// A session read (SessionStore::load: id checked, one EVALSHA of the read script,
// the reply turned into a Session) next to the raw hiredis round trip it needs:
// the same EVALSHA with the same arguments on one context. HGETALL is beside them
// for scale (a read with no idle check at all). Same server, same run; pin it:
//   taskset -c 0 build/bench/bench/bench_session --benchmark_repetitions=10
//       --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true  (one line)
// Client instructions: `bench_session --callgrind <raw|cachet|signed> <n>` runs n
// reads inside measured_loop(), for
//   valgrind --tool=callgrind --toggle-collect='*measured_loop*' bench_session --callgrind raw 12000

#include "ratio_reporter.hpp"
#include "raw_context.hpp"

#include <cachet/redis/pool.hpp>
#include <cachet/session/session_store.hpp>
#include <cachet/testing/redis_server.hpp>

#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>

namespace {

// A typical web session: five short attributes, an hour of idle time (no read renews).
const cachet::SessionStore::Attributes kAttributes{
    {"user_id", "4217"}, {"csrf", std::string(32, 'c')}, {"cart", "3 items"}, {"theme", "dark"}, {"locale", "fr-FR"}};
const cachet::SessionOptions kOptions{.idle = std::chrono::hours(1), .absolute = std::chrono::hours(12)};

struct Fixture {
  cachet::testing::RedisServer server{{.tcp = true}};
  cachet::Pool pool{server.tcp_connection_options(), {.size = 1}};
  cachet::SessionStore plain{pool, kOptions};
  cachet::SessionStore signed_ids{pool, [] {
                                    auto o = kOptions;
                                    o.secrets = {"bench-secret"};
                                    return o;
                                  }()};
  std::string id = plain.create("ada", kAttributes);
  std::string signed_id = signed_ids.create("ada", kAttributes);
  std::string key = "session:{" + id.substr(0, 16) + "}:" + cachet::detail::sha256_hex(std::string_view(id).substr(17));
  std::string sha;
  Fixture() {
    auto conn = server.connect();
    sha = std::string(cachet::detail::SessionScripts::shared().read.sha(conn));
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

struct RawContext : cachet::bench::RawContext {
  RawContext() : cachet::bench::RawContext(fixture().server.port()) {}
};

// The read script by EVALSHA, as SessionStore::load sends it; true if the reply is a session.
bool raw_read(redisContext* c) {
  const auto& f = fixture();
  const char* argv[] = {"EVALSHA", f.sha.data(), "1", f.key.data(), "3600000", "1800000"};
  const size_t lens[] = {7, f.sha.size(), 1, f.key.size(), 7, 7};
  auto* r = static_cast<redisReply*>(redisCommandArgv(c, 6, argv, lens));
  const bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2;
  freeReplyObject(r);
  return ok;
}

bool raw_hgetall(redisContext* c) {
  const auto& f = fixture();
  const char* argv[] = {"HGETALL", f.key.data()};
  const size_t lens[] = {7, f.key.size()};
  auto* r = static_cast<redisReply*>(redisCommandArgv(c, 2, argv, lens));
  const bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
  freeReplyObject(r);
  return ok;
}

void raw_hiredis_evalsha_read(benchmark::State& state) {
  RawContext raw;
  for (auto _ : state)
    if (!raw_read(raw.c)) state.SkipWithError("bad reply");
}

void raw_hiredis_hgetall(benchmark::State& state) {
  RawContext raw;
  for (auto _ : state)
    if (!raw_hgetall(raw.c)) state.SkipWithError("bad reply");
}

void cachet_session_load(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    auto s = f.plain.load(f.id);
    if (!s || s->attributes().size() != kAttributes.size()) state.SkipWithError("bad session");
    benchmark::DoNotOptimize(s);
  }
}

void cachet_session_load_signed(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    auto s = f.signed_ids.load(f.signed_id);
    if (!s) state.SkipWithError("bad session");
    benchmark::DoNotOptimize(s);
  }
}

// Kept out of line so callgrind's --toggle-collect can count only this loop.
[[gnu::noinline]] void measured_loop(int n, const std::function<bool()>& read) {
  for (int i = 0; i < n; ++i)
    if (!read()) throw std::runtime_error("a read failed");
}

int callgrind(const char* kind, int n) {
  auto& f = fixture();
  RawContext raw;
  if (std::strcmp(kind, "raw") == 0) measured_loop(n, [&] { return raw_read(raw.c); });
  else if (std::strcmp(kind, "cachet") == 0) measured_loop(n, [&] { return f.plain.load(f.id).has_value(); });
  else if (std::strcmp(kind, "signed") == 0) measured_loop(n, [&] { return f.signed_ids.load(f.signed_id).has_value(); });
  else return 2;
  std::printf("%d %s reads\n", n, kind);
  return 0;
}

}  // namespace

BENCHMARK(raw_hiredis_evalsha_read);
BENCHMARK(raw_hiredis_hgetall);
BENCHMARK(cachet_session_load);
BENCHMARK(cachet_session_load_signed);

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--callgrind") == 0) return callgrind(argv[2], std::atoi(argv[3]));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  cachet::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios({{"cachet_session_load", "raw_hiredis_evalsha_read"},
                         {"cachet_session_load_signed", "raw_hiredis_evalsha_read"},
                         {"raw_hiredis_evalsha_read", "raw_hiredis_hgetall"}});
  benchmark::Shutdown();
}
