#pragma once
// A product like the catalog's: nested, with unicode, used across codec tests.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cachet::test {

struct Price {
  std::int64_t amount = 0;
  std::string currency;
  bool operator==(const Price&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Price, amount, currency)

struct Product {
  std::int64_t id = 0;
  std::string name;
  std::string description;
  Price price;
  std::vector<std::string> images;
  std::map<std::string, std::string> attributes;
  double rating = 0;
  bool operator==(const Product&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Product, id, name, description, price, images, attributes, rating)

// About 1 KB of JSON.
inline Product sample_product(std::int64_t id = 42) {
  Product p;
  p.id = id;
  p.name = "Ergonomic chair \xe2\x80\x94 graphite, \xe6\xa4\x85\xe5\xad\x90, \xf0\x9f\xaa\x91";
  p.description =
      "A comfortable chair made of recycled steel with a padded seat, adjustable height and a five-year "
      "warranty. Ships flat-packed; assembly takes about fifteen minutes with the included tool. Seat "
      "width 48 cm, depth 45 cm, height adjustable from 42 to 54 cm. Maximum load 120 kg.";
  p.price = {19999, "EUR"};
  for (int i = 1; i <= 6; ++i)
    p.images.push_back("https://img.example.com/products/" + std::to_string(id) + "/" + std::to_string(i) + ".jpg");
  p.attributes = {{"colour", "graphite"}, {"material", "steel"}, {"warranty", "5 years"},
                  {"brand", "Sitwell"},   {"origin", "PT"},      {"sku", "SKU-" + std::to_string(id)},
                  {"dimensions", "48 x 45 x 42-54 cm"}, {"weight", "11.5 kg"}, {"care", "wipe with a damp cloth"}};
  p.rating = 4.6;
  return p;
}

}  // namespace cachet::test
