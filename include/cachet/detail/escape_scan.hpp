#pragma once
// A key's escape scan, sixteen bytes at a time: every read builds its key from
// the id, and a byte-by-byte table test was most of an in-process hit on a
// 36-byte id. Agrees with KeyBuilder::escaped_byte (tests/keys_test.cpp checks
// every byte value at every place of a block).

#include <cstdint>
#include <cstring>

namespace cachet::detail {

// Whether any of the 16 bytes at `p` is one a key escapes: below 0x21, ':',
// '%', '{', or equal to 0x7f once bit 1 is set ('}', 0x7d, and DEL). One vector
// compare each on x86-64 and ARM (GCC and Clang vector extensions).
inline bool block_needs_escape(const char* p) noexcept {
  __extension__ typedef unsigned char Block __attribute__((vector_size(16)));
  Block v;
  std::memcpy(&v, p, sizeof v);
  const auto hits = (v <= 0x20) | (v == ':') | (v == '%') | (v == '{') | ((v | 2) == 0x7f);
  static_assert(sizeof hits == 16);
  std::uint64_t halves[2];
  std::memcpy(halves, &hits, sizeof halves);
  return (halves[0] | halves[1]) != 0;  // either half, in any byte order
}

}  // namespace cachet::detail
