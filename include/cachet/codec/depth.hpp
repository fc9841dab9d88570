#pragma once
// A bound on the nesting depth of stored bytes, checked before nlohmann's
// parsers see them: its MessagePack and CBOR readers recurse once per level (and
// so do the DOM's copy and from_json), so a corrupt value nested 100,000 deep
// would overflow the stack. Each check is one iterative pass over the bytes that
// throws DecodeError past `max_depth`; anything else malformed is left to the
// parser, which reports it better.
//
// Depth counts arrays and objects (maps), and CBOR tags: a scalar is 0, `[]` is
// 1, `[{}]` is 2. Every level takes at least one byte, so values of at most
// `max_depth` bytes (most cache values) are not walked at all.

#include <cachet/codec/errors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace cachet {

// The default of JsonCodec/MsgPackCodec/CborCodec's `max_depth`: far above any
// cache value's shape, far below what nlohmann's recursion can survive.
inline constexpr std::size_t default_max_depth = 256;

namespace detail {

[[noreturn]] inline void throw_too_deep(const char* format, std::size_t max_depth) {
  throw DecodeError(std::string("invalid ") + format + " value: nested deeper than " + std::to_string(max_depth) +
                    " levels (the codec's max_depth)");
}

// The end of a JSON string whose opening quote is before `p`: after the first
// quote not escaped by an odd run of backslashes; nullptr when unterminated.
inline const char* skip_json_string(const char* p, const char* end) noexcept {
  for (const char* from = p;;) {
    const auto* quote = static_cast<const char*>(std::memchr(from, '"', static_cast<std::size_t>(end - from)));
    if (!quote) return nullptr;
    const char* run = quote;
    while (run > from && run[-1] == '\\') --run;
    from = quote + 1;
    if ((quote - run) % 2 == 0) return from;
  }
}

// JSON: brackets outside strings (strings skipped with memchr, the bulk of a value).
inline void check_json_depth(std::string_view bytes, std::size_t max_depth) {
  if (bytes.size() <= max_depth) return;  // each level takes a byte: too short to nest too deep
  std::size_t depth = 0;
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  while (p < end) {
    const char c = *p++;
    if (c == '"') {
      if (!(p = skip_json_string(p, end))) return;  // unterminated: the parser says so
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) throw_too_deep("json", max_depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

// One item header of a binary format, as the walk below needs it.
struct Item {
  enum Kind { scalar, container, indefinite, end, invalid } kind = invalid;
  std::size_t size = 0;     // bytes to skip: the whole scalar, or a container's header
  std::uint64_t items = 0;  // a container's child items (a map's keys and values)
};

// Reads an n-byte big-endian integer at `pos`; false when the bytes run out.
inline bool read_be(std::string_view bytes, std::size_t pos, std::size_t n, std::uint64_t& out) noexcept {
  if (pos > bytes.size() || bytes.size() - pos < n) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) out = (out << 8) | static_cast<unsigned char>(bytes[pos + i]);
  return true;
}

// A header of `header` bytes at `pos` followed by `length` bytes of payload.
inline Item sized(std::string_view bytes, std::size_t pos, std::size_t header, std::uint64_t length) noexcept {
  const std::size_t left = bytes.size() - pos;
  if (left < header || left - header < length) return {};
  return {Item::scalar, header + static_cast<std::size_t>(length), 0};
}

// A container's item count, capped: each item takes a byte, so a count beyond
// the bytes left only means truncation (and no count can reach the sentinel).
inline std::uint64_t item_count(std::string_view bytes, std::uint64_t count, std::uint64_t per_item) noexcept {
  return (count < bytes.size() ? count : bytes.size()) * per_item;
}

// The marker byte, an n-byte big-endian length or count, then `extra` bytes (an ext's type).
inline Item counted(std::string_view bytes, std::size_t pos, std::size_t n, std::size_t extra, Item::Kind kind,
                    std::uint64_t per_item = 1) noexcept {
  std::uint64_t v = 0;
  if (!read_be(bytes, pos + 1, n, v)) return {};
  if (kind == Item::container) return {Item::container, 1 + n + extra, item_count(bytes, v, per_item)};
  return sized(bytes, pos, 1 + n + extra, v);
}

inline Item msgpack_item(std::string_view bytes, std::size_t pos) noexcept {
  constexpr auto data = Item::scalar, list = Item::container;
  const auto b = static_cast<unsigned char>(bytes[pos]);
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return {Item::scalar, 1, 0};
  if (b <= 0x8f) return {Item::container, 1, 2u * (b & 0x0fu)};
  if (b <= 0x9f) return {Item::container, 1, b & 0x0fu};
  if (b <= 0xbf) return sized(bytes, pos, 1, b & 0x1fu);
  switch (b) {
    case 0xc4: case 0xd9: return counted(bytes, pos, 1, 0, data);  // bin8, str8
    case 0xc5: case 0xda: return counted(bytes, pos, 2, 0, data);  // bin16, str16
    case 0xc6: case 0xdb: return counted(bytes, pos, 4, 0, data);  // bin32, str32
    case 0xc7: return counted(bytes, pos, 1, 1, data);             // ext8/16/32: length, type, data
    case 0xc8: return counted(bytes, pos, 2, 1, data);
    case 0xc9: return counted(bytes, pos, 4, 1, data);
    case 0xca: case 0xce: case 0xd2: return sized(bytes, pos, 1, 4);
    case 0xcb: case 0xcf: case 0xd3: return sized(bytes, pos, 1, 8);
    case 0xcc: case 0xd0: return sized(bytes, pos, 1, 1);
    case 0xcd: case 0xd1: return sized(bytes, pos, 1, 2);
    case 0xd4: return sized(bytes, pos, 2, 1);  // fixext: type byte, then 1..16 bytes
    case 0xd5: return sized(bytes, pos, 2, 2);
    case 0xd6: return sized(bytes, pos, 2, 4);
    case 0xd7: return sized(bytes, pos, 2, 8);
    case 0xd8: return sized(bytes, pos, 2, 16);
    case 0xdc: return counted(bytes, pos, 2, 0, list);  // array16/32, map16/32
    case 0xdd: return counted(bytes, pos, 4, 0, list);
    case 0xde: return counted(bytes, pos, 2, 0, list, 2);
    case 0xdf: return counted(bytes, pos, 4, 0, list, 2);
    default: return {};  // 0xc1: never used
  }
}

// A CBOR header's argument: the value itself below 24, else the 1/2/4/8 bytes after.
inline bool cbor_argument(std::string_view bytes, std::size_t pos, std::size_t& header, std::uint64_t& arg) noexcept {
  const unsigned info = static_cast<unsigned char>(bytes[pos]) & 0x1fu;
  if (info < 24) return header = 1, arg = info, true;
  if (info > 27) return false;
  const std::size_t n = std::size_t{1} << (info - 24);
  header = 1 + n;
  return read_be(bytes, pos + 1, n, arg);
}

// An indefinite-length byte or text string: definite chunks up to a break, skipped whole.
inline Item cbor_chunks(std::string_view bytes, std::size_t start) noexcept {
  const unsigned major = static_cast<unsigned char>(bytes[start]) >> 5;
  for (std::size_t pos = start + 1; pos < bytes.size();) {
    const auto b = static_cast<unsigned char>(bytes[pos]);
    if (b == 0xff) return {Item::scalar, pos + 1 - start, 0};
    std::size_t header = 0;
    std::uint64_t length = 0;
    if (b >> 5 != major || !cbor_argument(bytes, pos, header, length)) return {};
    const Item chunk = sized(bytes, pos, header, length);
    if (chunk.kind == Item::invalid) return {};
    pos += chunk.size;
  }
  return {};
}

inline Item cbor_item(std::string_view bytes, std::size_t pos) noexcept {
  const auto b = static_cast<unsigned char>(bytes[pos]);
  const unsigned major = b >> 5;
  if ((b & 0x1fu) == 31) {  // indefinite length, or (major 7) the break that ends one
    if (major == 2 || major == 3) return cbor_chunks(bytes, pos);
    if (major == 4 || major == 5) return {Item::indefinite, 1, 0};
    return major == 7 ? Item{Item::end, 1, 0} : Item{};
  }
  std::size_t header = 0;
  std::uint64_t arg = 0;
  if (!cbor_argument(bytes, pos, header, arg)) return {};
  switch (major) {
    case 2: case 3: return sized(bytes, pos, header, arg);
    case 4: return {Item::container, header, item_count(bytes, arg, 1)};
    case 5: return {Item::container, header, item_count(bytes, arg, 2)};
    case 6: return {Item::container, header, 1};  // a tag wraps one item: nlohmann recurses for it too
    default: return {Item::scalar, header, 0};    // integers, simple values, floats
  }
}

// Walks the items of one value with a stack of items pending per open
// container (`indefinite` for one that a break ends). Stops at the value's end
// or at the first malformed header, which the parser then reports.
template <class ReadItem>
void check_binary_depth(std::string_view bytes, std::size_t max_depth, const char* format, ReadItem read_item) {
  if (bytes.size() <= max_depth) return;  // each level takes a byte: too short to nest too deep
  constexpr std::uint64_t indefinite = UINT64_MAX;
  std::vector<std::uint64_t> pending{1};  // the top level holds one item
  std::size_t pos = 0;
  while (!pending.empty() && pos < bytes.size()) {
    if (pending.back() == 0) {
      pending.pop_back();
      continue;
    }
    const Item item = read_item(bytes, pos);
    if (item.kind == Item::invalid) return;
    pos += item.size;
    if (item.kind == Item::end) {
      if (pending.back() != indefinite) return;
      pending.pop_back();
      continue;
    }
    if (pending.back() != indefinite) --pending.back();
    if (item.kind == Item::scalar) continue;
    if (pending.size() > max_depth) throw_too_deep(format, max_depth);  // this container is level pending.size()
    pending.push_back(item.kind == Item::indefinite ? indefinite : item.items);
  }
}

inline void check_msgpack_depth(std::string_view bytes, std::size_t max_depth) {
  check_binary_depth(bytes, max_depth, "msgpack", [](auto b, auto pos) { return msgpack_item(b, pos); });
}

inline void check_cbor_depth(std::string_view bytes, std::size_t max_depth) {
  check_binary_depth(bytes, max_depth, "cbor", [](auto b, auto pos) { return cbor_item(b, pos); });
}

}  // namespace detail
}  // namespace cachet
