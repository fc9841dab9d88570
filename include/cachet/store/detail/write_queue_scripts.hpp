#pragma once
// The scripts of RedisWriteQueue (store/write_queue.hpp), each step one atomic script:
//
// - enqueue: XADD the write to the stream, SET the cache key (joining its tag
//   sets, as Tags::set_tagged does) and record the entry in the pending hash
//   (id -> entry), after checking the queue's bound;
// - pending: the bytes of an id's queued write, for a read whose cache entry was
//   evicted or expired before the flush;
// - keep_own: a flusher claims back what it holds, so no other takes it over;
// - claim_stranded: entries no read would deliver, claimed by a flusher;
// - settle: after the database took a batch, XACK + XDEL its entries and drop
//   the pending records they still own; a cached value that a concurrent load
//   replaced with an older one is set back to the written bytes. For a
//   dead-lettered batch, the entries are copied to the dead-letter stream with
//   the error, and a cached value that is the dead write is deleted (the
//   database never got it).
//
// On a Redis Cluster whose entity keys live apart from the queue's partition
// (store/detail/queue_partitions.hpp), enqueue and settle are two steps each:
// queue_write then entity_write (which keeps the last applied stream entry
// beside the cache entry); settle_entry (every head, per node) then settle_stream.
//
// Stream entries hold the fields k (id), c (cache key), v (the cache entry's
// bytes), in that order: the scripts read the bytes as field 6.

#include <cachet/redis/script.hpp>
#include <cachet/store/detail/value_write.hpp>

#include <string>
#include <string_view>

namespace cachet::detail {

// The queue's bound (ARGV[4]: 0 none, ARGV[5]: '1' to grow past it), shared
// by the enqueue scripts: returns nil when full and not to grow; sets `over`.
inline constexpr const char* bound_lua = R"lua(
local over = 0
local limit = tonumber(ARGV[4])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then
  if ARGV[5] ~= '1' then return false end
  over = 1
end
)lua";

// KEYS: stream, pending hash, cache key, write version, tag sets... ARGV: id,
// bytes, TTL ms, bound, grow, prune sample, version TTL ms. Returns
// {entry, over the bound}, or nil when at the bound and not to grow.
inline const Script& enqueue_script() {
  static const Script script(std::string(tag_value_lua) + bump_lua() + bound_lua + R"lua(
local keep = math.max(redis.call('PTTL', KEYS[4]), tonumber(ARGV[7]))
bump(KEYS[4])  -- first: should it fail, nothing else is written
redis.call('PEXPIRE', KEYS[4], keep)
local entry = redis.call('XADD', KEYS[1], '*', 'k', ARGV[1], 'c', KEYS[3], 'v', ARGV[2])
redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
tag_value(KEYS[3], tonumber(ARGV[3]), 5, #KEYS, tonumber(ARGV[6]))
redis.call('HSET', KEYS[2], ARGV[1], entry)
return {entry, over}
)lua");
  return script;
}

// Apart, step 1 (the queue's node). KEYS: stream, pending hash. ARGV: id, cache
// key, bytes, bound, grow. Returns {entry, over the bound}, or nil as enqueue does.
inline const Script& queue_write_script() {
  static const Script script(std::string(bound_lua) + R"lua(
local entry = redis.call('XADD', KEYS[1], '*', 'k', ARGV[1], 'c', ARGV[2], 'v', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], entry)
return {entry, over}
)lua");
  return script;
}

// The key in a cache entry's slot (given its write version's key, which shares
// it) that holds the stream entry of the last write applied to the entry, apart.
inline std::string applied_entry_key(std::string_view write_version) { return std::string(write_version) + ":e"; }

// newer(a, b): whether stream entry id a ("ms-seq") is after b (nil: never applied).
inline constexpr const char* newer_lua = R"lua(
local function newer(a, b)
  if not b then return true end
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if not bms then return true end
  if #ams ~= #bms then return #ams > #bms end
  if ams ~= bms then return ams > bms end
  return tonumber(aseq) > tonumber(bseq)
end
)lua";

// Apart, step 2 (the entity's node). KEYS: cache key, write version, applied
// entry. ARGV: bytes, TTL ms, version TTL ms, stream entry, "forget". The
// version moves first, as in enqueue (a load in flight must not store the old
// row); the entry is SET only when its stream entry is newer than the last
// applied one (two writers' steps can cross: the older must not win). With
// "forget" (the queued step's outcome unknown) the entry is deleted instead.
inline const Script& entity_write_script() {
  static const Script script(bump_lua() + newer_lua + R"lua(
local keep = math.max(redis.call('PTTL', KEYS[2]), tonumber(ARGV[3]))
bump(KEYS[2])
redis.call('PEXPIRE', KEYS[2], keep)
if ARGV[5] == 'forget' then redis.call('UNLINK', KEYS[1]) return 1 end
if not newer(ARGV[4], redis.call('GET', KEYS[3])) then return 0 end
redis.call('SET', KEYS[3], ARGV[4], 'PX', keep)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
)lua");
  return script;
}

// KEYS: stream. ARGV: group, consumer, entries... Claims back, with their idle
// time set to 0, those of the entries still pending for the consumer; returns how many.
inline const Script& keep_own_script() {
  static const Script script(R"lua(
local own = {}
for i = 3, #ARGV do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) == 1 then own[#own + 1] = ARGV[i] end
end
for i = 1, #own, 1000 do
  local claim = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0'}
  for j = i, math.min(i + 999, #own) do claim[#claim + 1] = own[j] end
  claim[#claim + 1] = 'JUSTID'
  redis.call(unpack(claim))
end
return #own
)lua");
  return script;
}

// KEYS: stream. ARGV: group, consumer, count. Claims (XCLAIM FORCE) up to
// `count` entries stranded behind the group's read position (last-delivered-id)
// in no pending list: no read would ever deliver them (a transaction cut by a
// crash and replayed from the AOF, an XGROUP SETID). Costs O(1) when the group's
// pending count equals the entries up to its read position (XLEN - lag);
// otherwise (or when deletions hide the lag) reads the pending list once and
// scans those entries. Pending entries deleted from the stream can mask as many
// stranded ones in the counts, until they are acknowledged.
inline const Script& claim_stranded_script() {
  static const Script script(R"lua(
local function field(list, name)
  for i = 1, #list, 2 do if list[i] == name then return list[i + 1] end end
end
local group
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  if field(g, 'name') == ARGV[1] then group = g end
end
if not group then return {} end
local last, lag = field(group, 'last-delivered-id'), field(group, 'lag')
if lag and field(group, 'pending') == redis.call('XLEN', KEYS[1]) - lag then return {} end
local pending, from = {}, '-'
repeat
  local batch = redis.call('XPENDING', KEYS[1], ARGV[1], from, last, 1000)
  for _, p in ipairs(batch) do pending[p[1]] = true end
  if #batch > 0 then from = '(' .. batch[#batch][1] end
until #batch < 1000
local claim, limit = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0'}, tonumber(ARGV[3]) + 5
from = '-'
while #claim < limit do
  local batch = redis.call('XRANGE', KEYS[1], from, last, 'COUNT', 1000)
  for _, e in ipairs(batch) do
    if #claim < limit and not pending[e[1]] then claim[#claim + 1] = e[1] end
  end
  if #batch < 1000 then break end
  from = '(' .. batch[#batch][1]
end
if #claim == 5 then return {} end
claim[#claim + 1] = 'FORCE'
return redis.call(unpack(claim))
)lua");
  return script;
}

// KEYS: pending hash, stream. ARGV: id. The bytes of the id's queued write, or nil.
inline const Script& pending_script() {
  static const Script script(R"lua(
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then return false end
local e = redis.call('XRANGE', KEYS[2], entry, entry)
if e[1] then return e[1][2][6] end
return false
)lua");
  return script;
}

// Lua shared by the settle scripts (KEYS: stream, pending hash, dead-letter
// stream, ...; ARGV: group, "dead" or "written", error, n, n entries, then (id,
// entry) per head): bytes_of(entry), latest(h) (the head's bytes when it is its
// id's latest write, its pending record then dropped) and ack_all() (XACK +
// XDEL every entry, copied to the dead-letter stream first in dead mode).
inline constexpr const char* settle_lua = R"lua(
local stream, pending, dead = KEYS[1], KEYS[2], KEYS[3]
local group, dead_mode, err, n = ARGV[1], ARGV[2] == 'dead', ARGV[3], tonumber(ARGV[4])
local function bytes_of(entry)
  local e = redis.call('XRANGE', stream, entry, entry)
  if e[1] then return e[1][2][6] end
end
local function latest(h)
  local id, entry = ARGV[4 + n + 2 * h - 1], ARGV[4 + n + 2 * h]
  if redis.call('HGET', pending, id) ~= entry then return false end
  redis.call('HDEL', pending, id)
  return bytes_of(entry) or false
end
local function ack_all()
  for i = 5, 4 + n, 1000 do
    local ids = {unpack(ARGV, i, math.min(i + 999, 4 + n))}
    if dead_mode then
      for _, id in ipairs(ids) do
        local e = redis.call('XRANGE', stream, id, id)
        if e[1] then
          local f = e[1][2]
          redis.call('XADD', dead, '*', 'entry', id, f[1], f[2], f[3], f[4], f[5], f[6], 'error', err)
        end
      end
    end
    redis.call('XACK', stream, group, unpack(ids))
    redis.call('XDEL', stream, unpack(ids))
  end
end
)lua";

// KEYS: stream, pending hash, dead-letter stream, the heads' cache keys...
// ARGV: as settle_lua.
inline const Script& settle_script() {
  static const Script script(std::string(settle_lua) + R"lua(
for h = 1, #KEYS - 3 do
  local bytes, key = latest(h), KEYS[3 + h]
  local cached = bytes and redis.call('GET', key)
  if cached then
    if dead_mode and cached == bytes then redis.call('UNLINK', key)
    elseif not dead_mode and cached ~= bytes then redis.call('SET', key, bytes, 'KEEPTTL') end
  end
end
ack_all()
return n
)lua");
  return script;
}

// Apart, step 2 (the queue's node), after step 1. KEYS: stream, pending hash,
// dead-letter stream. ARGV: as settle_lua, with h heads. Drops the heads'
// pending records and acknowledges every entry.
inline const Script& settle_stream_script() {
  static const Script script(std::string(settle_lua) + R"lua(
for h = 1, (#ARGV - 4 - n) / 2 do latest(h) end
ack_all()
return n
)lua");
  return script;
}

// Apart, step 1 (the entity's node), before the stream is acknowledged, so that
// a failure leaves the batch pending for a retry. KEYS: cache key, applied
// entry. ARGV: the settled bytes, "dead" or "written", the settled stream entry.
// Acts only when the entry holds that write (the last applied): a later write's
// entry is left alone. A dead write's entry is deleted (the database never got
// it); a written one's is set back when it holds other bytes (an older load's).
// The bytes carry the write's tag stamps (WriteBehind on a cluster): an entry
// whose tags were invalidated since is set back stale, never made fresh.
inline const Script& settle_entry_script() {
  static const Script script(R"lua(
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
local cached = redis.call('GET', KEYS[1])
if not cached then return 0 end
if ARGV[2] == 'dead' then
  if cached == ARGV[1] then redis.call('UNLINK', KEYS[1]) return 1 end
elseif cached ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL') return 1
end
return 0
)lua");
  return script;
}

}  // namespace cachet::detail
