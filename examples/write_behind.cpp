// Page-view counters, written behind: each view is one HINCRBY in Redis, and a
// flusher adds the sums to an SQLite table in batches (article 001's flavour,
// without its lost increments). The hand-over from "pending" to "flushing" is
// one atomic RENAME, and each batch carries a number the database records in
// the same transaction, so a batch written twice (a crash between the database
// write and the clean-up) is added once.
//
//   write_behind [--socket PATH | --host H --port P] [--password PW]
//                [--command-timeout MS] [--threads N] [--views N] [--interval MS]
//
// A view whose increment fails (Redis slow or down) is logged and counted, not
// retried and not fatal: after a timeout Redis may have applied it, so a retry
// could count it twice. Exits 1 if a page's database total is not between its
// views that surely counted and all its views.

#include "common/cli.hpp"
#include "common/sqlite.hpp"

#include <cachet/cachet.hpp>

#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

// The database: totals per page, and the batches already applied.
class ViewsDb {
 public:
  explicit ViewsDb(const std::string& path) : db_(path) {
    db_.exec("CREATE TABLE IF NOT EXISTS views (page TEXT PRIMARY KEY, total INTEGER NOT NULL)");
    db_.exec("CREATE TABLE IF NOT EXISTS applied_batches (batch INTEGER PRIMARY KEY)");
    db_.exec("DELETE FROM views; DELETE FROM applied_batches;");
  }

  // All or nothing, and once per batch number.
  void add(std::uint64_t batch, std::span<const cachet::CounterDelta> sums) {
    db_.exec("BEGIN IMMEDIATE");
    try {
      sqlite::Statement seen(db_.handle(), "INSERT OR IGNORE INTO applied_batches (batch) VALUES (?1)");
      seen.bind(1, static_cast<std::int64_t>(batch));
      seen.run();
      if (sqlite3_changes(db_.handle()) == 1) {
        sqlite::Statement add(db_.handle(),
                              "INSERT INTO views (page, total) VALUES (?1, ?2) "
                              "ON CONFLICT (page) DO UPDATE SET total = views.total + excluded.total");
        for (const cachet::CounterDelta& d : sums) {
          add.bind(1, d.id);
          add.bind(2, d.delta);
          add.run();
        }
      }
      db_.exec("COMMIT");
      ++writes_;
    } catch (...) {
      db_.exec("ROLLBACK");
      throw;
    }
  }

  std::map<std::string, std::int64_t> totals() {
    std::map<std::string, std::int64_t> out;
    sqlite::Statement q(db_.handle(), "SELECT page, total FROM views");
    while (q.step()) out[q.text(0)] = q.int64(1);
    return out;
  }
  int writes() const { return writes_.load(); }

 private:
  sqlite::Database db_;
  std::atomic<int> writes_{0};
};

constexpr int pages = 50;
std::string page(int i) { return "/products/" + std::to_string(i % pages); }

// Flushes what is still pending. A Redis error leaves the batch in Redis (and a
// batch written twice is added once), so trying again until `within` is safe.
template <class Counters>
void final_flush(Counters& counters, std::chrono::seconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  for (;;) {
    try {
      counters.flush();
      return;
    } catch (const cachet::Error& e) {
      if (std::chrono::steady_clock::now() >= deadline) throw;
      std::fprintf(stderr, "write_behind: flush failed, retrying: %s\n", e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  example::Cli cli("write_behind", "Page-view counters written behind into SQLite in batches.");
  int threads = 8, views = 20'000, interval_ms = 50;
  cli.positive("--threads", threads, "viewer threads");
  cli.positive("--views", views, "views in all");
  cli.positive("--interval", interval_ms, "flush interval, ms");
  cli.parse(argc, argv);
  try {
    cachet::Pool pool(cli.redis(), {.size = static_cast<std::size_t>(threads) + 2});
    // A server given may hold an earlier run's counts: start from none.
    const std::string counts = cachet::KeyBuilder("demo").write_behind("views") + ":counts";
    pool.with([&](cachet::Connection& c) { c.command({"DEL", counts, counts + ":flushing"}); });
    // Per process: two runs at once (the test command runs two) must not add to one table.
    const std::string path =
        (std::filesystem::temp_directory_path() / ("cachet-write-behind-views-" + std::to_string(::getpid()) + ".sqlite"))
            .string();
    struct Remove {
      std::string path;
      ~Remove() { std::filesystem::remove(path); }
    } remove_db{path};
    ViewsDb db(path);
    std::array<std::atomic<int>, pages> uncertain{};  // per page: views whose increment failed
    std::atomic<int> failed{0};
    {
      auto write = [&db](std::uint64_t batch, std::span<const cachet::CounterDelta> sums) { db.add(batch, sums); };
      cachet::WriteBehindCounters<decltype(write)> counters(
          pool, {.ns = "demo", .queue = "views", .interval = std::chrono::milliseconds(interval_ms)}, write);
      std::printf("viewing: %d views from %d threads\n", views, threads);
      std::fflush(stdout);  // a test waits for this line
      const auto started = std::chrono::steady_clock::now();
      std::vector<std::thread> viewers;
      for (int t = 0; t < threads; ++t)
        viewers.emplace_back([&, t] {
          for (int i = t; i < views; i += threads) {
            try {  // an exception leaving a thread ends the process: a page view must not
              counters.increment(page(i));
            } catch (const cachet::Error& e) {
              uncertain[static_cast<std::size_t>(i % pages)].fetch_add(1);
              if (failed.fetch_add(1) == 0) std::fprintf(stderr, "write_behind: a view was not counted: %s\n", e.what());
            }
          }
        });
      for (auto& v : viewers) v.join();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      std::printf("%d views from %d threads in %.2f s (%.0f/s), flushed every %d ms meanwhile\n", views, threads, seconds,
                  views / seconds, interval_ms);
      if (failed.load() != 0)
        std::printf("%d views failed (Redis errors; each may or may not have counted)\n", failed.load());
      final_flush(counters, std::chrono::seconds(30));
    }  // the destructor stops the flusher
    std::map<std::string, std::int64_t> expected;
    for (int i = 0; i < views; ++i) ++expected[page(i)];
    const auto totals = db.totals();
    std::printf("%d database writes for %d views; %zu pages, /products/0 has %lld\n", db.writes(), views, totals.size(),
                static_cast<long long>(totals.count("/products/0") ? totals.at("/products/0") : 0));
    for (int p = 0; p < pages; ++p) {
      const auto got = totals.count(page(p)) ? totals.at(page(p)) : 0;
      if (got > expected[page(p)] || got < expected[page(p)] - uncertain[static_cast<std::size_t>(p)].load()) {
        std::fprintf(stderr, "write_behind: FAILED: %s has %lld in the database for %lld views (%d uncertain)\n",
                     page(p).c_str(), static_cast<long long>(got), static_cast<long long>(expected[page(p)]),
                     uncertain[static_cast<std::size_t>(p)].load());
        return 1;
      }
    }
    std::printf(failed.load() == 0 ? "every view is in the database, each counted once\n"
                                   : "every view that counted is in the database, each once\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "write_behind: %s\n", e.what());
    return 1;
  }
}
