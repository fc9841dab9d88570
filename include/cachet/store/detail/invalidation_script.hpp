#pragma once
// The one script every invalidation goes through (RedisStore::invalidate, for
// Tags::invalidate and DependencyMap::invalidate_for): in one atomic step it
// deletes the members of tag sets and the sets, deletes plain keys, and bumps
// version counters and the namespace's tag epoch. Being one script, no write
// can slip in between reading a tag set and deleting it, and a load's write
// that checks the epoch (value_write.hpp) is either before it or refused.
//
// Every key is passed in KEYS except the members of the tag sets, which the
// script only learns by reading them: on a Redis Cluster they must live in the
// tag set's slot (HashTag::ns), as KeyBuilder makes them. Also the script that
// prunes a tag set (RedisStore::prune_tag_set).

#include <cachet/detail/random_hex.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/script.hpp>
#include <cachet/store/write.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cachet::detail {

// Lua: incr_from(key, start) INCRs a counter, set to `start` first when it is
// missing (random_counter_start: so one evicted and recreated does not come
// back to a value a reader saw). Tag versions and tag epochs, both designs.
inline constexpr std::string_view incr_from_lua = R"lua(
local function incr_from(key, start)
  if redis.call('EXISTS', key) == 0 then redis.call('SET', key, start) end
  return redis.call('INCR', key)
end
)lua";

inline const Script& invalidation_script() {
  // KEYS: tag sets, keys, counters, [tag epoch]. ARGV: #tag sets, #keys, the
  // epoch's start ('' without one). unpack() is limited by Lua's C stack (about
  // 8000 values): UNLINK in chunks.
  static const Script script(std::string(incr_from_lua) + R"lua(
local ntags, nkeys, last = tonumber(ARGV[1]), tonumber(ARGV[2]), #KEYS
if ARGV[3] ~= '' then incr_from(KEYS[last], ARGV[3]) last = last - 1 end
local deleted = 0
local function unlink_all(list)
  for i = 1, #list, 1000 do
    deleted = deleted + redis.call('UNLINK', unpack(list, i, math.min(i + 999, #list)))
  end
end
for i = 1, ntags do
  unlink_all(redis.call('SMEMBERS', KEYS[i]))
  redis.call('UNLINK', KEYS[i])
end
local plain = {}
for i = ntags + 1, ntags + nkeys do plain[#plain + 1] = KEYS[i] end
unlink_all(plain)
local out = {deleted}
for i = ntags + nkeys + 1, last do out[#out + 1] = redis.call('INCR', KEYS[i]) end
return out
)lua");
  return script;
}

// The script's KEYS and ARGV for one invalidation; views `t`, which must outlive it.
class InvalidationCall {
 public:
  explicit InvalidationCall(const InvalidationTargets& t)
      : ntags_(std::to_string(t.tag_sets.size())),
        nkeys_(std::to_string(t.keys.size())),
        start_(t.tag_epoch.empty() ? std::string() : random_counter_start()) {
    keys_.reserve(t.tag_sets.size() + t.keys.size() + t.counters.size() + 1);
    keys_.insert(keys_.end(), t.tag_sets.begin(), t.tag_sets.end());
    keys_.insert(keys_.end(), t.keys.begin(), t.keys.end());
    keys_.insert(keys_.end(), t.counters.begin(), t.counters.end());
    if (!t.tag_epoch.empty()) keys_.push_back(t.tag_epoch);
    numkeys_ = std::to_string(keys_.size());
  }
  InvalidationCall(const InvalidationCall&) = delete;  // views its own strings
  InvalidationCall& operator=(const InvalidationCall&) = delete;

  bool empty() const noexcept { return keys_.empty(); }

  // One round trip; throws the Redis layer's errors (a failed invalidation must not be silent).
  InvalidationResult run(Connection& conn) const {
    if (empty()) return {};
    return result(invalidation_script().run(conn, keys_, std::vector<std::string_view>{ntags_, nkeys_, start_}));
  }

  // Its KEYS: on a cluster they must share a slot (require_one_slot).
  const std::vector<std::string_view>& keys() const noexcept { return keys_; }

  // EVALSHA sha numkeys KEYS... ARGV..., for a pipeline or a transaction.
  std::vector<std::string_view> evalsha(std::string_view sha) const {
    std::vector<std::string_view> argv{"EVALSHA", sha, numkeys_};
    argv.insert(argv.end(), keys_.begin(), keys_.end());
    argv.insert(argv.end(), {ntags_, nkeys_, start_});
    return argv;
  }

  // The script's reply, read.
  static InvalidationResult result(ReplyView r) {
    InvalidationResult out;
    out.deleted = static_cast<std::size_t>(r[0].as_integer());
    for (std::size_t i = 1; i < r.size(); ++i) out.versions.push_back(static_cast<std::uint64_t>(r[i].as_integer()));
    return out;
  }

 private:
  std::string ntags_, nkeys_, start_, numkeys_;
  std::vector<std::string_view> keys_;
};

inline InvalidationResult run_invalidation(Connection& conn, const InvalidationTargets& t) {
  return InvalidationCall(t).run(conn);
}

// KEYS[1] a tag set, KEYS[2..] members to check: checked and removed in one step,
// so a member re-tagged between the SSCAN that found it and this script is never
// dropped. Returns how many were removed.
inline const Script& tag_prune_script() {
  static const Script script(R"lua(
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then removed = removed + redis.call('SREM', KEYS[1], KEYS[i]) end
end
return removed
)lua");
  return script;
}

}  // namespace cachet::detail
