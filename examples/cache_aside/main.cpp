// Cache-aside in front of an expensive SQLite query: the first call for a
// product runs the query and stores the answer in Redis, later calls are one
// GET. Requests follow a skewed (Zipf) popularity, as real catalogs do, plus a
// few unknown ids whose "no such product" is cached too (negative caching).
// Without --socket or --host it starts its own throwaway redis-server.
//
//   cache_aside [--socket PATH | --host H --port P] [--password PW]
//               [--requests N] [--products N]
//
// Exits 1 if any answer differs from the database, nothing was served from the
// cache, or the counters do not add up; 2 on a bad flag.

#include "../common/cli.hpp"
#include "catalog_db.hpp"

#include <cachet/metrics.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/testing/redis_server.hpp>
#include <cachet/ttl.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using catalog::Product;

struct Args {
  int requests = 2'000;
  int products = 2'000;
};

Args parse(int argc, char** argv, example::Cli& cli) {
  Args a;
  cli.positive("--requests", a.requests, "product reads");
  cli.positive("--products", a.products, "products in the database");
  cli.parse(argc, argv);
  return a;
}

// Product ids to request: Zipf (s = 1) over popularity ranks, the ranks dealt
// onto ids in a shuffled order, and 1 request in 100 for one of 5 ids past the
// end of the catalog. Seeded, so every run asks for the same ids.
std::vector<std::int64_t> make_requests(int requests, int products) {
  catalog::SplitMix64 rng(42);
  std::vector<std::int64_t> id_of_rank(static_cast<std::size_t>(products));
  for (std::size_t r = 0; r < id_of_rank.size(); ++r) id_of_rank[r] = static_cast<std::int64_t>(r) + 1;
  for (std::size_t r = id_of_rank.size(); r > 1; --r) std::swap(id_of_rank[r - 1], id_of_rank[rng.below(r)]);

  std::vector<double> cdf(id_of_rank.size());
  double total = 0;
  for (std::size_t r = 0; r < cdf.size(); ++r) cdf[r] = total += 1.0 / static_cast<double>(r + 1);

  std::vector<std::int64_t> ids;
  ids.reserve(static_cast<std::size_t>(requests));
  for (int i = 0; i < requests; ++i) {
    if (rng.below(100) == 0) {
      ids.push_back(products + 1 + static_cast<std::int64_t>(rng.below(5)));  // unknown
      continue;
    }
    const auto at = std::upper_bound(cdf.begin(), cdf.end(), rng.unit() * total) - cdf.begin();
    ids.push_back(id_of_rank[std::min(static_cast<std::size_t>(at), cdf.size() - 1)]);
  }
  return ids;
}

std::string duration_text(double us) {
  char buf[32];
  if (us >= 1000) std::snprintf(buf, sizeof buf, "%.2f ms", us / 1000);
  else std::snprintf(buf, sizeof buf, "%.0f us", us);
  return buf;
}

// "p50 ...   p99 ..." of latencies in microseconds.
std::string percentiles(std::vector<double> us) {
  if (us.empty()) return "p50         -   p99         -";
  char buf[64];
  std::snprintf(buf, sizeof buf, "p50 %9s   p99 %9s", duration_text(example::percentile(us, 0.50)).c_str(),
                duration_text(example::percentile(us, 0.99)).c_str());
  return buf;
}

// The Prometheus text's lines of the hit, negative hit and miss counters (HELP,
// TYPE, samples): the three the hit ratio is made of.
std::string hits_and_misses(const std::string& prometheus) {
  std::istringstream in(prometheus);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    std::string_view name = line;
    if (name.rfind("# HELP ", 0) == 0 || name.rfind("# TYPE ", 0) == 0) name.remove_prefix(7);
    name = name.substr(0, name.find_first_of("{ "));
    if (name == "cachet_hits_total" || name == "cachet_negative_hits_total" || name == "cachet_misses_total")
      out += "  " + line + "\n";
  }
  return out;
}

// Counts what went wrong (printing the first few); the exit code is 1 if anything did.
struct Checks {
  int failed = 0;
  void expect(bool ok, const std::string& what) {
    if (ok) return;
    if (++failed <= 5) std::fprintf(stderr, "cache_aside: FAILED: %s\n", what.c_str());
  }
  int exit_code() const {
    if (failed > 5) std::fprintf(stderr, "cache_aside: FAILED: %d checks in all\n", failed);
    return failed == 0 ? 0 : 1;
  }
};

int run(const Args& a, example::Cli& cli) {
  Checks check;
  catalog::CatalogDb db(a.products);
  std::printf("SQLite catalog in memory: %d products, %lld reviews, no index on reviews.product_id\n", a.products,
              static_cast<long long>(db.review_rows()));

  cachet::Pool pool(cli.redis(), {.size = 2});
  pool.with([](cachet::Connection& c) { c.command({"PING"}); });  // a clear error now rather than silent misses

  cachet::CacheAside<Product> cache(
      cachet::RedisStore(pool),
      {.ns = "example",
       .name = "product",
       .ttl = cachet::TtlPolicy({.fresh = std::chrono::minutes(5), .negative = std::chrono::seconds(30)})});
  auto load = [&db](std::string_view id) { return db.find(id); };  // std::optional<Product>

  // Start cold, even on a server that kept a previous run's entries (one UNLINK per 1,000 ids).
  for (std::int64_t from = 1; from <= a.products + 5; from += 1'000) {
    std::vector<std::string> ids;
    for (std::int64_t id = from; id < from + 1'000 && id <= a.products + 5; ++id) ids.push_back(std::to_string(id));
    const std::vector<std::string_view> views(ids.begin(), ids.end());
    cache.invalidate_many(views);
  }

  // One product twice: a miss (the query, then SET), then a hit (one GET).
  const auto timed = [&](std::string_view id) {
    const auto t0 = clock_type::now();
    std::optional<Product> p = cache.get_or_load(id, load);
    return std::make_pair(std::move(p), std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  };
  const std::int64_t demo = std::min(42, a.products);
  const long long q0 = db.queries();
  const auto [first, first_us] = timed(std::to_string(demo));
  check.expect(db.queries() == q0 + 1, "the first call did not query the database");
  const auto [second, second_us] = timed(std::to_string(demo));
  check.expect(db.queries() == q0 + 1, "the second call queried the database");
  check.expect(first == db.expected(demo) && second == db.expected(demo),
               "product " + std::to_string(demo) + " differs from the database");
  std::printf("product %lld \"%s\": 1st call %s (miss: query + SET), 2nd call %s (hit: GET)\n",
              static_cast<long long>(demo), db.expected(demo).name.c_str(), duration_text(first_us).c_str(),
              duration_text(second_us).c_str());

  // The request run: a call that queried the database was a miss, any other a hit.
  std::vector<double> miss_us, hit_us;
  long negative_hits = 0;
  for (const std::int64_t id : make_requests(a.requests, a.products)) {
    const long long before = db.queries();
    const auto [got, us] = timed(std::to_string(id));
    const bool queried = db.queries() != before;
    (queried ? miss_us : hit_us).push_back(us);
    if (id <= a.products) {
      check.expect(got == db.expected(id), "product " + std::to_string(id) + " differs from the database");
    } else {
      check.expect(!got.has_value(), "unknown product " + std::to_string(id) + " was found");
      if (!queried) ++negative_hits;
    }
  }
  std::printf("%d requests, Zipf(s=1) over the products, 1%% unknown ids:\n", a.requests);
  std::printf("  misses %6zu   %s   (one SQLite query each)\n", miss_us.size(), percentiles(miss_us).c_str());
  std::printf("  hits   %6zu   %s   (%ld of them cached \"no such product\")\n", hit_us.size(),
              percentiles(hit_us).c_str(), negative_hits);

  const cachet::CacheMetrics& m = cache.metrics();
  std::printf("hit ratio %.3f (cache.metrics().hit_ratio(), the two calls above included)\n", m.hit_ratio());
  std::printf("database queries: %lld for %d calls\n", db.queries(), a.requests + 2);
  std::printf("cachet metrics, hits and misses (from MetricsRegistry::global().prometheus()):\n%s",
              hits_and_misses(cachet::MetricsRegistry::global().prometheus()).c_str());

  check.expect(m.hit_ratio() > 0, "nothing was served from the cache");
  check.expect(m.value(cachet::Event::load) == static_cast<std::uint64_t>(db.queries()) &&
                   m.value(cachet::Event::miss) == static_cast<std::uint64_t>(db.queries()),
               "the cache's miss and load counts do not match the database's query count");
  check.expect(m.value(cachet::Event::redis_error) == 0 && m.value(cachet::Event::cache_write_error) == 0 &&
                   m.value(cachet::Event::decode_error) == 0,
               "Redis errors, failed cache writes or undecodable entries were counted");
  return check.exit_code();
}

}  // namespace

int main(int argc, char** argv) {
  example::Cli cli("cache_aside",
                   "Cache-aside over an expensive SQLite query, cold and warm.\n"
                   "Without --socket or --host it starts its own throwaway redis-server.");
  const Args a = parse(argc, argv, cli);
  try {
    return run(a, cli);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cache_aside: %s\n", e.what());
    return 1;
  }
}
