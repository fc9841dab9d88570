#pragma once
// The one script every cache value write with side conditions goes through: a
// tagged write (Tags::set_tagged), a lock holder's fenced write
// (RedisLock::write_if_held / write_and_release), a write-through's versioned
// write, or several at once (a guarded cache that tags what it loads, a
// write-through of a tagged value). In one atomic step it checks that the
// lock's token still holds and that no newer version was written, records the
// version, SETs the value with its TTL (or, for a versioned delete, UNLINKs it),
// adds the key to each tag set (pruning a few gone members, raising the set's
// TTL to the value's), and releases the lock with a PUBLISH to its waiters. Two
// scripts run one after the other would let an invalidation, a lock's
// successor, or an older writer slip in between.
//
// Versions travel as 20-digit zero-padded decimals and are compared as strings:
// Lua's numbers are doubles, exact only up to 2^53, and a nanosecond updated-at
// is past that. Signed versions are shifted by 2^63 so that order is kept.

#include <cachet/redis/connection.hpp>
#include <cachet/redis/script.hpp>

#include <charconv>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
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

// The version a write carries (write-through): refused when the version recorded
// for the key is newer; recorded otherwise, for at least `ttl`.
struct VersionCheck {
  std::string_view key;      // {ns}:wv:{value key}
  std::string_view version;  // version_text()
  std::chrono::milliseconds ttl;
  bool delete_value = false;  // record the version and UNLINK the value instead of setting it
};

template <std::integral I>
std::string version_text(I version) {
  std::uint64_t u = 0;
  if constexpr (std::is_signed_v<I>) u = static_cast<std::uint64_t>(static_cast<std::int64_t>(version)) ^ (1ULL << 63);
  else u = static_cast<std::uint64_t>(version);
  char digits[20];
  const auto n = static_cast<std::size_t>(std::to_chars(digits, digits + sizeof digits, u).ptr - digits);
  return std::string(20 - n, '0').append(digits, n);
}

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

inline const Script& value_write_script() {
  // KEYS: value, tag sets..., [lock], [version]. ARGV: bytes, TTL ms, prune sample, #tag sets,
  // token ('' without a lock), release, channel, version ('' without), version TTL ms, delete.
  static const Script script(std::string(tag_value_lua) + R"lua(
local ttl, sample, ntags = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local at, lock, version = ntags + 2, nil, nil
if ARGV[5] ~= '' then lock, at = KEYS[at], at + 1 end
if ARGV[8] ~= '' then version = KEYS[at] end
if lock and redis.call('GET', lock) ~= ARGV[5] then return 0 end
if version then
  local newest = redis.call('GET', version)
  if newest and newest > ARGV[8] then return 0 end
  redis.call('SET', version, ARGV[8], 'PX', math.max(redis.call('PTTL', version), tonumber(ARGV[9])))
end
if ARGV[10] == '1' then
  redis.call('UNLINK', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  tag_value(KEYS[1], ttl, 2, ntags + 1, sample)
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
  explicit ValueWriteCall(const ValueWrite& w, const LockCheck* lock = nullptr, const VersionCheck* version = nullptr)
      : ttl_(std::to_string(checked(w.ttl))),
        sample_(std::to_string(w.prune_sample)),
        ntags_(std::to_string(w.tag_sets.size())),
        version_ttl_(version ? std::to_string(checked(version->ttl)) : std::string()),
        numkeys_(std::to_string(w.tag_sets.size() + 1 + (lock ? 1 : 0) + (version ? 1 : 0))) {
    keys_.reserve(w.tag_sets.size() + 3);
    keys_.push_back(w.key);
    keys_.insert(keys_.end(), w.tag_sets.begin(), w.tag_sets.end());
    if (lock) keys_.push_back(lock->key);
    if (version) keys_.push_back(version->key);
    args_ = {w.bytes,
             ttl_,
             sample_,
             ntags_,
             lock ? lock->token : std::string_view{},
             lock && lock->release ? "1" : "0",
             lock ? lock->channel : std::string_view{},
             version ? version->version : std::string_view{},
             version_ttl_,
             version && version->delete_value ? "1" : "0"};
  }
  ValueWriteCall(const ValueWriteCall&) = delete;  // views its own strings
  ValueWriteCall& operator=(const ValueWriteCall&) = delete;

  // false: the lock was not held, or a newer version was written; nothing written.
  // Throws the Redis layer's errors.
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

  std::string ttl_, sample_, ntags_, version_ttl_, numkeys_;
  std::vector<std::string_view> keys_, args_;
};

}  // namespace cachet::detail
