// Page-view counters, written behind: each view is one HINCRBY in Redis, and a
// flusher adds the sums to an SQLite table in batches (article 001's flavour,
// without its lost increments). The hand-over from "pending" to "flushing" is
// one atomic RENAME, and each batch carries a number the database records in
// the same transaction, so a batch written twice (a crash between the database
// write and the clean-up) is added once.
//
//   write_behind [--socket PATH | --host H --port P] [--password PW]
//                [--threads N] [--views N] [--interval MS]
//
// Exits 1 if the database totals differ from the views counted.

#include "common/cli.hpp"
#include "common/sqlite.hpp"

#include <cachet/cachet.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
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

}  // namespace

int main(int argc, char** argv) {
  example::Cli cli("write_behind",
                   "[--socket PATH | --host H --port P] [--password PW] [--threads N] [--views N] [--interval MS]");
  int threads = 8, views = 20'000, interval_ms = 50;
  cli.each_flag(argc, argv, [&](std::string_view flag, std::string_view value) {
    if (flag == "--threads") threads = cli.positive(flag, value);
    else if (flag == "--views") views = cli.positive(flag, value);
    else if (flag == "--interval") interval_ms = cli.positive(flag, value);
    else return false;
    return true;
  });
  try {
    cachet::Pool pool(cli.redis(), {.size = static_cast<std::size_t>(threads) + 2});
    // A server given may hold an earlier run's counts: start from none.
    const std::string counts = cachet::KeyBuilder("demo").write_behind("views") + ":counts";
    pool.with([&](cachet::Connection& c) { c.command({"DEL", counts, counts + ":flushing"}); });
    const std::string path = (std::filesystem::temp_directory_path() / "cachet-write-behind-views.sqlite").string();
    ViewsDb db(path);
    std::map<std::string, std::int64_t> expected;
    {
      auto write = [&db](std::uint64_t batch, std::span<const cachet::CounterDelta> sums) { db.add(batch, sums); };
      cachet::WriteBehindCounters<decltype(write)> counters(
          pool, {.ns = "demo", .queue = "views", .interval = std::chrono::milliseconds(interval_ms)}, write);
      const auto started = std::chrono::steady_clock::now();
      std::vector<std::thread> viewers;
      for (int t = 0; t < threads; ++t)
        viewers.emplace_back([&, t] {
          for (int i = t; i < views; i += threads) counters.increment("/products/" + std::to_string(i % 50));
        });
      for (auto& v : viewers) v.join();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      std::printf("%d views from %d threads in %.2f s (%.0f/s), flushed every %d ms meanwhile\n", views, threads, seconds,
                  views / seconds, interval_ms);
      counters.flush();  // what is still pending
    }  // the destructor stops the flusher
    for (int i = 0; i < views; ++i) ++expected["/products/" + std::to_string(i % 50)];
    const auto totals = db.totals();
    std::printf("%d database writes for %d views; %zu pages, /products/0 has %lld\n", db.writes(), views, totals.size(),
                static_cast<long long>(totals.count("/products/0") ? totals.at("/products/0") : 0));
    if (totals != expected) {
      std::fprintf(stderr, "write_behind: FAILED: the database totals differ from the views counted\n");
      return 1;
    }
    std::printf("every view is in the database, each counted once\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "write_behind: %s\n", e.what());
    return 1;
  }
}
