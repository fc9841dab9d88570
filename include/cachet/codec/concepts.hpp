#pragma once
// What a codec is: value <-> bytes, with a one-byte id recorded in the envelope
// so that an entry written by another codec is recognised, not misread.
//
// Ids 0-127 are cachet's (1 string, 2 json, 3 msgpack, 4 cbor); a user's own
// codec picks one in 128-255.

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

namespace cachet {

template <class C>
concept Codec = requires(const C& codec, const typename C::value_type& value, std::string_view bytes) {
  typename C::value_type;
  { C::id } -> std::convertible_to<std::uint8_t>;
  { codec.encode(value) } -> std::same_as<std::string>;  // may throw EncodeError
  { codec.decode(bytes) } -> std::same_as<typename C::value_type>;  // throws DecodeError on bad bytes
};

template <class C, class V>
concept CodecFor = Codec<C> && std::same_as<typename C::value_type, V>;

// A codec whose bytes are bound to where they are stored (Encrypted: associated
// data). The cache passes it the entry's binding (EntryCodec: the Redis key,
// and the envelope's metadata), and calls the other form for any other codec.
template <class C>
concept KeyedCodec = Codec<C> && requires(const C& codec, const typename C::value_type& value, std::string_view bytes,
                                          std::string_view key) {
  { codec.encode(value, key) } -> std::same_as<std::string>;
  { codec.decode(bytes, key) } -> std::same_as<typename C::value_type>;
};

namespace codec_id {
inline constexpr std::uint8_t string = 1;
inline constexpr std::uint8_t json = 2;
inline constexpr std::uint8_t msgpack = 3;
inline constexpr std::uint8_t cbor = 4;
}  // namespace codec_id

}  // namespace cachet
