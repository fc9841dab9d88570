#pragma once
// The session store's Lua scripts. Every session script touches one session's
// keys only (the hash and its tombstone, which share the id's hash tag), and every
// index script one user's index: none crosses a cluster slot. Times come from the
// server's TIME, never a client's clock. A session's hash keeps its metadata under
// names starting with ':' (:created, :abs, :ver, :user), which attributes may not use.

#include <cachet/redis/script.hpp>

#include <string>

namespace cachet::detail {

// now(): the server's clock in ms. renew(key, idle): the TTL set to the idle
// window, capped by the absolute deadline; the new TTL, or 0 (deleted: past it).
inline constexpr const char* session_lua_prelude = R"lua(
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function renew(key, idle)
  local left = math.min(idle, tonumber(redis.call('HGET', key, ':abs')) - now())
  if left <= 0 then redis.call('DEL', key) return 0 end
  redis.call('PEXPIRE', key, left)
  return left
end
)lua";

// KEYS: hash, tombstone. ARGV: idle ms, absolute ms, user, then name/value pairs.
// -> creation time (ms); -1 tombstoned (ended by destroy_all between a login's
// index entry and this), -4 the id is taken.
inline constexpr const char* session_create_lua = R"lua(
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return -4 end
local t = now()
redis.call('HSET', KEYS[1], ':created', t, ':abs', t + tonumber(ARGV[2]), ':ver', 1, ':user', ARGV[3])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), tonumber(ARGV[2])))
return t
)lua";

// KEYS: hash. ARGV: idle ms, renew-after ms. -> {ttl ms, HGETALL}, or nil.
// Renews only when that would add at least renew-after to the TTL: most reads
// write nothing (idle - ttl is the time since the last renewal, an upper bound
// of the gain, so TIME is read only then).
inline constexpr const char* session_read_lua = R"lua(
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return false end
local fields = redis.call('HGETALL', KEYS[1])
local idle, after = tonumber(ARGV[1]), tonumber(ARGV[2])
if idle - ttl >= after then
  local left = math.min(idle, tonumber(redis.call('HGET', KEYS[1], ':abs')) - now())
  if left <= 0 then redis.call('DEL', KEYS[1]) return false end
  if left - ttl >= after or ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], left)
    ttl = left
  end
end
return {ttl, fields}
)lua";

// KEYS: hash, tombstone. ARGV: idle ms, expected version ('' for any), mode
// ('set', 'del', 'replace'), then names (del) or name/value pairs.
// -> the new version; -1 tombstoned, -2 missing, -3 another version.
// A write never creates the hash: a session that is gone stays gone.
inline constexpr const char* session_write_lua = R"lua(
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], ':ver') ~= ARGV[2] then return -3 end
if ARGV[3] == 'replace' then
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, 1) ~= ':' then redis.call('HDEL', KEYS[1], f) end
  end
end
if ARGV[3] == 'del' then
  for i = 4, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
else
  for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
local version = redis.call('HINCRBY', KEYS[1], ':ver', 1)
if renew(KEYS[1], tonumber(ARGV[1])) == 0 then return -2 end
return version
)lua";

// KEYS: hash, tombstone. ARGV: tombstone ms, '1' to require the user, the user.
// -> the session's user ('' when none), or nil when it was not live. Only a
// present session of another user (required) is left alone; a missing hash is
// tombstoned too: it may be a login between its index entry and its create.
inline constexpr const char* session_destroy_lua = R"lua(
local user = redis.call('HGET', KEYS[1], ':user')
if ARGV[2] == '1' and user and user ~= ARGV[3] then return false end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
if not user then return false end
redis.call('DEL', KEYS[1])
return user
)lua";

// KEYS: old hash, old tombstone, new hash, new tombstone (one hash tag).
// ARGV: tombstone ms, '1' to set the user (else '0': the user the caller read
// and indexed the new id under), the user.
// -> {previous user, absolute deadline ms}; -1 either id tombstoned (the new one:
// by destroy_all, from its index entry), -2 missing, -4 new id taken, -5 the
// user is not the one read (nothing changes: read it again).
// RENAME keeps the data and the TTL; the old id is tombstoned like a logout.
inline constexpr const char* session_regenerate_lua = R"lua(
if redis.call('EXISTS', KEYS[2], KEYS[4]) > 0 then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -4 end
local previous = redis.call('HMGET', KEYS[1], ':user', ':abs')
if ARGV[2] ~= '1' and (previous[1] or '') ~= ARGV[3] then return -5 end
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
if ARGV[2] == '1' then redis.call('HSET', KEYS[3], ':user', ARGV[3]) end
return previous
)lua";

// KEYS: a user's index (a sorted set of handles scored by an upper bound of
// their expiry). ARGV: handle, absolute ms. Prunes what is past its score.
inline constexpr const char* session_index_add_lua = R"lua(
local t = now()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return redis.call('ZCARD', KEYS[1])
)lua";

// KEYS: a user's index. ARGV: the maximum. -> the handles beyond it, oldest
// first, taken out of the index in one step (two logins at once evict the excess once).
inline constexpr const char* session_index_trim_lua = R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now())
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if excess <= 0 then return {} end
local popped, handles = redis.call('ZPOPMIN', KEYS[1], excess), {}
for i = 1, #popped, 2 do handles[#handles + 1] = popped[i] end
return handles
)lua";

// KEYS: a user's index. ARGV: absolute ms, grace ms, then handles whose
// sessions were found gone. Removes those added over `grace` ago: a younger one
// may be a login between its index entry and its session (the entry comes first).
inline constexpr const char* session_index_prune_lua = R"lua(
local oldest = now() - tonumber(ARGV[2]) + tonumber(ARGV[1])
local removed = 0
for i = 3, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) < oldest then removed = removed + redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return removed
)lua";

struct SessionScripts {
  static std::string with_prelude(const char* body) { return std::string(session_lua_prelude) + body; }
  Script create{with_prelude(session_create_lua)};
  Script read{with_prelude(session_read_lua)};
  Script write{with_prelude(session_write_lua)};
  Script destroy{session_destroy_lua};
  Script regenerate{session_regenerate_lua};
  Script index_add{with_prelude(session_index_add_lua)};
  Script index_trim{with_prelude(session_index_trim_lua)};
  Script index_prune{with_prelude(session_index_prune_lua)};

  static SessionScripts& shared() {
    static SessionScripts s;  // each script's SHA is learned once per process
    return s;
  }
};

}  // namespace cachet::detail
