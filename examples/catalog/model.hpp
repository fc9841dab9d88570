#pragma once
// What the catalog demo caches: a product with its category, price, images and
// stock (a five-table join, article 001's product query), and a category
// summary (an aggregate over every product of the category, the expensive part
// of a product page). Both are JSON through nlohmann's ADL functions.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace catalog {

struct Product {
  std::int64_t id = 0;
  std::string name;
  std::int64_t version = 0;  // the row version: bumped by every update
  std::int64_t category_id = 0;
  std::string category;
  double price = 0;
  std::int64_t stock = 0;           // summed over warehouses
  std::vector<std::string> images;  // urls, in display order
  bool operator==(const Product&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Product, id, name, version, category_id, category, price, stock, images)

struct Listed {
  std::int64_t id = 0;
  std::string name;
  double price = 0;
  bool operator==(const Listed&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Listed, id, name, price)

struct CategorySummary {
  std::int64_t id = 0;
  std::string name;
  std::int64_t products = 0;
  std::int64_t in_stock = 0;  // products with stock > 0
  double min_price = 0, avg_price = 0, max_price = 0;
  std::vector<Listed> cheapest;  // the five cheapest products in stock
  bool operator==(const CategorySummary&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CategorySummary, id, name, products, in_stock, min_price, avg_price, max_price,
                                   cheapest)

// The generated data set's size and seed.
struct Shape {
  std::int64_t products = 100'000;
  std::int64_t categories = 100;
  std::uint64_t seed = 20240601;
};

}  // namespace catalog
