#pragma once
// Binary JSON-model codecs through nlohmann::json: MessagePack and CBOR. Same
// to_json/from_json customisation as JsonCodec; smaller and faster to parse.

#include <cachet/codec/concepts.hpp>
#include <cachet/codec/errors.hpp>
#include <cachet/detail/nlohmann.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace cachet {
namespace detail {

// The two binary formats differ only in nlohmann's writer and reader.
struct MsgPackFormat {
  static constexpr const char* name = "msgpack";
  static constexpr std::uint8_t id = codec_id::msgpack;
  static void write(const nlohmann::json& j, std::string& out) { nlohmann::json::to_msgpack(j, out); }
  static nlohmann::json read(std::string_view bytes) { return nlohmann::json::from_msgpack(bytes); }
};
struct CborFormat {
  static constexpr const char* name = "cbor";
  static constexpr std::uint8_t id = codec_id::cbor;
  static void write(const nlohmann::json& j, std::string& out) { nlohmann::json::to_cbor(j, out); }
  static nlohmann::json read(std::string_view bytes) { return nlohmann::json::from_cbor(bytes); }
};

template <class V, class Format>
struct BinaryJsonCodec {
  using value_type = V;
  static constexpr std::uint8_t id = Format::id;

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
    return decode_with<V>(Format::name, [&] { return Format::read(bytes); });
  }
};

}  // namespace detail

template <class V>
using MsgPackCodec = detail::BinaryJsonCodec<V, detail::MsgPackFormat>;

template <class V>
using CborCodec = detail::BinaryJsonCodec<V, detail::CborFormat>;

}  // namespace cachet
