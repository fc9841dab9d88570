#pragma once
// Random tokens from OpenSSL's CSPRNG, as lowercase hex: unique across threads,
// processes, forks (OpenSSL reseeds a forked child) and machines.

#include <cachet/error.hpp>

#include <openssl/rand.h>

#include <array>
#include <cstddef>
#include <string>

namespace cachet::detail {

// `n` (at most 32) random bytes in hex; a failing generator throws, never a weak token.
inline std::string random_bytes_hex(std::size_t n) {
  std::array<unsigned char, 32> bytes{};
  if (n > bytes.size() || RAND_bytes(bytes.data(), static_cast<int>(n)) != 1) throw Error("RAND_bytes failed");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(2 * n, '\0');
  for (std::size_t i = 0; i < n; ++i) out[2 * i] = hex[bytes[i] >> 4], out[2 * i + 1] = hex[bytes[i] & 0xf];
  return out;
}

}  // namespace cachet::detail
