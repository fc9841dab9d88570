#pragma once
// What the README's fragments take as given (see extract_cpp_blocks.sh): the
// application's values and its database. Declared only: the blocks are
// compiled, not linked or run.
#include <cachet/cachet.hpp>

#include <cstdint>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <string_view>

// Fragments name what a call returns without using it further; a program would.
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wunused-local-typedefs"

using namespace std::chrono_literals;

struct Product {
  std::int64_t id = 0;
  std::string name{};
  double price = 0;
  std::int64_t category = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Product, id, name, price, category)

struct Quote {
  double bid = 0;
  double ask = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Quote, bid, ask)

struct Database {
  std::optional<Product> find_product(std::string_view id);
  Product load(std::string_view id);
  std::int64_t update(std::string_view id, const Product& p);  // the row's new version
  void update(const Product& p);
  void upsert_batch(std::span<const cachet::PendingWrite<Product>> batch);
  void add_views(std::uint64_t batch, std::span<const cachet::CounterDelta> sums);
};
inline Database db;
