#pragma once
// The write-through's conditional cache write: one script compares the write's
// version with the last one written for the key ({ns}:wv:{key}) and refuses an
// older one, so of two writers racing on a key the newer value stays cached
// whichever reaches Redis last.
//
// Versions travel as 20-digit zero-padded decimals and are compared as strings:
// Lua's numbers are doubles, exact only up to 2^53, and a nanosecond updated-at
// is past that. Signed versions are shifted by 2^63 so that order is kept.

#include <cachet/redis/connection.hpp>
#include <cachet/redis/script.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace cachet::detail {

template <std::integral I>
std::string version_text(I version) {
  std::uint64_t u = 0;
  if constexpr (std::is_signed_v<I>) u = static_cast<std::uint64_t>(static_cast<std::int64_t>(version)) ^ (1ULL << 63);
  else u = static_cast<std::uint64_t>(version);
  std::string out(20, '0');
  char digits[20];
  const auto end = std::to_chars(digits, digits + sizeof digits, u).ptr;
  const auto n = static_cast<std::size_t>(end - digits);
  out.replace(20 - n, n, digits, n);
  return out;
}

// KEYS: value key, version key. ARGV: version, bytes (nullopt: delete the value),
// the value's TTL, the version key's TTL. Returns false when a newer version is cached.
inline bool write_if_newer(Connection& conn, std::string_view key, std::string_view version_key,
                           std::string_view version, const std::optional<std::string_view>& bytes,
                           std::chrono::milliseconds ttl, std::chrono::milliseconds version_ttl) {
  static const Script script(R"lua(
local current = redis.call('GET', KEYS[2])
if current and current > ARGV[1] then return 0 end
if ARGV[2] == 'set' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('UNLINK', KEYS[1])
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', math.max(redis.call('PTTL', KEYS[2]), tonumber(ARGV[5])))
return 1
)lua");
  const bool set = bytes.has_value();
  return script
             .run(conn, {key, version_key},
                  {version, set ? "set" : "del", set ? *bytes : std::string_view{}, std::max<long long>(ttl.count(), 1),
                   std::max<long long>(version_ttl.count(), 1)})
             .as_integer() == 1;
}

}  // namespace cachet::detail
