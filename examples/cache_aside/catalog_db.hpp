#pragma once
// The example's "database": an SQLite catalog of products and their reviews,
// generated deterministically, with one deliberately expensive query, over the
// RAII wrappers of ../common/sqlite.hpp. One connection, used from one thread.

#include "../common/random.hpp"
#include "../common/sqlite.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace catalog {

using example::SplitMix64;

// What the cache stores: one product with its review aggregates.
struct Product {
  std::int64_t id = 0;
  std::string name;
  double price = 0;
  std::int64_t review_count = 0;
  double avg_rating = 0;
  bool operator==(const Product&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Product, id, name, price, review_count, avg_rating)

// The catalog: products(id, name, price) and reviews(product_id, rating, body),
// deliberately without an index on reviews.product_id.
class CatalogDb {
 public:
  // Creates and fills an in-memory database: `products` products with 10 to 30
  // reviews each (20 on average).
  explicit CatalogDb(int products) : db_(":memory:") {
    db_.exec("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL)");
    db_.exec("CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, rating INTEGER NOT NULL, "
         "body TEXT NOT NULL)");
    fill(products);
  }

  // The product with this id and its review aggregates; nullopt when there is
  // none (or the id is not a number). Every call is one query, counted.
  //
  // The expensive part: reviews has no index on product_id, so each of the two
  // correlated subqueries scans every review of every product (40,000 rows for
  // 2,000 products) to aggregate about 20 of them: a few milliseconds a call.
  // The statement is prepared per call; that costs microseconds next to the scans.
  std::optional<Product> find(std::string_view id) {
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), n);
    if (ec != std::errc{} || end != id.data() + id.size()) return std::nullopt;
    ++queries_;
    sqlite::Statement q(db_.handle(),
                "SELECT p.id, p.name, p.price, "
                "       (SELECT COUNT(*) FROM reviews AS r WHERE r.product_id = p.id), "
                "       (SELECT AVG(r.rating) FROM reviews AS r WHERE r.product_id = p.id) "
                "FROM products AS p WHERE p.id = ?1");
    q.bind(1, n);
    if (!q.step()) return std::nullopt;
    Product p{q.int64(0), q.text(1), q.real(2), q.int64(3), q.real(4)};  // AVG of no rows is NULL: 0
    return p;
  }

  // How many queries find() has run.
  long long queries() const noexcept { return queries_; }
  std::int64_t review_rows() const noexcept { return review_rows_; }

  // What find(id) must return, from the generator's own bookkeeping (no query).
  const Product& expected(std::int64_t id) const { return truth_.at(static_cast<std::size_t>(id - 1)); }

 private:
  void fill(int products) {
    static constexpr std::array<std::string_view, 8> adjectives{"Ergonomic", "Rustic", "Sleek", "Compact",
                                                                "Durable",   "Vintage", "Smart", "Quiet"};
    static constexpr std::array<std::string_view, 8> nouns{"chair", "lamp",   "kettle", "backpack",
                                                           "desk",  "speaker", "mug",   "blanket"};
    static constexpr std::array<std::string_view, 16> words{
        "great", "value", "broke", "after", "a",     "week", "would", "buy",
        "again", "solid", "build", "but",   "noisy", "fits", "well",  "recommend"};
    SplitMix64 rng(20240601);
    db_.exec("BEGIN");
    sqlite::Statement add_product(db_.handle(), "INSERT INTO products (id, name, price) VALUES (?1, ?2, ?3)");
    sqlite::Statement add_review(db_.handle(), "INSERT INTO reviews (product_id, rating, body) VALUES (?1, ?2, ?3)");
    truth_.reserve(static_cast<std::size_t>(products));
    for (std::int64_t id = 1; id <= products; ++id) {
      Product p;
      p.id = id;
      // One draw per statement: operands of + are evaluated in an unspecified order.
      const std::string_view adjective = adjectives[rng.below(adjectives.size())];
      const std::string_view noun = nouns[rng.below(nouns.size())];
      p.name = std::string(adjective) + " " + std::string(noun) + " #" + std::to_string(id);
      p.price = static_cast<double>(199 + rng.below(99'800)) / 100.0;
      add_product.bind(1, id);
      add_product.bind(2, p.name);
      add_product.bind(3, p.price);
      add_product.run();

      p.review_count = static_cast<std::int64_t>(10 + rng.below(21));
      std::int64_t rating_sum = 0;
      for (std::int64_t r = 0; r < p.review_count; ++r) {
        const auto rating = static_cast<std::int64_t>(1 + rng.below(5));
        rating_sum += rating;
        std::string body;
        while (body.size() < 160) body.append(words[rng.below(words.size())]).push_back(' ');
        add_review.bind(1, id);
        add_review.bind(2, rating);
        add_review.bind(3, body);
        add_review.run();
      }
      review_rows_ += p.review_count;
      // SQLite's AVG sums integer ratings exactly and divides once, as here.
      p.avg_rating = static_cast<double>(rating_sum) / static_cast<double>(p.review_count);
      truth_.push_back(std::move(p));
    }
    db_.exec("COMMIT");
  }

  sqlite::Database db_;
  std::vector<Product> truth_;
  std::int64_t review_rows_ = 0;
  long long queries_ = 0;
};

}  // namespace catalog
