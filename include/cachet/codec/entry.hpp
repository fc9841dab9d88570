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

  std::string encode(const value_type& value, const EntryMeta& meta) const {
    if (format_ == Format::plain) return codec_.encode(value);
    if constexpr (requires(std::string& out) { codec_.encode_to(value, out); }) {
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

  Decoded decode(std::string_view bytes) const {
    if (format_ == Format::plain) {
      Decoded d;
      d.meta.fresh_until = EntryMeta::time_point::max();
      if (bytes == plain_negative_marker) d.meta.negative = true;
      else d.value.emplace(codec_.decode(bytes));
      return d;
    }
    const envelope::View v = envelope::decode(bytes);
    if (v.codec_id != C::id)
      throw DecodeError("entry written by codec " + std::to_string(v.codec_id) + ", read with codec " +
                        std::to_string(C::id));
    if (v.compressed != compressed(v.payload)) throw DecodeError("entry: compressed flag does not match the payload");
    Decoded d{std::nullopt, v.meta};
    if (!v.meta.negative) d.value.emplace(codec_.decode(v.payload));
    return d;
  }

  Format format() const noexcept { return format_; }
  const C& codec() const noexcept { return codec_; }

 private:
  static bool compressed(std::string_view payload) noexcept {
    if constexpr (requires { C::is_compressed(payload); }) return C::is_compressed(payload);
    else return false;
  }

  Format format_;
  C codec_;
};

}  // namespace cachet
