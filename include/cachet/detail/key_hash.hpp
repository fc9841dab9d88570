#pragma once
// A 64-bit hash of a key for the in-process tables, inline and cheap for the
// short keys a cache uses: two 8-byte loads and two 64x64->128 multiplies for
// a key up to 16 bytes (std::hash, an out-of-line byte loop, was a tenth of an
// in-process hit). The construction is wyhash's (Wang Yi, public domain); both
// halves of the result are well mixed, as the shard (high) and slot (low) need.
// A secret drawn per process is mixed in, so that keys chosen to collide (a
// block equal to a multiplier zeroes a product) cannot be prepared in advance.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>

namespace cachet::detail {

inline std::uint64_t load_u64(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline std::uint64_t load_u32(const char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

__extension__ typedef unsigned __int128 uint128;  // g++ and clang; __extension__: not ISO, said so

// The high and low halves of a * b, folded.
inline std::uint64_t fold_multiply(std::uint64_t a, std::uint64_t b) noexcept {
  const uint128 r = static_cast<uint128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

inline std::uint64_t draw_key_hash_secret() noexcept {
  try {
    std::random_device device;
    return std::uint64_t{device()} << 32 ^ device();
  } catch (...) {  // no entropy source: the clock still varies between processes
    return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
}
// Drawn on first use, not at static initialisation: a table filled from another
// static initialiser must hash as every later lookup does (0 is never drawn).
inline std::uint64_t key_hash_secret() noexcept {
  static constinit std::atomic<std::uint64_t> secret{0};
  std::uint64_t s = secret.load(std::memory_order_relaxed);
  if (s == 0) [[unlikely]] {
    std::uint64_t drawn = draw_key_hash_secret() | 1;
    s = secret.compare_exchange_strong(s, drawn, std::memory_order_relaxed) ? drawn : s;
  }
  return s;
}

[[gnu::always_inline]] inline std::uint64_t key_hash(std::string_view key) noexcept {
  constexpr std::uint64_t k2 = 0x8ebc6af09c88c6e3ull;
  const std::uint64_t secret = key_hash_secret();
  const std::uint64_t k0 = 0xa0761d6478bd642full ^ secret, k1 = 0xe7037ed1a0b428dbull ^ secret;
  const char* p = key.data();
  const std::size_t n = key.size();
  std::uint64_t seed = k0 ^ n, a = 0, b = 0;
  if (n <= 16) {
    if (n >= 8) {
      a = load_u64(p), b = load_u64(p + n - 8);
    } else if (n >= 4) {
      a = load_u32(p), b = load_u32(p + n - 4);
    } else if (n > 0) {
      const auto byte = [&](std::size_t i) { return static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])); };
      a = byte(0) << 16 | byte(n >> 1) << 8 | byte(n - 1);
    }
  } else {
    std::size_t left = n;
    for (; left > 16; p += 16, left -= 16) seed = fold_multiply(load_u64(p) ^ k1, load_u64(p + 8) ^ seed);
    a = load_u64(p + left - 16), b = load_u64(p + left - 8);
  }
  return fold_multiply(k2 ^ n, fold_multiply(a ^ k1, b ^ seed));
}

// a == b, inline for keys of 4 to 16 bytes (two overlapping loads a side)
// where the call to memcmp was a tenth of an in-process hit.
[[gnu::always_inline]] inline bool same_key(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  if (n < 4 || n > 16) return a == b;
  const char *p = a.data(), *q = b.data();
  if (n >= 8) return ((load_u64(p) ^ load_u64(q)) | (load_u64(p + n - 8) ^ load_u64(q + n - 8))) == 0;
  return ((load_u32(p) ^ load_u32(q)) | (load_u32(p + n - 4) ^ load_u32(q + n - 4))) == 0;
}

}  // namespace cachet::detail
