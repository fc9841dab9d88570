#pragma once
// The envelope: a small, versioned binary header in front of a codec's bytes,
// carrying what the policies need to know about an entry without decoding it.
//
// Layout, version 1 (32 bytes, integers little-endian):
//
//   offset size  field
//        0    2  magic 0xCA 0xCE
//        2    1  format version (1)
//        3    1  codec id (codec/concepts.hpp)
//        4    1  flags: bit 0 compressed payload, bit 1 negative entry, bit 2 tag
//                stamps follow the header; others 0
//        5    3  reserved, 0
//        8    8  created_at, ms since the Unix epoch (int64)
//       16    8  fresh_until, ms since the Unix epoch (int64): soft expiry
//       24    4  compute time of the load, us (uint32, saturating)
//       28    4  payload length (uint32); the buffer is exactly 32 + this long
//       32    -  payload: the codec's bytes (empty for a negative entry)
//
// With bit 2 (tags on Redis Cluster, invalidation/tags.hpp), a section sits
// between the header and the payload: its length (uint32), then per tag its
// name's length (uint16), the name (its key form, KeyBuilder::safe_id), and the
// tag's version when the entry was written (uint64), at most max_stamps of them;
// the buffer is 32 + 4 + section + payload long. A reader
// older than bit 2 refuses the unknown flag: a DecodeError, so a miss.
//
// Anything else — truncated, oversized, another version, foreign bytes — throws
// DecodeError.

#include <cachet/codec/errors.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cachet {

// What the policies know about a cached entry.
struct EntryMeta {
  using time_point = std::chrono::system_clock::time_point;
  time_point created_at{};
  time_point fresh_until{};                  // after this the entry is stale (still servable)
  std::chrono::microseconds compute_time{0};  // how long the load took (XFetch)
  bool negative = false;                      // the loader found nothing
  bool stamped = false;                       // carries tag stamps: check them before serving
};

// A tag's version when an entry was written (Redis Cluster tags).
struct TagStamp {
  std::string tag;
  std::uint64_t version = 0;
  bool operator==(const TagStamp&) const = default;
};

namespace envelope {

inline constexpr std::size_t header_size = 32;
inline constexpr std::uint8_t version = 1;
inline constexpr unsigned char magic[2] = {0xCA, 0xCE};
inline constexpr std::uint8_t flag_compressed = 1u << 0;
inline constexpr std::uint8_t flag_negative = 1u << 1;
inline constexpr std::uint8_t flag_stamped = 1u << 2;
inline constexpr std::uint8_t known_flags = flag_compressed | flag_negative | flag_stamped;
// The most tag stamps an entry carries: more is refused (EncodeError) or corrupt (DecodeError).
inline constexpr std::size_t max_stamps = 1024;

struct View {
  EntryMeta meta;
  std::uint8_t codec_id = 0;
  bool compressed = false;
  std::string_view payload;  // views the decoded buffer
  std::string_view stamps;   // the stamp section (empty without bit 2): stamps_of() reads it
};

namespace detail {

inline void put_le(char* out, std::uint64_t v, std::size_t bytes) noexcept {
  for (std::size_t i = 0; i < bytes; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
inline std::uint64_t get_le(const char* in, std::size_t bytes) noexcept {
  std::uint64_t v = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&v, in, bytes);  // one load where the byte order is already the envelope's
  } else {
    for (std::size_t i = 0; i < bytes; ++i) v |= std::uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  }
  return v;
}
// Bytes 0-7 of a well-formed header, bar the codec id and the known flags:
// magic, version, no unknown flag, reserved bytes zero.
inline constexpr std::uint64_t head_mask =
    ~((std::uint64_t{0xFF} << 24) | (std::uint64_t{known_flags} << 32));
inline constexpr std::uint64_t head_expected = magic[0] | (magic[1] << 8) | (std::uint64_t{version} << 16);
// Throws the DecodeError that says what is wrong with header bytes 0-7.
inline void check_head(const char* h) {
  if (static_cast<unsigned char>(h[0]) != magic[0] || static_cast<unsigned char>(h[1]) != magic[1])
    throw DecodeError("envelope: no magic number (not written by cachet, or in plain format)");
  if (static_cast<std::uint8_t>(h[2]) != version)
    throw DecodeError("envelope: format version " + std::to_string(static_cast<unsigned char>(h[2])) +
                      ", this build reads version " + std::to_string(version));
  if (static_cast<std::uint8_t>(h[4]) & ~known_flags) throw DecodeError("envelope: unknown flags");
  if (h[5] || h[6] || h[7]) throw DecodeError("envelope: reserved bytes are not zero");
}
inline std::int64_t to_ms(EntryMeta::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
// A stored time beyond what the clock can represent is corrupt, not a crash.
// The stamp section of a buffer whose header has bit 2; DecodeError if it does not fit.
inline std::string_view stamp_section(std::string_view bytes) {
  if (bytes.size() < header_size + 4) throw DecodeError("envelope: stamped, but no stamp section");
  const std::uint64_t n = get_le(bytes.data() + header_size, 4);
  if (n > bytes.size() - header_size - 4) throw DecodeError("envelope: stamp section longer than the entry");
  return bytes.substr(header_size + 4, n);
}
inline EntryMeta::time_point from_ms(std::uint64_t ms, const char* field) {
  constexpr auto max_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              EntryMeta::time_point::max().time_since_epoch())
                              .count();
  if (ms > static_cast<std::uint64_t>(max_ms)) throw DecodeError(std::string("envelope: ") + field + " out of range");
  return EntryMeta::time_point(std::chrono::milliseconds(static_cast<std::int64_t>(ms)));
}

}  // namespace detail

// Writes the 32-byte header for a payload of `payload_size` bytes at `h`.
inline void write_header(char* h, std::uint8_t codec_id, const EntryMeta& meta, std::size_t payload_size,
                         bool compressed) {
  if (payload_size > std::numeric_limits<std::uint32_t>::max()) throw EncodeError("envelope: payload over 4 GiB");
  if (meta.negative && payload_size != 0) throw EncodeError("envelope: a negative entry has no payload");
  const auto created = detail::to_ms(meta.created_at), fresh = detail::to_ms(meta.fresh_until);
  if (created < 0 || fresh < 0) throw EncodeError("envelope: time before the Unix epoch");
  std::memset(h, 0, header_size);
  h[0] = static_cast<char>(magic[0]);
  h[1] = static_cast<char>(magic[1]);
  h[2] = static_cast<char>(version);
  h[3] = static_cast<char>(codec_id);
  h[4] = static_cast<char>((compressed ? flag_compressed : 0) | (meta.negative ? flag_negative : 0));
  detail::put_le(h + 8, static_cast<std::uint64_t>(created), 8);
  detail::put_le(h + 16, static_cast<std::uint64_t>(fresh), 8);
  const auto us = meta.compute_time.count();
  detail::put_le(h + 24, us <= 0 ? 0 : std::min<std::uint64_t>(static_cast<std::uint64_t>(us), UINT32_MAX), 4);
  detail::put_le(h + 28, payload_size, 4);
}

inline std::string encode(std::uint8_t codec_id, const EntryMeta& meta, std::string_view payload,
                          bool compressed = false) {
  std::string out(header_size + payload.size(), '\0');
  write_header(out.data(), codec_id, meta, payload.size(), compressed);
  if (!payload.empty()) std::memcpy(out.data() + header_size, payload.data(), payload.size());
  return out;
}

// Parses and checks the header; the payload is returned as a view into `bytes`.
inline View decode(std::string_view bytes) {
  if (bytes.size() < header_size)
    throw DecodeError("envelope: " + std::to_string(bytes.size()) + " bytes, shorter than the header");
  const char* h = bytes.data();
  if ((detail::get_le(h, 8) & detail::head_mask) != detail::head_expected) detail::check_head(h);  // one compare
  const auto flags = static_cast<std::uint8_t>(h[4]);
  const std::uint64_t length = detail::get_le(h + 28, 4);
  View v;
  std::size_t start = header_size;  // of the payload
  if (flags & flag_stamped) [[unlikely]] {
    v.stamps = detail::stamp_section(bytes);
    start += 4 + v.stamps.size();
  }
  if (length != bytes.size() - start)
    throw DecodeError("envelope: payload length " + std::to_string(length) + " but " +
                      std::to_string(bytes.size() - start) + " bytes follow the header");
  v.codec_id = static_cast<std::uint8_t>(h[3]);
  v.compressed = flags & flag_compressed;
  v.meta.negative = flags & flag_negative;
  v.meta.stamped = flags & flag_stamped;
  if (v.meta.negative && length != 0) throw DecodeError("envelope: negative entry with a payload");
  v.meta.created_at = detail::from_ms(detail::get_le(h + 8, 8), "created_at");
  v.meta.fresh_until = detail::from_ms(detail::get_le(h + 16, 8), "fresh_until");
  v.meta.compute_time = std::chrono::microseconds(detail::get_le(h + 24, 4));
  v.payload = bytes.substr(start);
  return v;
}

// `entry` (an envelope without stamps) with `stamps` after its header and bit 2 set.
inline std::string stamp(std::string_view entry, std::span<const TagStamp> stamps) {
  if (entry.size() < header_size || (static_cast<std::uint8_t>(entry[4]) & flag_stamped))
    throw EncodeError("envelope: only an unstamped envelope can be stamped");
  if (stamps.size() > max_stamps) throw EncodeError("envelope: over " + std::to_string(max_stamps) + " tag stamps");
  std::string section;
  for (const TagStamp& s : stamps) {
    if (s.tag.size() > UINT16_MAX) throw EncodeError("envelope: a tag over 65535 bytes");
    char n[10];
    detail::put_le(n, s.tag.size(), 2);
    section.append(n, 2).append(s.tag);
    detail::put_le(n, s.version, 8);
    section.append(n, 8);
  }
  if (section.size() > UINT32_MAX) throw EncodeError("envelope: tag stamps over 4 GiB");
  std::string out(entry.substr(0, header_size));
  out[4] = static_cast<char>(static_cast<std::uint8_t>(out[4]) | flag_stamped);
  out.resize(header_size + 4);
  detail::put_le(out.data() + header_size, section.size(), 4);
  out.append(section).append(entry.substr(header_size));
  return out;
}

// The stamps of a section (View::stamps); DecodeError if malformed.
inline std::vector<TagStamp> stamps_of(std::string_view section) {
  std::vector<TagStamp> out;
  while (!section.empty()) {
    if (out.size() == max_stamps) throw DecodeError("envelope: over " + std::to_string(max_stamps) + " tag stamps");
    if (section.size() < 2) throw DecodeError("envelope: truncated tag stamp");
    const std::size_t n = detail::get_le(section.data(), 2);
    if (section.size() < 2 + n + 8) throw DecodeError("envelope: truncated tag stamp");
    out.push_back({std::string(section.substr(2, n)), detail::get_le(section.data() + 2 + n, 8)});
    section.remove_prefix(2 + n + 8);
  }
  return out;
}

}  // namespace envelope
}  // namespace cachet
