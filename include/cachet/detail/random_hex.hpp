#pragma once
// Random tokens from OpenSSL's CSPRNG, as lowercase hex: unique across threads,
// processes, forks (OpenSSL reseeds a forked child) and machines.

#include <cachet/error.hpp>

#include <openssl/rand.h>

#include <array>
#include <cstddef>
#include <string>

namespace cachet::detail {

inline std::string to_hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(2 * n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 0xf];
  }
  return out;
}

// `n` (at most 32) random bytes in hex; a failing generator throws, never a weak token.
inline std::string random_bytes_hex(std::size_t n) {
  std::array<unsigned char, 32> bytes{};
  if (n > bytes.size() || RAND_bytes(bytes.data(), static_cast<int>(n)) != 1) throw Error("RAND_bytes failed");
  return to_hex(bytes.data(), n);
}

// Where a version counter or tag epoch starts when missing: 2 .. 2^48 + 1, far
// below INCR's limit, never 0 or 1, and unlikely to meet a value an old entry saw.
inline std::string random_counter_start() {
  return std::to_string(std::stoull(random_bytes_hex(6), nullptr, 16) + 2);
}

}  // namespace cachet::detail
