#pragma once
// Redis Cluster's key -> slot map: CRC16/XMODEM of the key's hash tag (the part
// between the first '{' and the next '}', when that part is not empty; else the
// whole key), modulo 16384. Keys of one multi-key script must share a slot.

#include <cstdint>
#include <string_view>

namespace cachet::detail {

// CRC16/XMODEM (poly 0x1021, init 0): crc16("123456789") == 0x31C3.
constexpr std::uint16_t crc16(std::string_view bytes) noexcept {
  std::uint16_t crc = 0;
  for (char ch : bytes) {
    crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(ch) << 8);
    for (int bit = 0; bit < 8; ++bit)
      crc = static_cast<std::uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}

// The part of `key` that Redis Cluster hashes.
constexpr std::string_view hash_tag(std::string_view key) noexcept {
  const auto open = key.find('{');
  if (open == std::string_view::npos) return key;
  const auto close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

constexpr std::uint16_t hash_slot(std::string_view key) noexcept { return crc16(hash_tag(key)) & 16383; }

static_assert(crc16("123456789") == 0x31C3);

}  // namespace cachet::detail
