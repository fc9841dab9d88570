#pragma once
// JSON through nlohmann::json. A user type needs one to_json/from_json pair found
// by ADL (or NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE), exactly as for nlohmann itself:
//
//   struct Product { int id; std::string name; };
//   NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Product, id, name)
//   cachet::JsonCodec<Product> codec;
//
// Bytes nested deeper than `max_depth` (codec/depth.hpp) are a DecodeError;
// raise it, e.g. JsonCodec<Product>{.max_depth = 1000}, only for values that need it.

#include <cachet/codec/concepts.hpp>
#include <cachet/codec/depth.hpp>
#include <cachet/codec/errors.hpp>
#include <cachet/codec/detail/nlohmann.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace cachet {

template <class V>
struct JsonCodec {
  static_assert(detail::assert_json_model<V>());
  using value_type = V;
  static constexpr std::uint8_t id = codec_id::json;

  std::size_t max_depth = default_max_depth;  // deepest nesting decode() accepts

  std::string encode(const V& value) const {
    return detail::encode_with("json", [&] { return nlohmann::json(value).dump(); });
  }
  V decode(std::string_view bytes) const {
    detail::check_json_depth(bytes, max_depth);
    return detail::decode_with<V>("json", [&] { return nlohmann::json::parse(bytes); });
  }
};

}  // namespace cachet
