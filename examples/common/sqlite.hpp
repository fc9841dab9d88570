#pragma once
// The SQLite C API behind two small RAII wrappers, for the examples, tests and
// benchmarks that use SQLite as their "database". Every return code is checked;
// a failure throws sqlite::Error with sqlite3_errmsg. A Database is one
// connection: use it from one thread at a time.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sqlite {

class Error : public std::runtime_error {
 public:
  Error(const std::string& what, int code) : std::runtime_error(what), code_(code) {}
  int code() const noexcept { return code_; }  // SQLITE_BUSY, SQLITE_CONSTRAINT, ...

 private:
  int code_;
};

namespace detail {

struct CloseDb {
  void operator()(sqlite3* db) const noexcept { sqlite3_close(db); }
};
struct Finalize {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};

inline void check(sqlite3* db, int rc, const char* what) {
  if (rc != SQLITE_OK) throw Error(std::string("sqlite ") + what + ": " + sqlite3_errmsg(db), rc);
}

}  // namespace detail

// One connection to a database file (or ":memory:"). It waits `busy_ms` for
// another connection's lock from the start: preparing a statement reads the
// schema, which can meet a writer's lock too.
class Database {
 public:
  explicit Database(const std::string& path, int busy_ms = 10'000) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open(path.c_str(), &raw);
    db_.reset(raw);  // closed even when the open failed, as SQLite asks
    detail::check(raw, rc, "open");
    busy_timeout(busy_ms);
  }

  void exec(const char* sql) {
    char* error = nullptr;
    const int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
      const std::string message = error ? error : sqlite3_errmsg(db_.get());
      sqlite3_free(error);
      throw Error("sqlite exec: " + message, rc);
    }
  }

  // How long a statement waits for another connection's lock before SQLITE_BUSY.
  void busy_timeout(int ms) { detail::check(db_.get(), sqlite3_busy_timeout(db_.get(), ms), "busy_timeout"); }

  sqlite3* handle() const noexcept { return db_.get(); }

 private:
  std::unique_ptr<sqlite3, detail::CloseDb> db_;
};

// A prepared statement: bind, step, read columns; finalized when it goes.
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql) : db_(db) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    stmt_.reset(raw);
    check(rc, "prepare");
  }

  void bind(int index, std::int64_t v) { check(sqlite3_bind_int64(stmt_.get(), index, v), "bind"); }
  void bind(int index, double v) { check(sqlite3_bind_double(stmt_.get(), index, v), "bind"); }
  void bind(int index, std::string_view v) {
    check(sqlite3_bind_text(stmt_.get(), index, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT), "bind");
  }

  // True while there is a row to read; false when done. A failed step resets
  // the statement, so it can run again.
  bool step() {
    const int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    sqlite3_reset(stmt_.get());
    check(rc, "step");
    return false;
  }

  // Runs a statement that returns no rows, then makes it ready to run again.
  void run() {
    while (step()) {
    }
    reset();
  }

  void reset() { check(sqlite3_reset(stmt_.get()), "reset"); }

  sqlite3_stmt* handle() const noexcept { return stmt_.get(); }
  std::int64_t int64(int column) const { return sqlite3_column_int64(stmt_.get(), column); }
  double real(int column) const { return sqlite3_column_double(stmt_.get(), column); }
  std::string text(int column) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_.get(), column));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_.get(), column))) : std::string();
  }

 private:
  void check(int rc, const char* what) const { detail::check(db_, rc, what); }

  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, detail::Finalize> stmt_;
};

}  // namespace sqlite
