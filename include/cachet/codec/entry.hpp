#pragma once
// A cache entry <-> the bytes stored in Redis, in one of two formats chosen per cache:
//
// - Format::envelope: the envelope header (codec/envelope.hpp) + the codec's bytes.
//   Carries created-at, soft expiry, compute time and negative entries.
// - Format::plain: just the codec's bytes, so a JSON value stays readable by
//   `redis-cli GET` and by services in other languages sharing the keys. Nothing
//   is known about the entry but its value: it counts as fresh until Redis
//   expires it. A negative entry is stored as the marker `plain_negative_marker`.
//
// decode() throws DecodeError for bytes that are neither; the read path treats
// that as a miss.
//
// A KeyedCodec (Encrypted) is given the entry's binding: the Redis key, then
// in the envelope format the header's bytes 0-3 and 8-27 (magic, version,
// codec id, times) and 0x01, in the plain format 0x00. So neither the value,
// its key nor its metadata can be changed unnoticed, and no binding of one
// format equals one of the other.

#include <cachet/codec/concepts.hpp>
#include <cachet/codec/envelope.hpp>
#include <cachet/codec/errors.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace cachet {

enum class Format { envelope, plain };

// Not valid JSON, MessagePack or CBOR (0xC0 then trailing bytes), so no codec's
// value collides with it; only a StringCodec value of exactly these bytes would.
inline constexpr std::string_view plain_negative_marker{"\xC0\xCA\xCE" "cachet:none", 14};

template <Codec C>
class EntryCodec {
 public:
  using value_type = typename C::value_type;

  struct Decoded {
    std::optional<value_type> value;  // nullopt: a negative entry
    EntryMeta meta;
  };

  explicit EntryCodec(Format format = Format::envelope, C codec = {}) : format_(format), codec_(std::move(codec)) {}

  // `key`: the Redis key the entry is stored under (used by a KeyedCodec only).
  std::string encode(const value_type& value, const EntryMeta& meta, std::string_view key = {}) const {
    if (format_ == Format::plain) return encode_payload(value, key, nullptr);
    if constexpr (KeyedCodec<C>) {
      char h[envelope::header_size];  // the metadata the payload is bound to; the length comes after
      envelope::write_header(h, C::id, meta, 0, false);
      const std::string payload = encode_payload(value, key, h);
      return envelope::encode(C::id, meta, payload, compressed(payload));
    } else if constexpr (requires(std::string& out) { codec_.encode_to(value, out); }) {
      std::string out(envelope::header_size, '\0');  // the payload is appended, not copied
      codec_.encode_to(value, out);
      const std::string_view payload = std::string_view(out).substr(envelope::header_size);
      envelope::write_header(out.data(), C::id, meta, payload.size(), compressed(payload));
      return out;
    } else {
      const std::string payload = codec_.encode(value);
      return envelope::encode(C::id, meta, payload, compressed(payload));
    }
  }

  std::string encode_negative(const EntryMeta& meta) const {
    if (format_ == Format::plain) return std::string(plain_negative_marker);
    EntryMeta m = meta;
    m.negative = true;
    return envelope::encode(C::id, m, {});
  }

  Decoded decode(std::string_view bytes, std::string_view key = {}) const {
    Decoded d;
    d.meta = decode_into(bytes, d.value, key);
    return d;
  }

  // decode() with the value built straight into `value` (left empty for a
  // negative entry): a batch decodes into its results without moving each value.
  EntryMeta decode_into(std::string_view bytes, std::optional<value_type>& value, std::string_view key = {}) const {
    value.reset();
    if (format_ == Format::plain) {
      EntryMeta meta;
      meta.fresh_until = EntryMeta::time_point::max();
      if (bytes == plain_negative_marker) meta.negative = true;
      else value.emplace(decode_payload(bytes, key, nullptr));
      return meta;
    }
    const envelope::View v = envelope::decode(bytes);
    if (v.codec_id != C::id)
      throw DecodeError("entry written by codec " + std::to_string(v.codec_id) + ", read with codec " +
                        std::to_string(C::id));
    if (v.compressed != compressed(v.payload)) throw DecodeError("entry: compressed flag does not match the payload");
    if (!v.meta.negative) value.emplace(decode_payload(v.payload, key, bytes.data()));
    return v.meta;
  }

  Format format() const noexcept { return format_; }
  const C& codec() const noexcept { return codec_; }

 private:
  // The codec's bytes of `value`: bound to `key` and `header` (nullptr: plain) for a KeyedCodec.
  std::string encode_payload(const value_type& value, [[maybe_unused]] std::string_view key,
                             [[maybe_unused]] const char* header) const {
    if constexpr (KeyedCodec<C>) return codec_.encode(value, binding(key, header));
    else return codec_.encode(value);
  }
  value_type decode_payload(std::string_view payload, [[maybe_unused]] std::string_view key,
                            [[maybe_unused]] const char* header) const {
    if constexpr (KeyedCodec<C>) return codec_.decode(payload, binding(key, header));
    else return codec_.decode(payload);
  }
  static std::string binding(std::string_view key, const char* header) {
    std::string b(key);
    if (header) b.append(header, 4).append(header + 8, 20);
    b.push_back(header ? '\1' : '\0');
    return b;
  }

  static bool compressed(std::string_view payload) noexcept {
    if constexpr (requires { C::is_compressed(payload); }) return C::is_compressed(payload);
    else return false;
  }

  Format format_;
  C codec_;
};

}  // namespace cachet
