#pragma once
// The one script every cache value write with side conditions goes through: a
// tagged write (Tags::set_tagged) and a lock holder's fenced write
// (RedisLock::write_if_held / write_and_release), or both at once when a guarded cache
// tags what it loads. In one atomic step it checks that the lock's token still
// holds, SETs the value with its TTL, adds the key to each tag set (pruning a
// few gone members, raising the set's TTL to the value's), and releases the
// lock with a PUBLISH to its waiters. Two scripts run one after the other would
// let an invalidation, or a lock's successor, slip in between.

#include <cachet/redis/connection.hpp>
#include <cachet/redis/script.hpp>

#include <chrono>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cachet::detail {

struct ValueWrite {
  std::string_view key;
  std::string_view bytes;
  std::chrono::milliseconds ttl;         // > 0
  std::span<const std::string> tag_sets = {};  // full tag-set keys
  std::size_t prune_sample = 0;          // members of each set checked (and removed if gone)
};

// The lock a fenced write checks (and, with `release`, deletes and announces).
struct LockCheck {
  std::string_view key;
  std::string_view token;
  bool release = false;
  std::string_view channel;  // PUBLISHed the lock key on release; empty: none
};

inline const Script& value_write_script() {
  // KEYS: value, tag sets..., [lock]. ARGV: bytes, TTL ms, prune sample, #tag sets, token, release, channel.
  // A set's TTL only grows (PTTL is -1 for a new set), so it outlives every member.
  static const Script script(R"lua(
local ttl, sample, ntags = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local lock = KEYS[ntags + 2]
if lock and redis.call('GET', lock) ~= ARGV[5] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 2, ntags + 1 do
  local set = KEYS[i]
  if sample > 0 then
    for _, member in ipairs(redis.call('SRANDMEMBER', set, sample)) do
      if redis.call('EXISTS', member) == 0 then redis.call('SREM', set, member) end
    end
  end
  redis.call('SADD', set, KEYS[1])
  if redis.call('PTTL', set) < ttl then redis.call('PEXPIRE', set, ttl) end
end
if lock and ARGV[6] == '1' then
  redis.call('DEL', lock)
  if ARGV[7] ~= '' then redis.call('PUBLISH', ARGV[7], lock) end
end
return 1
)lua");
  return script;
}

// The script's KEYS and ARGV for one write; views `w` and `lock`, which must outlive it.
class ValueWriteCall {
 public:
  explicit ValueWriteCall(const ValueWrite& w, const LockCheck* lock = nullptr)
      : ttl_(std::to_string(checked(w.ttl))),
        sample_(std::to_string(w.prune_sample)),
        ntags_(std::to_string(w.tag_sets.size())),
        numkeys_(std::to_string(w.tag_sets.size() + (lock ? 2 : 1))) {
    keys_.reserve(w.tag_sets.size() + 2);
    keys_.push_back(w.key);
    keys_.insert(keys_.end(), w.tag_sets.begin(), w.tag_sets.end());
    if (lock) keys_.push_back(lock->key);
    args_ = {w.bytes, ttl_, sample_, ntags_};
    if (lock) args_.insert(args_.end(), {lock->token, lock->release ? "1" : "0", lock->channel});
  }
  ValueWriteCall(const ValueWriteCall&) = delete;  // views its own strings
  ValueWriteCall& operator=(const ValueWriteCall&) = delete;

  // false: the lock was not held, nothing written. Throws the Redis layer's errors.
  bool run(Connection& conn) const { return value_write_script().run(conn, keys_, args_).as_integer() == 1; }

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

  std::string ttl_, sample_, ntags_, numkeys_;
  std::vector<std::string_view> keys_, args_;
};

}  // namespace cachet::detail
