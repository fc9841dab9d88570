#pragma once
// Binary JSON-model codecs through nlohmann::json: MessagePack and CBOR. Same
// to_json/from_json customisation as JsonCodec; smaller and faster to parse.

#include <cachet/codec/concepts.hpp>
#include <cachet/codec/errors.hpp>
#include <cachet/detail/nlohmann.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace cachet {

template <class V>
struct MsgPackCodec {
  using value_type = V;
  static constexpr std::uint8_t id = codec_id::msgpack;

  std::string encode(const V& value) const {
    std::string out;
    encode_to(value, out);
    return out;
  }
  // Appends the encoding to `out` (the envelope writes it after its header, uncopied).
  void encode_to(const V& value, std::string& out) const {
    detail::encode_with("msgpack", [&] {
      nlohmann::json::to_msgpack(nlohmann::json(value), out);
      return 0;
    });
  }
  V decode(std::string_view bytes) const {
    return detail::decode_with<V>("msgpack", [&] { return nlohmann::json::from_msgpack(bytes); });
  }
};

template <class V>
struct CborCodec {
  using value_type = V;
  static constexpr std::uint8_t id = codec_id::cbor;

  std::string encode(const V& value) const {
    std::string out;
    encode_to(value, out);
    return out;
  }
  // Appends the encoding to `out` (the envelope writes it after its header, uncopied).
  void encode_to(const V& value, std::string& out) const {
    detail::encode_with("cbor", [&] {
      nlohmann::json::to_cbor(nlohmann::json(value), out);
      return 0;
    });
  }
  V decode(std::string_view bytes) const {
    return detail::decode_with<V>("cbor", [&] { return nlohmann::json::from_cbor(bytes); });
  }
};

}  // namespace cachet
