// The catalog demo: the articles' headline result, measured end to end. A
// generated product catalog (five tables) in SQLite or PostgreSQL, a Zipf(0.99)
// request stream of product pages with a share of price updates, run three
// ways in one run: no cache, cache-aside with the stampede guard stack, and the
// same with an in-process tier in front of Redis. Prints the table the README
// shows; --png draws the latency distributions.
//
// Exits 1 if a read returned a product older than an update that had already
// returned, or a request failed; 2 on a bad flag.

#include "../common/cli.hpp"
#include "database.hpp"
#include "modes.hpp"
#include "postgres_catalog.hpp"
#include "report.hpp"
#include "runner.hpp"
#include "sqlite_catalog.hpp"
#include "throwaway_postgres.hpp"
#include "workload.hpp"

#include <cachet/cachet.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace catalog;

struct Args {
  Shape shape;
  RunOptions run;
  double zipf = 0.99;
  double warm = 0.5;  // share of the catalog, the most viewed first, loaded before a cached run (see README)
  std::string db = "sqlite";
  std::string db_file;   // SQLite; default: a file per shape in the temp directory
  std::string pg;        // PostgreSQL conninfo; default: a throwaway server
  std::string png;
};

Args parse(int argc, char** argv, example::Cli& cli) {
  Args a;
  CLI::App& app = cli.app();
  double seconds = static_cast<double>(a.run.duration.count()) / 1000, updates = a.run.update_share * 100,
         warm = a.warm * 100;
  cli.positive("--products", a.shape.products, "products in the catalog");
  cli.positive("--categories", a.shape.categories, "categories");
  cli.positive("--threads", a.run.threads, "client threads");
  app.add_option("--seconds", seconds, "seconds per mode")->check(CLI::Range(0.1, 3600.0))->capture_default_str();
  app.add_option("--updates", updates, "percent of requests that update")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  app.add_option("--zipf", a.zipf, "Zipf exponent of popularity")->check(CLI::Range(0.0, 5.0))->capture_default_str();
  app.add_option("--warm", warm, "percent of the catalog loaded first")->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cli.positive("--seed", a.shape.seed, "random seed");
  app.add_option("--db", a.db, "database")->check(CLI::IsMember({"sqlite", "postgres"}))->capture_default_str();
  app.add_option("--db-file", a.db_file, "SQLite file (default: one per shape in the temp directory)");
  app.add_option("--pg", a.pg, "PostgreSQL conninfo (default: a throwaway server)");
  app.add_option("--png", a.png, "write a latency chart (gnuplot) to this file");
  cli.parse(argc, argv);
  if (a.shape.categories > a.shape.products) cli.fail("--categories cannot exceed --products");
  a.run.duration = std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  a.run.update_share = updates / 100;
  a.warm = warm / 100;
  return a;
}

// One line, rewritten in place on a terminal; elsewhere (a log) a line at most
// once a second, plus the last one of each step.
class ProgressLine {
 public:
  ProgressLine() : tty_(isatty(fileno(stderr)) != 0) {}
  void show(const std::string& text) {
    last_ = text;
    if (tty_) {
      std::fprintf(stderr, "\r%-78s", text.c_str());
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - printed_ < std::chrono::seconds(1)) return;
    std::fprintf(stderr, "%s\n", text.c_str());
    printed_ = now;
    last_.clear();
  }
  void done() {
    if (last_.empty()) return;
    if (tty_) std::fputc('\n', stderr);
    else std::fprintf(stderr, "%s\n", last_.c_str());
    last_.clear();
    printed_ = {};
  }

 private:
  bool tty_;
  std::string last_;  // shown but not yet ended by a newline (tty) or not printed (log)
  std::chrono::steady_clock::time_point printed_{};
};

std::unique_ptr<Database> open_database(const Args& a, std::unique_ptr<ThrowawayPostgres>& server, ProgressLine& line) {
  const Progress progress = [&](std::int64_t done, std::int64_t total) {
    line.show("generating the catalog: " + std::to_string(done) + " / " + std::to_string(total) + " products");
  };
  std::unique_ptr<Database> db;
  if (a.db == "sqlite") {
    const std::string file = !a.db_file.empty() ? a.db_file
                                                : (std::filesystem::temp_directory_path() /
                                                   ("cachet-catalog-" + std::to_string(a.shape.products) + ".sqlite"))
                                                      .string();
    db = std::make_unique<SqliteCatalog>(file, a.shape, progress);
  } else {
    std::string conninfo = a.pg;
    if (conninfo.empty()) {
      server = std::make_unique<ThrowawayPostgres>();
      std::printf("started a throwaway PostgreSQL in %s\n", server->directory().c_str());
      conninfo = server->conninfo();
    }
    db = std::make_unique<PostgresCatalog>(conninfo, a.shape, progress);
  }
  line.done();
  return db;
}

template <class Store, class Guard>
using CacheOf = cachet::CacheAside<Product, cachet::JsonCodec<Product>, Guard, Store>;

cachet::CacheOptions cache_options(const std::string& ns, const std::string& name) {
  return {.ns = ns, .name = name, .ttl = cachet::TtlPolicy({.fresh = std::chrono::minutes(10)}), .metrics_label = ns + ":" + name};
}

// Warms a mode's caches with the most viewed products, its progress on one line.
void warm_mode(Mode& mode, Database& db, const std::vector<std::int64_t>& ids, std::int64_t categories, ProgressLine& line) {
  const auto started = std::chrono::steady_clock::now();
  const cachet::WarmResult r = mode.warm(db, ids, categories, [&](const cachet::WarmProgress& p) {
    line.show(mode.name() + ": warming " + std::to_string(p.done) + " / " + std::to_string(p.total) +
              " most viewed products" + (p.failed ? ", " + std::to_string(p.failed) + " failed" : ""));
  });
  line.done();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("%s: warmed %zu products in %.2f s (%zu kept: cached already, %zu failed%s%s)\n", mode.name().c_str(),
              r.progress.done, seconds, r.progress.kept, r.progress.failed, r.first_error.empty() ? "" : ": ",
              r.first_error.c_str());
}

int run(const Args& a, example::Cli& cli) {
  ProgressLine line;
  std::unique_ptr<ThrowawayPostgres> pg_server;  // started before any thread: it forks
  std::unique_ptr<Database> db = open_database(a, pg_server, line);
  std::printf("database: %s, %lld products in %lld categories\n", db->describe().c_str(),
              static_cast<long long>(a.shape.products), static_cast<long long>(a.shape.categories));

  cachet::Pool pool(cli.redis(), {.size = static_cast<std::size_t>(a.run.threads) + 4});
  pool.with([](cachet::Connection& c) { c.command({"PING"}); });  // a clear error now rather than silent misses
  const Popularity popularity(a.shape.products, a.zipf, a.shape.seed);
  const auto warm_ids = popularity.top(static_cast<std::size_t>(a.warm * static_cast<double>(a.shape.products)));

  // A server given may hold an earlier run's entries, and its write versions
  // ({ns}:wv:*), which a new database's row versions, starting again, would lose to.
  auto forget = [&](const std::string& ns) {
    for (const char* name : {"product", "category", "wv"}) cachet::invalidate_matching(pool, cachet::KeyBuilder(ns).pattern(name));
  };
  // Before the modes: their in-process tiers subscribe to it, so it must outlive them.
  cachet::Tracking tracking(pool, {.prefixes = {"catalog-l1:"}});
  if (!tracking.wait_live(std::chrono::seconds(5))) throw std::runtime_error("client tracking did not come up");
  std::vector<std::unique_ptr<Mode>> modes;
  modes.push_back(std::make_unique<NoCache>());

  forget("catalog-redis");
  modes.push_back(std::make_unique<Cached<cachet::Cache<Product>, cachet::Cache<CategorySummary>>>(
      "cache-aside + guards",
      [&] { return cachet::make_cache<Product>(pool, cache_options("catalog-redis", "product")); },
      [&] { return cachet::make_cache<CategorySummary>(pool, cache_options("catalog-redis", "category")); }));

  // The same in front of an in-process tier, kept coherent by client tracking of the namespace.
  forget("catalog-l1");
  const cachet::MemoryStoreOptions l1{.max_entries = static_cast<std::size_t>(a.shape.products)};
  modes.push_back(std::make_unique<Cached<cachet::TieredCache<Product>, cachet::TieredCache<CategorySummary>>>(
      "+ in-process tier",
      [&] { return cachet::make_tiered_cache<Product>(pool, tracking, cache_options("catalog-l1", "product"), l1); },
      [&] {
        return cachet::make_tiered_cache<CategorySummary>(pool, tracking, cache_options("catalog-l1", "category"), l1);
      }));

  std::printf("%d threads, %.1f s per mode, Zipf(%.2f) over the products, %.1f %% updates (write-through + "
              "the category's tag invalidated)\n",
              a.run.threads, static_cast<double>(a.run.duration.count()) / 1000, a.zipf, a.run.update_share * 100);
  Committed committed(a.shape.products);
  std::vector<RunResult> runs;
  for (auto& mode : modes) {
    if (mode->counts()) warm_mode(*mode, *db, warm_ids, a.shape.categories, line);
    runs.push_back(run_mode(*mode, *db, popularity, committed, a.run, [&](double seconds, long long requests) {
      char text[128];
      std::snprintf(text, sizeof text, "%s: %.1f / %.1f s, %lld requests", mode->name().c_str(), seconds,
                    static_cast<double>(a.run.duration.count()) / 1000, requests);
      line.show(text);
    }));
    line.done();
  }

  print_table(runs);
  std::printf("\ncached runs warmed the %zu most viewed products first (%.0f %% of requests)\n", warm_ids.size(),
              popularity.mass_of_top(warm_ids.size()) * 100);
  print_targets(runs);
  if (!a.png.empty()) {
    draw_png(a.png, runs);
    std::printf("latency distributions drawn in %s\n", a.png.c_str());
  }
  int exit_code = 0;
  for (const RunResult& r : runs) {
    if (r.stale_reads > 0) {
      std::fprintf(stderr, "catalog: FAILED: %s returned %lld reads older than a finished update\n", r.mode.c_str(), r.stale_reads);
      exit_code = 1;
    }
    if (r.errors > 0) {
      std::fprintf(stderr, "catalog: FAILED: %s had %lld failed requests, the first: %s\n", r.mode.c_str(), r.errors,
                   r.first_error.c_str());
      exit_code = 1;
    }
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  example::Cli cli(
      "catalog",
      "The demo: a product catalog read through cachet's policies, each mode timed against the database alone.\n"
      "Without --socket or --host it starts its own throwaway redis-server; --db postgres without --pg\n"
      "starts a throwaway PostgreSQL.");
  const Args a = parse(argc, argv, cli);
  try {
    return run(a, cli);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "catalog: %s\n", e.what());
    return 1;
  }
}
