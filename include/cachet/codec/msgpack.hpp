#pragma once
// Binary JSON-model codecs through nlohmann::json: MessagePack and CBOR. Same
// to_json/from_json customisation and `max_depth` as JsonCodec; smaller and
// faster to parse.

#include <cachet/codec/concepts.hpp>
#include <cachet/codec/depth.hpp>
#include <cachet/codec/errors.hpp>
#include <cachet/codec/detail/nlohmann.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cachet {
namespace detail {

// The two binary formats differ only in nlohmann's writer and reader, and the depth check before it.
struct MsgPackFormat {
  static constexpr const char* name = "msgpack";
  static constexpr std::uint8_t id = codec_id::msgpack;
  static void write(const nlohmann::json& j, std::string& out) { nlohmann::json::to_msgpack(j, out); }
  static nlohmann::json read(std::string_view bytes) { return nlohmann::json::from_msgpack(bytes); }
  static void check_depth(std::string_view bytes, std::size_t max) { check_msgpack_depth(bytes, max); }
};
struct CborFormat {
  static constexpr const char* name = "cbor";
  static constexpr std::uint8_t id = codec_id::cbor;
  static void write(const nlohmann::json& j, std::string& out) { nlohmann::json::to_cbor(j, out); }
  static nlohmann::json read(std::string_view bytes) { return nlohmann::json::from_cbor(bytes); }
  static void check_depth(std::string_view bytes, std::size_t max) { check_cbor_depth(bytes, max); }
};

template <class V, class Format>
struct BinaryJsonCodec {
  static_assert(assert_json_model<V>());
  using value_type = V;
  static constexpr std::uint8_t id = Format::id;

  std::size_t max_depth = default_max_depth;  // deepest nesting decode() accepts

  std::string encode(const V& value) const {
    std::string out;
    encode_to(value, out);
    return out;
  }
  // Appends the encoding to `out` (the envelope writes it after its header, uncopied).
  void encode_to(const V& value, std::string& out) const {
    encode_with(Format::name, [&] {
      Format::write(nlohmann::json(value), out);
      return 0;
    });
  }
  V decode(std::string_view bytes) const {
    Format::check_depth(bytes, max_depth);
    return decode_with<V>(Format::name, [&] { return Format::read(bytes); });
  }
};

}  // namespace detail

template <class V>
using MsgPackCodec = detail::BinaryJsonCodec<V, detail::MsgPackFormat>;

template <class V>
using CborCodec = detail::BinaryJsonCodec<V, detail::CborFormat>;

}  // namespace cachet
