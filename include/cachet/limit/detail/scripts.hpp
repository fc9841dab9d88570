#pragma once
// The limiters' Lua. Every decision reads the server's clock (TIME) and writes
// each key with its expiry in the same script, so a client killed mid-call
// leaves nothing that never expires and clients' clocks do not matter.

namespace cachet::detail {

// KEYS: one per limit. ARGV: cost, then per limit: algorithm, a, b (see LimitSpec).
// All limits are decided first; only if every one allows (and cost > 0) are
// they written, so a denied request consumes nothing. Cost 0 peeks: each limit
// is asked about a cost of 1 and nothing is written; reset_after is that of the
// state as it is (nothing taken).
// Returns {allowed, limit, remaining, retry_after_us (-1: never), reset_after_us, index (0-based)}
// of the limit that denied with the longest wait, or else of the one with the least remaining.
inline constexpr const char* rate_limit_script = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local floor, ceil = math.floor, math.ceil
local function int(x) return string.format('%d', x) end
local function ms(us) local m = ceil(us / 1000) if m < 1 then m = 1 end return int(m) end
local NEVER = -1
local peek = tonumber(ARGV[1]) == 0

local function gcra(key, T, tau, c)
  local limit = floor(tau / T)
  local v = redis.call('GET', key)
  local tat = v and tonumber(v) or now
  if tat < now then tat = now end
  local left = floor((now - (tat - tau)) / T)
  if c * T > tau then return {false, limit, left, NEVER, tat - now} end
  local new_tat = tat + c * T
  local allow_at = new_tat - tau
  if allow_at > now then return {false, limit, left, allow_at - now, tat - now} end
  return {true, limit, floor((now - allow_at) / T), 0, peek and tat - now or new_tat - now,
          function() redis.call('SET', key, int(new_tat), 'PX', ms(new_tat - now)) end}
end

local function fixed(key, limit, W, c)
  local idx = floor(now / W)
  local reset = (idx + 1) * W - now
  local v = redis.call('HMGET', key, 'w', 'n')
  local used = 0
  if v[1] and tonumber(v[1]) == idx then used = tonumber(v[2]) end
  if c > limit then return {false, limit, limit - used, NEVER, reset} end
  if used + c > limit then return {false, limit, limit - used, reset, reset} end
  return {true, limit, limit - used - c, 0, reset, function()
    redis.call('HSET', key, 'w', int(idx), 'n', int(used + c))
    redis.call('PEXPIRE', key, ms(reset))
  end}
end

local function sliding(key, limit, W, c)
  local idx = floor(now / W)
  local to_end = (idx + 1) * W - now
  local v = redis.call('HMGET', key, 'w', 'cur', 'prev')
  local w, cur, prev = tonumber(v[1]), 0, 0
  if w == idx then cur, prev = tonumber(v[2]), tonumber(v[3])
  elseif w == idx - 1 then prev = tonumber(v[2]) end
  local est = prev * to_end / W + cur
  local left = floor(limit - est)
  if left < 0 then left = 0 end
  local reset = 0
  if cur > 0 then reset = to_end + W elseif prev > 0 then reset = to_end end  -- as each count slides out
  if c > limit then return {false, limit, left, NEVER, reset} end
  if est + c > limit then
    local need = est + c - limit
    local retry
    if prev > 0 and need <= prev * to_end / W then
      retry = ceil(need * W / prev)  -- the previous window's weight falls far enough in this one
    else
      local s = 0  -- next window: this window's count, weighted down as it slides out
      if cur + c > limit then s = ceil(W * (1 - (limit - c) / cur)) end
      retry = to_end + s
    end
    return {false, limit, left, retry, reset}
  end
  return {true, limit, floor(limit - est - c), 0, peek and reset or to_end + W, function()
    redis.call('HSET', key, 'w', int(idx), 'cur', int(cur + c), 'prev', int(prev))
    redis.call('PEXPIRE', key, ms(to_end + W))
  end}
end

local function bucket(key, cap, T, c)
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = cap
  if v[1] then tokens = math.min(cap, tonumber(v[1]) + (now - tonumber(v[2])) / T) end
  local full_in = ceil((cap - tokens) * T)
  if c > cap then return {false, cap, floor(tokens), NEVER, full_in} end
  if tokens < c then return {false, cap, floor(tokens), ceil((c - tokens) * T), full_in} end
  local after = tokens - c
  return {true, cap, floor(after), 0, peek and full_in or ceil((cap - after) * T), function()
    redis.call('HSET', key, 'tokens', string.format('%.17g', after), 'ts', int(now))
    redis.call('PEXPIRE', key, ms((cap - after) * T))
  end}
end

local algorithms = {gcra, fixed, sliding, bucket}
local cost = tonumber(ARGV[1])
local c = cost
if cost == 0 then c = 1 end
local all, pick = true, nil
local decided = {}
for i = 1, #KEYS do
  local b = 2 + (i - 1) * 3
  local r = algorithms[tonumber(ARGV[b])](KEYS[i], tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), c)
  if r[3] < 0 then r[3] = 0 end
  if cost == 0 and r[1] then r[3] = r[3] + 1 end
  r[7] = i - 1
  decided[i] = r
  if not r[1] then
    if all or pick[4] ~= NEVER and (r[4] == NEVER or r[4] > pick[4]) then pick = r end
    all = false
  elseif all and (pick == nil or r[3] < pick[3]) then pick = r end
end
if all and cost > 0 then for i = 1, #decided do decided[i][6]() end end
return {all and 1 or 0, pick[2], pick[3], pick[4], ceil(pick[5]), pick[7]}
)lua";

// KEYS[1]: a sorted set of lease tokens scored by expiry (µs). ARGV: limit, lease_us, token.
// Expired leases are pruned first; the key expires with its last lease.
// Returns {acquired, limit, remaining, retry_after_us (the first lease's expiry), reset_after_us}.
inline constexpr const char* concurrency_acquire_script = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key, limit, lease = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local function int(x) return string.format('%d', x) end
redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now))
local n = redis.call('ZCARD', key)
if n >= limit then
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  return {0, limit, 0, tonumber(first[2]) - now, tonumber(last[2]) - now}
end
redis.call('ZADD', key, int(now + lease), ARGV[3])
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
local until_last = tonumber(last[2]) - now
redis.call('PEXPIRE', key, int(math.ceil(until_last / 1000)))
return {1, limit, limit - n - 1, 0, until_last}
)lua";

}  // namespace cachet::detail
