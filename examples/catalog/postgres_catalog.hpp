#pragma once
// The catalog in PostgreSQL (the real-server option), through libpq: the same
// five tables and statements as the SQLite file, loaded with COPY, each
// session a connection with its statements prepared once.

#include "database.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace catalog {

namespace pg {

struct Clear {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, Clear>;

class Connection {
 public:
  explicit Connection(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(conn_.get()) != CONNECTION_OK) throw std::runtime_error(std::string("postgres: ") + PQerrorMessage(conn_.get()));
  }

  Result exec(const std::string& sql) { return checked(PQexec(conn_.get(), sql.c_str())); }

  void prepare(const char* name, const char* sql) { checked(PQprepare(conn_.get(), name, sql, 0, nullptr)); }

  // Runs a prepared statement with text parameters.
  Result run(const char* name, std::initializer_list<std::string> params) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    return checked(PQexecPrepared(conn_.get(), name, static_cast<int>(values.size()), values.data(), nullptr, nullptr, 0));
  }

  // COPY table FROM STDIN with rows in text format (tab-separated, newline-terminated).
  void copy(const std::string& table, const std::string& rows) {
    checked(PQexec(conn_.get(), ("COPY " + table + " FROM STDIN").c_str()), PGRES_COPY_IN);
    if (PQputCopyData(conn_.get(), rows.data(), static_cast<int>(rows.size())) != 1 || PQputCopyEnd(conn_.get(), nullptr) != 1)
      throw std::runtime_error(std::string("postgres COPY: ") + PQerrorMessage(conn_.get()));
    checked(PQgetResult(conn_.get()));
    while (PGresult* extra = PQgetResult(conn_.get())) PQclear(extra);
  }

 private:
  Result checked(PGresult* raw, ExecStatusType expected = PGRES_COMMAND_OK) {
    Result r(raw);
    const ExecStatusType s = PQresultStatus(raw);
    if (s != expected && s != PGRES_TUPLES_OK)
      throw std::runtime_error(std::string("postgres: ") + PQerrorMessage(conn_.get()));
    return r;
  }

  struct Finish {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
  };
  std::unique_ptr<PGconn, Finish> conn_;
};

inline std::int64_t int64(const Result& r, int row, int col) { return std::strtoll(PQgetvalue(r.get(), row, col), nullptr, 10); }
inline double real(const Result& r, int row, int col) { return std::strtod(PQgetvalue(r.get(), row, col), nullptr); }
inline std::string text(const Result& r, int row, int col) { return PQgetvalue(r.get(), row, col); }

}  // namespace pg

class PostgresCatalog final : public Database {
 public:
  PostgresCatalog(std::string conninfo, const Shape& shape, const Progress& progress) : conninfo_(std::move(conninfo)) {
    pg::Connection db(conninfo_);
    if (!holds(db, shape)) generate(db, shape, progress);
  }

  std::unique_ptr<Session> session() override { return std::make_unique<PgSession>(*this); }
  std::string describe() const override { return "PostgreSQL (" + conninfo_ + ")"; }

 private:
  class PgSession final : public Session {
   public:
    explicit PgSession(PostgresCatalog& owner) : owner_(owner), db_(owner.conninfo_) {
      db_.prepare("product",
                  "SELECT p.id, p.name, p.version, c.id, c.name, pr.amount, "
                  "  (SELECT COALESCE(SUM(quantity), 0) FROM stock WHERE product_id = p.id), "
                  "  (SELECT COALESCE(string_agg(url, ' ' ORDER BY position), '') FROM images WHERE product_id = p.id) "
                  "FROM products p JOIN categories c ON c.id = p.category_id JOIN prices pr ON pr.product_id = p.id "
                  "WHERE p.id = $1");
      db_.prepare("summary",
                  "WITH items AS (SELECT pr.amount, (SELECT SUM(quantity) FROM stock WHERE product_id = p.id) AS qty "
                  "  FROM products p JOIN prices pr ON pr.product_id = p.id WHERE p.category_id = $1) "
                  "SELECT c.id, c.name, COUNT(items.amount), COALESCE(SUM(CASE WHEN items.qty > 0 THEN 1 ELSE 0 END), 0), "
                  "  COALESCE(MIN(items.amount), 0), COALESCE(AVG(items.amount), 0), COALESCE(MAX(items.amount), 0) "
                  "FROM categories c LEFT JOIN items ON true WHERE c.id = $1 GROUP BY c.id, c.name");
      db_.prepare("cheapest",
                  "SELECT p.id, p.name, pr.amount FROM products p JOIN prices pr ON pr.product_id = p.id "
                  "WHERE p.category_id = $1 AND (SELECT SUM(quantity) FROM stock WHERE product_id = p.id) > 0 "
                  "ORDER BY pr.amount, p.id LIMIT 5");
      db_.prepare("set_price", "UPDATE prices SET amount = $2 WHERE product_id = $1");
      db_.prepare("bump", "UPDATE products SET version = version + 1 WHERE id = $1");
    }

    std::optional<Product> product(std::int64_t id) override {
      owner_.counted();
      return read_product(id);
    }

    std::optional<CategorySummary> category(std::int64_t id) override {
      owner_.counted();
      const pg::Result r = db_.run("summary", {std::to_string(id)});
      if (PQntuples(r.get()) == 0) return std::nullopt;
      CategorySummary s{pg::int64(r, 0, 0), pg::text(r, 0, 1), pg::int64(r, 0, 2), pg::int64(r, 0, 3),
                        pg::real(r, 0, 4),  pg::real(r, 0, 5), pg::real(r, 0, 6),  {}};
      const pg::Result c = db_.run("cheapest", {std::to_string(id)});
      for (int i = 0; i < PQntuples(c.get()); ++i) s.cheapest.push_back({pg::int64(c, i, 0), pg::text(c, i, 1), pg::real(c, i, 2)});
      return s;
    }

    Product update_price(std::int64_t id, double price) override {
      owner_.counted();
      return in_transaction([this](const char* sql) { db_.exec(sql); }, "BEGIN", [&] {
        char amount[32];
        std::snprintf(amount, sizeof amount, "%.2f", price);
        db_.run("set_price", {std::to_string(id), amount});
        db_.run("bump", {std::to_string(id)});
        std::optional<Product> p = read_product(id);
        if (!p) throw std::runtime_error("no product " + std::to_string(id));
        return std::move(*p);
      });
    }

   private:
    std::optional<Product> read_product(std::int64_t id) {
      const pg::Result r = db_.run("product", {std::to_string(id)});
      if (PQntuples(r.get()) == 0) return std::nullopt;
      Product p{pg::int64(r, 0, 0), pg::text(r, 0, 1), pg::int64(r, 0, 2), pg::int64(r, 0, 3),
                pg::text(r, 0, 4),  pg::real(r, 0, 5), pg::int64(r, 0, 6), {}};
      const std::string urls = pg::text(r, 0, 7);
      p.images = split_urls(urls);
      return p;
    }

    PostgresCatalog& owner_;
    pg::Connection db_;
  };

  static bool holds(pg::Connection& db, const Shape& shape) {
    const pg::Result r = db.exec("SELECT to_regclass('shape') IS NOT NULL");
    if (pg::text(r, 0, 0) != "t") return false;
    const pg::Result s = db.exec("SELECT products, categories, seed FROM shape");
    return PQntuples(s.get()) == 1 && pg::int64(s, 0, 0) == shape.products && pg::int64(s, 0, 1) == shape.categories &&
           pg::text(s, 0, 2) == std::to_string(shape.seed);
  }

  static void generate(pg::Connection& db, const Shape& shape, const Progress& progress) {
    db.exec(
        "DROP TABLE IF EXISTS shape, images, stock, prices, products, categories;"
        "CREATE TABLE categories (id BIGINT PRIMARY KEY, name TEXT NOT NULL);"
        "CREATE TABLE products (id BIGINT PRIMARY KEY, category_id BIGINT NOT NULL REFERENCES categories(id), "
        "  name TEXT NOT NULL, description TEXT NOT NULL, version BIGINT NOT NULL DEFAULT 1);"
        "CREATE TABLE prices (product_id BIGINT PRIMARY KEY REFERENCES products(id), amount DOUBLE PRECISION NOT NULL);"
        "CREATE TABLE stock (product_id BIGINT NOT NULL, warehouse INT NOT NULL, quantity BIGINT NOT NULL, "
        "  PRIMARY KEY (product_id, warehouse));"
        "CREATE TABLE images (product_id BIGINT NOT NULL, position INT NOT NULL, url TEXT NOT NULL, "
        "  PRIMARY KEY (product_id, position));");
    std::string categories;
    for (std::int64_t c = 1; c <= shape.categories; ++c) categories += std::to_string(c) + "\t" + category_name(c) + "\n";
    db.copy("categories", categories);
    Generator gen(shape);
    std::string products, prices, stock, images;
    auto flush = [&] {
      db.copy("products (id, category_id, name, description)", products);
      db.copy("prices", prices);
      db.copy("stock", stock);
      if (!images.empty()) db.copy("images", images);
      products.clear(), prices.clear(), stock.clear(), images.clear();
    };
    for (ProductRows r; gen.next(r);) {
      const std::string id = std::to_string(r.id);
      products += id + "\t" + std::to_string(r.category_id) + "\t" + r.name + "\t" + r.description + "\n";
      char amount[32];
      std::snprintf(amount, sizeof amount, "%.2f", r.price);
      prices += id + "\t" + amount + "\n";
      for (std::size_t w = 0; w < r.stock.size(); ++w) stock += id + "\t" + std::to_string(w) + "\t" + std::to_string(r.stock[w]) + "\n";
      for (std::size_t i = 0; i < r.images.size(); ++i) images += id + "\t" + std::to_string(i) + "\t" + r.images[i] + "\n";
      if (r.id % 5'000 == 0 || r.id == shape.products) {
        flush();
        progress(r.id, shape.products);
      }
    }
    db.exec("CREATE INDEX products_by_category ON products (category_id)");
    db.exec("CREATE TABLE shape (products BIGINT, categories BIGINT, seed TEXT)");
    db.exec("INSERT INTO shape VALUES (" + std::to_string(shape.products) + ", " + std::to_string(shape.categories) + ", '" +
            std::to_string(shape.seed) + "')");
    db.exec("ANALYZE");
  }

  std::string conninfo_;
};

}  // namespace catalog
