#pragma once
// A product like the catalog's: nested, with unicode, used across codec tests.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace cachet::test {

struct Price {
  std::int64_t amount = 0;
  std::string currency;
  bool operator==(const Price&) const = default;
};

// Integer fields are read with a check: nlohmann's get<std::int64_t>() of a
// JSON float is an unchecked static_cast, undefined when the float is out of
// range (the fuzzer found it: "id": 2222...2 parses as a double). The README's
// Codecs section recommends the same to users whose cached bytes may be foreign.
template <class Int>
void read_integer(const nlohmann::json& j, const char* field, Int& out) {
  const nlohmann::json& v = j.at(field);
  if (!v.is_number_integer()) throw std::invalid_argument(std::string(field) + " is not an integer");
  const bool fits = v.is_number_unsigned() ? std::in_range<Int>(v.get<std::uint64_t>())
                                            : std::in_range<Int>(v.get<std::int64_t>());
  if (!fits) throw std::out_of_range(std::string(field) + " is out of range");
  out = v.get<Int>();
}

inline void to_json(nlohmann::json& j, const Price& p) { j = {{"amount", p.amount}, {"currency", p.currency}}; }
inline void from_json(const nlohmann::json& j, Price& p) {
  read_integer(j, "amount", p.amount);
  j.at("currency").get_to(p.currency);
}

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
inline void to_json(nlohmann::json& j, const Product& p) {
  j = {{"id", p.id},       {"name", p.name},           {"description", p.description}, {"price", p.price},
       {"images", p.images}, {"attributes", p.attributes}, {"rating", p.rating}};
}
inline void from_json(const nlohmann::json& j, Product& p) {
  read_integer(j, "id", p.id);
  j.at("name").get_to(p.name);
  j.at("description").get_to(p.description);
  j.at("price").get_to(p.price);
  j.at("images").get_to(p.images);
  j.at("attributes").get_to(p.attributes);
  j.at("rating").get_to(p.rating);
}

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
