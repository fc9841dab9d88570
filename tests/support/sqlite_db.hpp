#pragma once
// The write-policy tests' "database": one SQLite file (WAL), one connection per
// TestDb, so each thread or process opens its own. Tables:
//
//   items(id, value, version, entry_ms, entry_seq)  values; `value` may not start with "poison"
//   applied(entry)                                  every write-behind entry applied (repeats show duplicates)
//   counters(id, total), counter_batches(batch)     counter sums, and the batches already added
//
// Every write is a transaction; a failed one is rolled back and throws sqlite::Error.

#include <cachet/policy/write_behind_counters.hpp>
#include <cachet/policy/write_queue.hpp>

#include <common/sqlite.hpp>

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cachet::test {

class TestDb {
 public:
  // A new, empty database at `path` (any old file is removed).
  static std::string fresh(const std::string& path) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
    const TestDb created(path);  // the schema
    return path;
  }

  explicit TestDb(const std::string& path, int busy_ms = 10'000) : db_(path, busy_ms) {
    db_.exec("PRAGMA journal_mode = WAL");
    db_.exec("PRAGMA synchronous = NORMAL");
    db_.exec(
        "CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, value TEXT NOT NULL CHECK (value NOT LIKE 'poison%'), "
        "version INTEGER NOT NULL DEFAULT 0, entry_ms INTEGER NOT NULL DEFAULT 0, entry_seq INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS applied (entry TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS counters (id TEXT PRIMARY KEY, total INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS counter_batches (batch INTEGER PRIMARY KEY)");
  }

  // Write-through with a row version: the row's new version.
  std::int64_t update(std::string_view id, std::string_view value) {
    sqlite::Statement s(db_.handle(),
                        "INSERT INTO items (id, value, version) VALUES (?1, ?2, 1) ON CONFLICT (id) DO UPDATE SET "
                        "value = excluded.value, version = items.version + 1 RETURNING version");
    s.bind(1, id);
    s.bind(2, value);
    s.step();
    const std::int64_t version = s.int64(0);
    s.run();
    return version;
  }

  // Write-through with a version from elsewhere (WriteThrough::next_version).
  void set(std::string_view id, std::string_view value, std::int64_t version) {
    sqlite::Statement s(db_.handle(),
                        "INSERT INTO items (id, value, version) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO UPDATE SET "
                        "value = excluded.value, version = excluded.version");
    s.bind(1, id);
    s.bind(2, value);
    s.bind(3, version);
    s.run();
  }

  // A write-behind batch: each write upserted only if its entry is newer than the row's.
  void apply(std::span<const PendingWrite<std::string>> batch) {
    transaction([&] {
      sqlite::Statement upsert(db_.handle(),
                               "INSERT INTO items (id, value, entry_ms, entry_seq) VALUES (?1, ?2, ?3, ?4) "
                               "ON CONFLICT (id) DO UPDATE SET value = excluded.value, entry_ms = excluded.entry_ms, "
                               "entry_seq = excluded.entry_seq "
                               "WHERE (excluded.entry_ms, excluded.entry_seq) > (items.entry_ms, items.entry_seq)");
      sqlite::Statement log(db_.handle(), "INSERT INTO applied (entry) VALUES (?1)");
      for (const PendingWrite<std::string>& w : batch) {
        upsert.bind(1, w.id);
        upsert.bind(2, w.value);
        upsert.bind(3, static_cast<std::int64_t>(w.entry.ms));
        upsert.bind(4, static_cast<std::int64_t>(w.entry.seq));
        upsert.run();
        log.bind(1, w.entry.str());
        log.run();
      }
    });
  }

  // A counter batch, added once however often it is given.
  void add_counts(std::uint64_t batch, std::span<const CounterDelta> sums) {
    transaction([&] {
      sqlite::Statement seen(db_.handle(), "INSERT OR IGNORE INTO counter_batches (batch) VALUES (?1)");
      seen.bind(1, static_cast<std::int64_t>(batch));
      seen.run();
      if (sqlite3_changes(db_.handle()) == 0) return;  // applied before
      sqlite::Statement add(db_.handle(),
                            "INSERT INTO counters (id, total) VALUES (?1, ?2) "
                            "ON CONFLICT (id) DO UPDATE SET total = counters.total + excluded.total");
      for (const CounterDelta& d : sums) {
        add.bind(1, d.id);
        add.bind(2, d.delta);
        add.run();
      }
    });
  }

  // Runs `f` in a write transaction (BEGIN IMMEDIATE: the database's write lock
  // is taken first, so writers commit in the order they began).
  template <class F>
  void transaction(F f) {
    db_.exec("BEGIN IMMEDIATE");
    try {
      f();
      db_.exec("COMMIT");
    } catch (...) {
      db_.exec("ROLLBACK");
      throw;
    }
  }

  std::optional<std::string> value(std::string_view id) {
    sqlite::Statement s(db_.handle(), "SELECT value FROM items WHERE id = ?1");
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return s.text(0);
  }

  std::map<std::string, std::string> values() {
    std::map<std::string, std::string> out;
    sqlite::Statement s(db_.handle(), "SELECT id, value FROM items");
    while (s.step()) out[s.text(0)] = s.text(1);
    return out;
  }

  std::map<std::string, std::int64_t> counters() {
    std::map<std::string, std::int64_t> out;
    sqlite::Statement s(db_.handle(), "SELECT id, total FROM counters");
    while (s.step()) out[s.text(0)] = s.int64(1);
    return out;
  }

  // The first column of the first row of `sql`.
  std::int64_t scalar(const char* sql) {
    sqlite::Statement s(db_.handle(), sql);
    s.step();
    return s.int64(0);
  }

  sqlite::Database& raw() noexcept { return db_; }

 private:
  sqlite::Database db_;
};

}  // namespace cachet::test
