#pragma once
// Write-behind counters in Redis (WriteBehindCounters in
// policy/write_behind_counters.hpp is the policy): increments go to a pending
// hash; a flush takes them over atomically as a numbered batch.
//
// hand_over() RENAMEs the pending hash to a "flushing" one and gives it a batch
// number, so increments made during a flush land in a new pending hash; done()
// deletes it once the database has it. A batch not done is handed over again,
// with the same number. Numbers follow the server's clock in microseconds (or
// the last number + 1, if larger), so a Redis that lost its data never reuses
// an applied batch's number.
//
// Keys: {key} (pending), {key}:flushing, {key}:batch (the flushing batch's
// number), {key}:seq. On a Redis Cluster they must share a slot: use HashTag::ns.

#include <cachet/detail/one_slot.hpp>
#include <cachet/redis/script.hpp>
#include <cachet/redis/script_batch.hpp>
#include <cachet/store/detail/lua_clock.hpp>
#include <cachet/store/redis_store.hpp>

#include <charconv>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cachet {

struct CounterDelta {
  std::string id;
  std::int64_t delta = 0;
};

// The counts a flush writes: `number` is its idempotency key.
struct CounterBatch {
  std::uint64_t number = 0;
  std::vector<CounterDelta> sums;
  bool left_over = false;  // a failed flush's batch, handed over again
};

class RedisCounterQueue {
 public:
  // `key` is the pending hash's ({ns}:wb:{queue}:counts). The store's pool must outlive the queue.
  // On a cluster its keys must share a slot, so `key` needs a hash tag (CrossSlotError).
  RedisCounterQueue(RedisStore store, std::string key)
      : store_(store), pending_(std::move(key)), flushing_(pending_ + ":flushing"), batch_(pending_ + ":batch"),
        seq_(pending_ + ":seq") {
    const std::string_view keys[] = {pending_, flushing_, batch_, seq_};  // its scripts and MULTI take them together
    detail::require_one_slot_on_cluster(store_.pool(), keys, "cachet::RedisCounterQueue");
  }

  const std::string& key() const noexcept { return pending_; }

  // Adds `by` to `id`'s pending count (HINCRBY); returns the pending count.
  std::int64_t increment(std::string_view id, std::int64_t by) {
    return on_key([&](Connection& c) { return c.command({"HINCRBY", pending_, id, by}).as_integer(); });
  }

  // What `id` has gained that no flush has done yet (pending + flushing), read in
  // one MULTI so that a hand-over between the two reads is not counted twice.
  // ScriptBatch::atomically throws a queued MOVED/ASK/TRYAGAIN (not EXECABORT), which run() follows.
  std::int64_t pending(std::string_view id) {
    return on_key([&](Connection& c) {
      ScriptBatch batch(c);
      batch.add({"HGET", pending_, id}).add({"HGET", flushing_, id});
      const Reply both = batch.atomically();
      std::int64_t sum = 0;
      for (ReplyView r : ReplyView(both)) sum += r.is_nil() ? 0 : to_int(r.as_string());
      return sum;
    }, Idempotent::yes);
  }

  // The flushing batch: the one a flush left undone, or the pending counts
  // renamed; nullopt when there is neither.
  std::optional<CounterBatch> hand_over() {
    static const Script script(std::string(detail::now_us_lua) + R"lua(
local left_over = redis.call('EXISTS', KEYS[2])
if left_over == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then return false end
  redis.call('RENAME', KEYS[1], KEYS[2])
  local n = redis.call('INCR', KEYS[4])
  local now = now_us()
  if n < now then
    n = now
    redis.call('SET', KEYS[4], string.format('%d', n))
  end
  redis.call('SET', KEYS[3], string.format('%d', n))
end
return {redis.call('GET', KEYS[3]), left_over, redis.call('HGETALL', KEYS[2])}
)lua");
    const std::string_view keys[] = {pending_, flushing_, batch_, seq_};
    const Reply r = on_key([&](Connection& c) { return script.run(c, keys, std::span<const std::string_view>{}); });
    if (r.is_nil()) return std::nullopt;
    CounterBatch b;
    b.number = static_cast<std::uint64_t>(to_int(r[0].as_string()));
    b.left_over = r[1].as_integer() == 1;
    const ReplyView sums = r[2];
    for (std::size_t i = 0; i + 1 < sums.size(); i += 2)
      b.sums.push_back({std::string(sums[i].as_string()), to_int(sums[i + 1].as_string())});
    return b;
  }

  // The database has batch `number`: drop it (unless another flusher already did and moved on).
  void done(std::uint64_t number) {
    static const Script script(
        "if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[1], KEYS[2]) return 1 end return 0");
    on_key([&](Connection& c) { script.run(c, {flushing_, batch_}, {number}); });
  }

 private:
  // A command (or script) on the queue's keys, which share its slot.
  template <class F>
  std::invoke_result_t<F&, Connection&> on_key(F&& f, Idempotent again = Idempotent::no) {
    return store_.pool().run(pending_, std::forward<F>(f), again);
  }

  static std::int64_t to_int(std::string_view s) {
    std::int64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
  }

  RedisStore store_;
  std::string pending_, flushing_, batch_, seq_;
};

}  // namespace cachet
