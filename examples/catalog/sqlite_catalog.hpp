#pragma once
// The catalog in an SQLite file (the embedded default). WAL mode, so the
// request threads read concurrently while an update writes; each session is
// its own connection with its statements prepared once.

#include "../common/sqlite.hpp"
#include "database.hpp"

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

namespace catalog {

class SqliteCatalog final : public Database {
 public:
  // Opens `path`, generating the data set first unless the file already holds
  // this shape (a complete earlier run's file is reused).
  SqliteCatalog(std::string path, const Shape& shape, const Progress& progress) : path_(std::move(path)) {
    sqlite::Database db(path_);
    db.exec("PRAGMA journal_mode=WAL");
    if (!holds(db, shape)) generate(db, shape, progress);
  }

  std::unique_ptr<Session> session() override { return std::make_unique<SqliteSession>(*this); }
  std::string describe() const override { return "SQLite file " + path_; }

 private:
  class SqliteSession final : public Session {
   public:
    explicit SqliteSession(SqliteCatalog& owner)
        : owner_(owner),
          db_(owner.path_),
          product_(prepare(
              "SELECT p.id, p.name, p.version, c.id, c.name, pr.amount, "
              "  (SELECT COALESCE(SUM(quantity), 0) FROM stock WHERE product_id = p.id), "
              "  (SELECT group_concat(url, ' ') FROM (SELECT url FROM images WHERE product_id = p.id ORDER BY position)) "
              "FROM products p JOIN categories c ON c.id = p.category_id JOIN prices pr ON pr.product_id = p.id "
              "WHERE p.id = ?1")),
          summary_(prepare(
              "WITH items AS (SELECT pr.amount, (SELECT SUM(quantity) FROM stock WHERE product_id = p.id) AS qty "
              "  FROM products p JOIN prices pr ON pr.product_id = p.id WHERE p.category_id = ?1) "
              "SELECT c.id, c.name, COUNT(items.amount), COALESCE(SUM(items.qty > 0), 0), MIN(items.amount), "
              "  AVG(items.amount), MAX(items.amount) FROM categories c LEFT JOIN items WHERE c.id = ?1")),
          cheapest_(prepare(
              "SELECT p.id, p.name, pr.amount FROM products p JOIN prices pr ON pr.product_id = p.id "
              "WHERE p.category_id = ?1 AND (SELECT SUM(quantity) FROM stock WHERE product_id = p.id) > 0 "
              "ORDER BY pr.amount, p.id LIMIT 5")),
          set_price_(prepare("UPDATE prices SET amount = ?2 WHERE product_id = ?1")),
          bump_(prepare("UPDATE products SET version = version + 1 WHERE id = ?1")) {}

    std::optional<Product> product(std::int64_t id) override {
      owner_.counted();
      return read_product(id);
    }

    std::optional<CategorySummary> category(std::int64_t id) override {
      owner_.counted();
      Reset r1{summary_}, r2{cheapest_};
      summary_.bind(1, id);
      if (!summary_.step()) return std::nullopt;
      CategorySummary s{summary_.int64(0), summary_.text(1), summary_.int64(2), summary_.int64(3),
                        summary_.real(4),  summary_.real(5), summary_.real(6),  {}};
      if (s.id == 0) return std::nullopt;  // no such category (the aggregate row is all NULL)
      cheapest_.bind(1, id);
      while (cheapest_.step()) s.cheapest.push_back({cheapest_.int64(0), cheapest_.text(1), cheapest_.real(2)});
      return s;
    }

    Product update_price(std::int64_t id, double price) override {
      owner_.counted();
      return in_transaction([this](const char* sql) { db_.exec(sql); }, "BEGIN IMMEDIATE", [&] {
        set_price_.bind(1, id);
        set_price_.bind(2, price);
        set_price_.run();
        bump_.bind(1, id);
        bump_.run();
        std::optional<Product> p = read_product(id);
        if (!p) throw std::runtime_error("no product " + std::to_string(id));
        return std::move(*p);
      });
    }

   private:
    struct Reset {  // a statement stepped part-way is reset on every way out
      sqlite::Statement& s;
      ~Reset() { sqlite3_reset(s.handle()); }
    };

    sqlite::Statement prepare(const char* sql) { return sqlite::Statement(db_.handle(), sql); }

    std::optional<Product> read_product(std::int64_t id) {
      Reset r{product_};
      product_.bind(1, id);
      if (!product_.step()) return std::nullopt;
      Product p{product_.int64(0), product_.text(1), product_.int64(2), product_.int64(3),
                product_.text(4),  product_.real(5), product_.int64(6), {}};
      const std::string urls = product_.text(7);
      p.images = split_urls(urls);
      return p;
    }

    SqliteCatalog& owner_;
    sqlite::Database db_;
    sqlite::Statement product_, summary_, cheapest_, set_price_, bump_;
  };

  static bool holds(sqlite::Database& db, const Shape& shape) {
    try {
      auto q = sqlite::Statement(db.handle(), "SELECT products, categories, seed FROM shape");
      return q.step() && q.int64(0) == shape.products && q.int64(1) == shape.categories &&
             static_cast<std::uint64_t>(q.int64(2)) == shape.seed;
    } catch (const sqlite::Error&) {
      return false;  // no shape table: a new or unfinished file
    }
  }

  static void generate(sqlite::Database& db, const Shape& shape, const Progress& progress) {
    db.exec(
        "DROP TABLE IF EXISTS shape; DROP TABLE IF EXISTS images; DROP TABLE IF EXISTS stock; "
        "DROP TABLE IF EXISTS prices; DROP TABLE IF EXISTS products; DROP TABLE IF EXISTS categories;"
        "CREATE TABLE categories (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
        "CREATE TABLE products (id INTEGER PRIMARY KEY, category_id INTEGER NOT NULL REFERENCES categories(id), "
        "  name TEXT NOT NULL, description TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1);"
        "CREATE TABLE prices (product_id INTEGER PRIMARY KEY REFERENCES products(id), amount REAL NOT NULL);"
        "CREATE TABLE stock (product_id INTEGER NOT NULL, warehouse INTEGER NOT NULL, quantity INTEGER NOT NULL, "
        "  PRIMARY KEY (product_id, warehouse)) WITHOUT ROWID;"
        "CREATE TABLE images (product_id INTEGER NOT NULL, position INTEGER NOT NULL, url TEXT NOT NULL, "
        "  PRIMARY KEY (product_id, position)) WITHOUT ROWID;");
    db.exec("BEGIN");
    auto category = sqlite::Statement(db.handle(), "INSERT INTO categories (id, name) VALUES (?1, ?2)");
    for (std::int64_t c = 1; c <= shape.categories; ++c) {
      category.bind(1, c);
      category.bind(2, category_name(c));
      category.run();
    }
    auto product = sqlite::Statement(db.handle(), "INSERT INTO products (id, category_id, name, description) VALUES (?1, ?2, ?3, ?4)");
    auto price = sqlite::Statement(db.handle(), "INSERT INTO prices (product_id, amount) VALUES (?1, ?2)");
    auto stock = sqlite::Statement(db.handle(), "INSERT INTO stock (product_id, warehouse, quantity) VALUES (?1, ?2, ?3)");
    auto image = sqlite::Statement(db.handle(), "INSERT INTO images (product_id, position, url) VALUES (?1, ?2, ?3)");
    Generator gen(shape);
    for (ProductRows r; gen.next(r);) {
      product.bind(1, r.id), product.bind(2, r.category_id), product.bind(3, r.name), product.bind(4, r.description);
      product.run();
      price.bind(1, r.id), price.bind(2, r.price);
      price.run();
      for (std::size_t w = 0; w < r.stock.size(); ++w) {
        stock.bind(1, r.id), stock.bind(2, static_cast<std::int64_t>(w)), stock.bind(3, r.stock[w]);
        stock.run();
      }
      for (std::size_t i = 0; i < r.images.size(); ++i) {
        image.bind(1, r.id), image.bind(2, static_cast<std::int64_t>(i)), image.bind(3, r.images[i]);
        image.run();
      }
      if (r.id % 5'000 == 0 || r.id == shape.products) progress(r.id, shape.products);
    }
    db.exec("CREATE INDEX products_by_category ON products (category_id)");
    db.exec("CREATE TABLE shape (products INTEGER, categories INTEGER, seed INTEGER)");
    auto mark = sqlite::Statement(db.handle(), "INSERT INTO shape VALUES (?1, ?2, ?3)");
    mark.bind(1, shape.products), mark.bind(2, shape.categories), mark.bind(3, static_cast<std::int64_t>(shape.seed));
    mark.run();
    db.exec("COMMIT");
    db.exec("ANALYZE");
  }

  std::string path_;
};

}  // namespace catalog
