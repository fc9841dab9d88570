#pragma once
// The demo's database, whichever engine holds it: five tables (categories,
// products, prices, stock, images), generated from a seed, and the three
// statements the request stream runs. A Session is one connection, used by one
// thread at a time; every statement it runs is counted in Database::queries.

#include "../common/random.hpp"
#include "model.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace catalog {

class Session {
 public:
  virtual ~Session() = default;
  virtual std::optional<Product> product(std::int64_t id) = 0;
  virtual std::optional<CategorySummary> category(std::int64_t id) = 0;
  // Sets the price and bumps the row version in one transaction; returns the updated product.
  virtual Product update_price(std::int64_t id, double price) = 0;
};

class Database {
 public:
  virtual ~Database() = default;
  virtual std::unique_ptr<Session> session() = 0;
  virtual std::string describe() const = 0;
  long long queries() const noexcept { return queries_.load(std::memory_order_relaxed); }

 protected:
  void counted() noexcept { queries_.fetch_add(1, std::memory_order_relaxed); }

 private:
  std::atomic<long long> queries_{0};
};

// The generated rows of one product, in the order the tables are loaded.
struct ProductRows {
  std::int64_t id = 0, category_id = 0;
  std::string name, description;
  double price = 0;
  std::array<std::int64_t, 4> stock{};  // per warehouse
  std::vector<std::string> images;
};

inline constexpr std::array<std::string_view, 12> category_names{
    "Chairs", "Lamps", "Kettles", "Backpacks", "Desks", "Speakers", "Mugs", "Blankets", "Tents", "Bikes", "Clocks", "Rugs"};

inline std::string category_name(std::int64_t id) {
  return std::string(category_names[static_cast<std::size_t>(id) % category_names.size()]) + " " + std::to_string(id);
}

// Deterministic rows: the same shape and seed give the same database everywhere.
class Generator {
 public:
  explicit Generator(const Shape& shape) : shape_(shape), rng_(shape.seed) {}

  // Products 1..shape.products in order; false when done.
  bool next(ProductRows& out) {
    static constexpr std::array<std::string_view, 8> adjectives{"Ergonomic", "Rustic", "Sleek",  "Compact",
                                                                "Durable",   "Vintage", "Smart", "Quiet"};
    if (next_id_ > shape_.products) return false;
    out.id = next_id_++;
    out.category_id = 1 + static_cast<std::int64_t>(rng_.below(static_cast<std::uint64_t>(shape_.categories)));
    const std::string_view adjective = adjectives[rng_.below(adjectives.size())];
    out.name = std::string(adjective) + " " + category_name(out.category_id) + " #" + std::to_string(out.id);
    out.description = "A " + std::string(adjective) + " thing, model " + std::to_string(rng_.next() % 100'000);
    out.price = static_cast<double>(199 + rng_.below(99'800)) / 100.0;
    for (auto& s : out.stock) s = rng_.below(4) == 0 ? 0 : static_cast<std::int64_t>(rng_.below(50));
    out.images.clear();
    for (std::uint64_t n = rng_.below(6), i = 0; i < n; ++i)
      out.images.push_back("https://img.example.com/p/" + std::to_string(out.id) + "/" + std::to_string(i) + ".jpg");
    return true;
  }

 private:
  Shape shape_;
  example::SplitMix64 rng_;
  std::int64_t next_id_ = 1;
};

// Image urls as the product query aggregates them: separated by single spaces.
inline std::vector<std::string> split_urls(const std::string& urls) {
  std::vector<std::string> out;
  for (std::size_t at = 0; at < urls.size();) {
    const std::size_t end = std::min(urls.find(' ', at), urls.size());
    out.push_back(urls.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// Runs `f` in a transaction opened by `begin`: committed if it returns, rolled
// back if it throws. `exec` runs one statement on the session's connection.
template <class Exec, class F>
auto in_transaction(Exec exec, const char* begin, F f) {
  exec(begin);
  try {
    auto result = f();
    exec("COMMIT");
    return result;
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
}

// Progress of a long step: called with (done, total) now and then.
using Progress = std::function<void(std::int64_t, std::int64_t)>;

}  // namespace catalog
