#pragma once
// JSON through nlohmann::json. A user type needs one to_json/from_json pair found
// by ADL (or NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE), exactly as for nlohmann itself:
//
//   struct Product { int id; std::string name; };
//   NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Product, id, name)
//   cachet::JsonCodec<Product> codec;

#include <cachet/codec/concepts.hpp>
#include <cachet/codec/errors.hpp>
#include <cachet/detail/nlohmann.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace cachet {

template <class V>
struct JsonCodec {
  using value_type = V;
  static constexpr std::uint8_t id = codec_id::json;

  std::string encode(const V& value) const {
    return detail::encode_with("json", [&] { return nlohmann::json(value).dump(); });
  }
  V decode(std::string_view bytes) const {
    return detail::decode_with<V>("json", [&] { return nlohmann::json::parse(bytes); });
  }
};

}  // namespace cachet
