#pragma once
// The one script every cache value write with side conditions goes through: a
// tagged write (Tags::set_tagged), a lock holder's fenced write
// (RedisStore::write with a LockCheck), a write-through's versioned
// write, or several at once (a guarded cache that tags what it loads, a
// write-through of a tagged value). In one atomic step it checks that the
// lock's token still holds, that no newer version was written and (a tagged
// load) that no tag invalidation ran since the load began, records the
// version, SETs the value with its TTL (or, for a versioned delete, UNLINKs it),
// adds the key to each tag set (pruning a few gone members, raising the set's
// TTL to the value's), and releases the lock with a PUBLISH to its waiters. Two
// scripts run one after the other would let an invalidation, a lock's
// successor, or an older writer slip in between.
//
// Versions travel as 20-digit zero-padded decimals and are compared as strings:
// Lua's numbers are doubles, exact only up to 2^53, and a nanosecond updated-at
// is past that. Signed versions are shifted by 2^63 so that order is kept.

#include <cachet/detail/one_slot.hpp>
#include <cachet/store/detail/lua_clock.hpp>
#include <cachet/store/detail/wait_call.hpp>
#include <cachet/store/replication.hpp>
#include <cachet/store/write.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/pipeline.hpp>
#include <cachet/redis/pipeline_by_node.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/script.hpp>
#include <cachet/redis/script_batch.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace cachet::detail {

// Lua: tag_value(key, ttl, first, last, sample) adds `key` to the tag sets
// KEYS[first..last], first removing up to `sample` random members whose keys are
// gone. A set's TTL only grows (PTTL is -1 for a new set), so it outlives every
// member. Shared by the scripts that write tagged values.
inline constexpr std::string_view tag_value_lua = R"lua(
local function tag_value(key, ttl, first, last, sample)
  for i = first, last do
    local set = KEYS[i]
    if sample > 0 then
      for _, member in ipairs(redis.call('SRANDMEMBER', set, sample)) do
        if redis.call('EXISTS', member) == 0 then redis.call('SREM', set, member) end
      end
    end
    redis.call('SADD', set, key)
    if redis.call('PTTL', set) < ttl then redis.call('PEXPIRE', set, ttl) end
  end
end
)lua";

// Lua: bump(key) moves an unversioned write version on: INCR, or, when the key
// is gone (expired), a start from the server's clock in microseconds, so that
// a counter never repeats a value a load running meanwhile may have read.
inline const std::string& bump_lua() {
  static const std::string lua = std::string(now_us_lua) + R"lua(
local function bump(key)
  if redis.call('EXISTS', key) == 1 then
    redis.call('INCR', key)
  else
    redis.call('SET', key, string.format('%d', now_us()))
  end
end
)lua";
  return lua;
}

inline const Script& value_write_script() {
  // KEYS: value, tag sets..., [lock], [version], [watch], [tag epoch]. ARGV: bytes, TTL ms,
  // prune sample, #tag sets, token ('' without a lock), release, channel, version ('' without),
  // version TTL ms, delete, watch ('' without, '0' expect absent, '1' expect ARGV[12]), seen,
  // only if absent ('1'), tag epoch ('1' with), the epoch seen ('': absent).
  // Returns 1 written, 0 the lock was lost, -1 superseded, -2 superseded because
  // the tag epoch moved (the lock released for both).
  static const Script script(std::string(tag_value_lua) + bump_lua() + R"lua(
local ttl, sample, ntags = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local at, lock, version, watch, epoch = ntags + 2, nil, nil, nil, nil
if ARGV[5] ~= '' then lock, at = KEYS[at], at + 1 end
if ARGV[8] ~= '' then version, at = KEYS[at], at + 1 end
if ARGV[11] ~= '' then watch, at = KEYS[at], at + 1 end
if ARGV[14] == '1' then epoch = KEYS[at] end
local function release()
  if lock and ARGV[6] == '1' then
    redis.call('DEL', lock)
    if ARGV[7] ~= '' then redis.call('PUBLISH', ARGV[7], lock) end
  end
end
if lock and redis.call('GET', lock) ~= ARGV[5] then return 0 end
if ARGV[13] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then release() return -1 end
if watch then
  local now = redis.call('GET', watch)
  if (ARGV[11] == '0' and now) or (ARGV[11] == '1' and now ~= ARGV[12]) then release() return -1 end
end
if epoch and (redis.call('GET', epoch) or '') ~= ARGV[15] then release() return -2 end
if version then
  local keep = math.max(redis.call('PTTL', version), tonumber(ARGV[9]))
  if ARGV[8] == '+' then
    bump(version)
  else
    local newest = redis.call('GET', version)
    if newest and newest > ARGV[8] then release() return -1 end
    redis.call('SET', version, ARGV[8])
  end
  redis.call('PEXPIRE', version, keep)
end
if ARGV[10] == '1' then
  redis.call('UNLINK', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  tag_value(KEYS[1], ttl, 2, ntags + 1, sample)
end
release()
return 1
)lua");
  return script;
}

// The script's KEYS and ARGV for one write (its invalidation aside); views `w`
// and what it points to, which must outlive it.
class ValueWriteCall {
 public:
  explicit ValueWriteCall(const StoreWrite& w)
      : ttl_(std::to_string(checked(w.ttl))),
        sample_(std::to_string(w.prune_sample)),
        ntags_(std::to_string(w.tag_sets.size())),
        version_ttl_(w.version_check ? std::to_string(checked(w.version_check->ttl)) : std::string()) {
    const LockCheck* lock = w.lock_check;
    const VersionCheck* version = w.version_check;
    keys_.reserve(w.tag_sets.size() + 5);
    keys_.push_back(w.key);
    keys_.insert(keys_.end(), w.tag_sets.begin(), w.tag_sets.end());
    if (lock) keys_.push_back(lock->key);
    if (version) keys_.push_back(version->key);
    if (!w.watch.empty()) keys_.push_back(w.watch);
    if (!w.tag_epoch.empty()) keys_.push_back(w.tag_epoch);
    numkeys_ = std::to_string(keys_.size());
    args_ = {w.bytes,
             ttl_,
             sample_,
             ntags_,
             lock ? lock->token : std::string_view{},
             lock && lock->release ? "1" : "0",
             lock ? lock->channel : std::string_view{},
             version ? version->version : std::string_view{},
             version_ttl_,
             version && version->delete_value ? "1" : "0",
             w.watch.empty() ? "" : (w.seen ? "1" : "0"),
             w.seen ? *w.seen : std::string_view{},
             w.only_if_absent ? "1" : "0",
             w.tag_epoch.empty() ? "" : "1",
             w.epoch_seen};
  }
  ValueWriteCall(const ValueWriteCall&) = delete;  // views its own strings
  ValueWriteCall& operator=(const ValueWriteCall&) = delete;

  // Throws the Redis layer's errors.
  WriteResult run(Connection& conn) const { return result(value_write_script().run(conn, keys_, args_)); }

  static WriteResult result(ReplyView r) {
    const long long n = r.as_integer();
    return n == 1 ? WriteResult::written : n == 0 ? WriteResult::lock_lost : WriteResult::superseded;
  }

  // Its KEYS: on a cluster they must share a slot (require_one_slot).
  const std::vector<std::string_view>& keys() const noexcept { return keys_; }

  // EVALSHA sha numkeys KEYS... ARGV..., for a pipeline.
  std::vector<std::string_view> evalsha(std::string_view sha) const {
    std::vector<std::string_view> argv{"EVALSHA", sha, numkeys_};
    argv.insert(argv.end(), keys_.begin(), keys_.end());
    argv.insert(argv.end(), args_.begin(), args_.end());
    return argv;
  }

 private:
  static long long checked(std::chrono::milliseconds ttl) {
    if (ttl.count() <= 0) throw std::invalid_argument("cachet: a cache value written by script needs a positive TTL");
    return ttl.count();
  }

  std::string ttl_, sample_, ntags_, version_ttl_, numkeys_;
  std::vector<std::string_view> keys_, args_;
};

// The most any of `writes` asks to wait for: a batch waits once, after all of them.
inline Replication strongest(std::span<const StoreWrite> writes) {
  Replication r{.replicas = 0, .timeout = std::chrono::milliseconds(0)};
  for (const StoreWrite& w : writes)
    if (w.replication.on())
      r = {std::max(r.replicas, w.replication.replicas), std::max(r.timeout, w.replication.timeout)};
  return r;
}

// What a batch of writes sends: a plain one as SET ... PX, the others by the
// script. Writes with an invalidation are refused (std::invalid_argument): each
// is a transaction of its own. Views `writes`, which must outlive it.
class BatchedWrites {
 public:
  explicit BatchedWrites(std::span<const StoreWrite> writes)
      : writes_(writes), calls_(writes.size()), ttls_(writes.size()) {
    for (std::size_t i = 0; i < writes.size(); ++i) {
      const StoreWrite& w = writes[i];
      if (w.invalidation && !w.invalidation->empty())
        throw std::invalid_argument("cachet: a batch of writes cannot carry invalidations");
      if (w.plain()) ttls_[i] = std::to_string(std::max<long long>(w.ttl.count(), 1));
      else calls_[i] = std::make_unique<ValueWriteCall>(w);
    }
  }

  bool scripted(std::size_t i) const noexcept { return calls_[i] != nullptr; }
  const ValueWriteCall& call(std::size_t i) const noexcept { return *calls_[i]; }

  // Write i's command; a scripted one as EVALSHA `sha` (ScriptBatch fills it in).
  std::vector<std::string_view> argv(std::size_t i, std::string_view sha = {}) const {
    if (scripted(i)) return calls_[i]->evalsha(sha);
    return {"SET", writes_[i].key, writes_[i].bytes, "PX", ttls_[i]};
  }

  // What the replies (one per write, in order) say.
  BatchWriteResult tally(std::vector<Reply>& replies) const {
    BatchWriteResult out;
    for (std::size_t i = 0; i < replies.size(); ++i) {
      if (replies[i].is_error()) {
        if (out.failed++ == 0) out.first_error = std::move(replies[i]).error_message();
      } else if (scripted(i)) {
        const WriteResult r = ValueWriteCall::result(replies[i]);
        out.superseded += r == WriteResult::superseded ? 1 : 0;
        out.stale_tags += replies[i].as_integer() == -2 ? 1 : 0;
        out.lock_lost += r == WriteResult::lock_lost ? 1 : 0;
      }
    }
    return out;
  }

 private:
  std::span<const StoreWrite> writes_;
  std::vector<std::unique_ptr<ValueWriteCall>> calls_;  // nullptr: a plain write
  std::vector<std::string> ttls_;                       // a plain write's TTL (empty for the others)
};

// The writes pipelined: one round trip, each its own atomic step (see
// BatchedWrites). With a write asking for replicas, one WAIT (strongest())
// follows in the same round trip, and ReplicationError is thrown, once every
// reply is read, if something was written and fewer replicas confirmed it.
inline BatchWriteResult run_value_writes(Connection& conn, std::span<const StoreWrite> writes) {
  if (writes.empty()) return {};
  const BatchedWrites batched(writes);
  const Replication replication = strongest(writes);
  const WaitCall wait(replication);
  ScriptBatch batch(conn);
  if (replication.on()) batch.then(wait.argv());
  for (std::size_t i = 0; i < writes.size(); ++i) {
    if (batched.scripted(i)) batch.add(value_write_script(), batched.argv(i));
    else batch.add(batched.argv(i));
  }
  std::vector<Reply> replies = batch.pipelined();
  const BatchWriteResult out = batched.tally(replies);
  if (replication.on() && out.failed + out.superseded + out.lock_lost < writes.size()) wait.check(batch.then_reply());
  return out;
}

// run_value_writes on Redis Cluster: one pipeline per node (pipeline_by_node), each
// script's KEYS checked to share a slot first (CrossSlotError). A write asking
// for replicas has its own WAIT after it, on its node's connection.
inline BatchWriteResult run_value_writes(Pool& pool, std::span<const StoreWrite> writes) {
  const BatchedWrites batched(writes);
  std::vector<std::string_view> keys(writes.size());
  for (std::size_t i = 0; i < writes.size(); ++i) {
    keys[i] = writes[i].key;
    if (batched.scripted(i)) require_one_slot(batched.call(i).keys(), "cachet: a tagged or conditional write");
  }
  const WaitCall wait(strongest(writes));
  const std::size_t per_write = strongest(writes).on() ? 2 : 1;
  const Script& script = value_write_script();
  const auto send = [&](Connection& c, std::span<const std::size_t> at, bool eval) {
    const std::string_view body = eval ? std::string_view(script.source()) : std::string_view(script.sha(c));
    for (std::size_t i : at) {
      std::vector<std::string_view> argv = batched.argv(i, body);
      if (eval && batched.scripted(i)) argv[0] = "EVAL";
      c.append(argv);
      if (per_write == 2) c.append(wait.argv());
    }
  };
  std::vector<Reply> replies = pipeline_by_node(pool, keys, per_write, send, Idempotent::no);
  std::vector<Reply> results;  // each write's own reply; the WAITs' after it
  for (std::size_t i = 0; i < replies.size(); i += per_write) results.push_back(std::move(replies[i]));
  const BatchWriteResult out = batched.tally(results);
  for (std::size_t i = 0; per_write == 2 && i < writes.size(); ++i)
    if (!results[i].is_error() && (!batched.scripted(i) || ValueWriteCall::result(results[i]) == WriteResult::written))
      wait.check(replies[i * 2 + 1]);
  return out;
}

}  // namespace cachet::detail
