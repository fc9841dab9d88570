#pragma once
// Lua: now_us() is the Redis server's clock in microseconds, one clock for every
// client. Numbers that must never repeat across a loss of Redis's data (write
// versions, counter batches) start from it.

#include <string_view>

namespace cachet::detail {

inline constexpr std::string_view now_us_lua = R"lua(
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
)lua";

}  // namespace cachet::detail
