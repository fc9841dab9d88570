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
// number), {key}:seq. With `partitions` > 1 (the default on a Redis Cluster)
// they are per partition, the partition in their hash tag
// (store/detail/queue_partitions.hpp), and an id's increments all go to one
// partition; a batch number is then the partition's number times
// detail::max_queue_partitions (1024) plus the partition: unique over partitions,
// and the same for a left-over batch whatever count the flusher runs with.
// Numbers then exceed 2^53 (not exact in a double: keep them as 64-bit integers).

#include <cachet/detail/one_slot.hpp>
#include <cachet/redis/script.hpp>
#include <cachet/redis/script_batch.hpp>
#include <cachet/store/detail/lua_clock.hpp>
#include <cachet/store/detail/queue_partitions.hpp>
#include <cachet/store/detail/wait_call.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/store/replication.hpp>

#include <charconv>
#include <climits>
#include <cstdint>
#include <optional>
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
  // `key` is the pending hash's ({ns}:wb:{queue}:counts); `partitions` how many
  // such hashes it spreads over (0: 1 on one server, 16 on a cluster), the same
  // in every process. A partition's keys must share a slot on a cluster, so
  // with one partition `key` needs a hash tag (CrossSlotError). The store's pool
  // must outlive the queue.
  RedisCounterQueue(RedisStore store, std::string key, std::size_t partitions = 1)
      : store_(store), key_(std::move(key)) {
    const std::size_t n = detail::queue_partitions(partitions, store_.pool(), key_);
    for (std::size_t i = 0; i < n; ++i) {
      const std::string k = detail::partition_key(key_, i, n);
      parts_.push_back({k, k + ":flushing", k + ":batch", k + ":seq"});
      const std::string_view keys[] = {k, parts_.back().flushing, parts_.back().batch, parts_.back().seq};
      detail::require_one_slot_on_cluster(store_.pool(), keys, "cachet::RedisCounterQueue");  // scripts and MULTI
    }
  }

  const std::string& key() const noexcept { return key_; }
  std::size_t partitions() const noexcept { return parts_.size(); }

  // Adds `by` to `id`'s pending count (HINCRBY); returns the pending count.
  // With `replication` on, WAIT follows in the same round trip: ReplicationError
  // when too few replicas confirmed it (the increment stands on the master).
  std::int64_t increment(std::string_view id, std::int64_t by, const Replication& replication = {}) {
    const Part& p = part_of(id);
    if (!replication.on())
      return on_key(p, [&](Connection& c) { return c.command({"HINCRBY", p.pending, id, by}).as_integer(); });
    check_replication(replication, store_.pool().connection_options());
    const std::string amount = std::to_string(by);
    return on_key(p, [&](Connection& c) {
      return detail::run_then_wait(c, replication, [&](ScriptBatch& b) { b.add({"HINCRBY", p.pending, id, amount}); });
    }).as_integer();
  }

  // What `id` has gained that no flush has done yet (pending + flushing), read in
  // one MULTI so that a hand-over between the two reads is not counted twice.
  // ScriptBatch::atomically throws a queued MOVED/ASK/TRYAGAIN (not EXECABORT), which run() follows.
  std::int64_t pending(std::string_view id) {
    const Part& p = part_of(id);
    return on_key(p, [&](Connection& c) {
      ScriptBatch batch(c);
      batch.add({"HGET", p.pending, id}).add({"HGET", p.flushing, id});
      const Reply both = batch.atomically();
      std::int64_t sum = 0;
      for (ReplyView r : ReplyView(both)) sum += r.is_nil() ? 0 : to_int(r.as_string());
      return sum;
    }, Idempotent::yes);
  }

  // `partition`'s flushing batch: the one a flush left undone, or the pending
  // counts renamed; nullopt when there is neither. With `replication` on, the
  // batch is returned only once enough replicas have the hand-over (else
  // ReplicationError, the batch left over on the master): a failover after the
  // database took it then hands over the same number, not the counts again
  // under a new one. The WAIT is a second round trip, sent only when there is a
  // batch; the script writes the batch number again for a left-over one, so the
  // WAIT covers a hand-over another connection made.
  std::optional<CounterBatch> hand_over(std::size_t partition = 0, const Replication& replication = {}) {
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
elseif ARGV[1] == '1' then
  local b = redis.call('GET', KEYS[3])
  if b then redis.call('SET', KEYS[3], b) end
end
return {redis.call('GET', KEYS[3]), left_over, redis.call('HGETALL', KEYS[2])}
)lua");
    check_replication(replication, store_.pool().connection_options());
    const Part& p = parts_.at(partition);
    const Reply r = on_key(p, [&](Connection& c) {
      Reply batch = script.run(c, {p.pending, p.flushing, p.batch, p.seq}, {replication.on() ? "1" : "0"});
      if (replication.on() && !batch.is_nil()) detail::wait_for_replicas(c, replication);
      return batch;
    });
    if (r.is_nil()) return std::nullopt;
    if (r[0].is_nil())  // evicted or deleted by hand: a new number could count the batch twice
      throw Error("cachet: the counts being flushed in " + p.flushing + " have no batch number (" + p.batch +
                          " is gone); flush them by hand, then delete " + p.flushing);
    CounterBatch b;
    b.number = batch_number(to_int(r[0].as_string()), partition);
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
    const bool one = parts_.size() == 1;
    const Part& p = parts_.at(one ? 0 : number % detail::max_queue_partitions);
    const std::uint64_t own = one ? number : number / detail::max_queue_partitions;  // the partition's (hand_over)
    on_key(p, [&](Connection& c) { script.run(c, {p.flushing, p.batch}, {own}); });
  }

 private:
  struct Part {
    std::string pending, flushing, batch, seq;
  };

  // A batch number from partition `p`'s own: with partitions, a multiple of the
  // largest count (not of this queue's, which another process may not share).
  std::uint64_t batch_number(std::int64_t own, std::size_t p) const {
    constexpr auto max = static_cast<std::int64_t>(detail::max_queue_partitions);
    if (own < 0 || (parts_.size() > 1 && own > (INT64_MAX - max) / max))
      throw ProtocolError("cachet: a counter batch number out of range: " + std::to_string(own));
    if (parts_.size() == 1) return static_cast<std::uint64_t>(own);
    return static_cast<std::uint64_t>(own * max + static_cast<std::int64_t>(p));
  }

  const Part& part_of(std::string_view id) const { return parts_[detail::partition_of(id, parts_.size())]; }

  // A command (or script) on a partition's keys, which share its slot.
  template <class F>
  std::invoke_result_t<F&, Connection&> on_key(const Part& p, F&& f, Idempotent again = Idempotent::no) {
    return store_.pool().run(p.pending, std::forward<F>(f), again);
  }

  static std::int64_t to_int(std::string_view s) {
    std::int64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
  }

  RedisStore store_;
  std::string key_;
  std::vector<Part> parts_;
};

}  // namespace cachet
