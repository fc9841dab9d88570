#pragma once
// The Redis tier: GET, SET ... PX, UNLINK, MGET, and set_many as one pipeline;
// the conditional, tagged, versioned and invalidating writes (StoreWrite) by
// script, and what invalidation needs (the invalidation script, INCR of
// counters, tag-set pruning, SCAN + UNLINK by pattern). Every command goes
// through the Pool's routing (run, run_grouped, for_each_master): every batch is
// one round trip on one server, one pipeline per node on Redis Cluster, where a
// multi-key script whose KEYS span slots is refused before it is sent
// (CrossSlotError). A StoreWrite asking for replicas pipelines WAIT after itself
// (store/replication.hpp). Errors are thrown as the Redis layer's types; the
// policies turn them into degradation.

#include <cachet/detail/one_slot.hpp>
#include <cachet/error.hpp>
#include <cachet/redis/pipeline.hpp>
#include <cachet/redis/pipeline_by_node.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/redirect.hpp>
#include <cachet/redis/script_batch.hpp>
#include <cachet/store/concepts.hpp>
#include <cachet/store/detail/invalidation_script.hpp>
#include <cachet/store/detail/unlink_matching.hpp>
#include <cachet/store/detail/value_write.hpp>
#include <cachet/store/detail/wait_call.hpp>
#include <cachet/store/lent_bytes.hpp>
#include <cachet/store/invalidation.hpp>
#include <cachet/store/replication.hpp>
#include <cachet/store/write.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace cachet {

class RedisStore {
 public:
  static constexpr bool conditional_writes = true;  // ConditionalStore

  // The pool must outlive the store.
  explicit RedisStore(Pool& pool) noexcept : pool_(&pool) {}

  // From the master. Counters, versions and fences are read this way: a lagging
  // replica's answer could let an invalidated entry through.
  std::optional<std::string> get(std::string_view key) {
    return read(key, [&](Connection& c) { return c.command({"GET", key}).as_optional_string(); });
  }

  // GETEX: reads and renews the TTL in one round trip (sliding expiry; Redis >= 6.2).
  std::optional<std::string> get_and_touch(std::string_view key, std::chrono::milliseconds ttl) {
    return read(key, [&](Connection& c) { return c.command({"GETEX", key, "PX", ttl_ms(ttl)}).as_optional_string(); });
  }

  // get, get_and_touch and get_many lending the reply's bytes (LendingStore):
  // the policies' reads of cache entries. get_lent and get_many_lent may be
  // answered by a replica (ClusterOptions::read_from_replicas).
  LentBytes get_lent(std::string_view key) {
    return plain_read(key, [&](Connection& c) { return LentBytes(c.command({"GET", key})); });
  }
  LentBytes get_and_touch_lent(std::string_view key, std::chrono::milliseconds ttl) {
    return read(key, [&](Connection& c) { return LentBytes(c.command({"GETEX", key, "PX", ttl_ms(ttl)})); });
  }
  // One MGET on one server; on a cluster a GET per key, one pipeline per node.
  LentBytes get_many_lent(std::span<const std::string_view> keys) { return many_lent(keys, ReadFrom::replica); }

  // GETEX for each key, as one pipeline.
  std::vector<std::optional<std::string>> get_many_and_touch(std::span<const std::string_view> keys,
                                                             std::chrono::milliseconds ttl) {
    std::vector<std::optional<std::string>> out;
    out.reserve(keys.size());
    const long long ms = ttl_ms(ttl);
    const auto add = [&](Connection& c, std::size_t i) { c.append({"GETEX", keys[i], "PX", ms}); };
    each(keys.size(), [&](std::size_t i) { return keys[i]; }, 1, add,
         [&](Reply&& r) { out.push_back(std::move(r).as_optional_string()); }, Idempotent::yes);
    return out;
  }

  // GET and PTTL, pipelined: one round trip.
  std::optional<StoredValue> get_with_ttl(std::string_view key) { return std::move(get_many_with_ttl({&key, 1})[0]); }

  // GET and PTTL for each key, as one pipeline.
  std::vector<std::optional<StoredValue>> get_many_with_ttl(std::span<const std::string_view> keys) {
    std::vector<std::optional<StoredValue>> out;
    out.reserve(keys.size());
    const auto add = [&](Connection& c, std::size_t i) {
      c.append({"GET", keys[i]});
      c.append({"PTTL", keys[i]});
    };
    bool value = true;  // replies alternate: GET, PTTL
    each(keys.size(), [&](std::size_t i) { return keys[i]; }, 2, add, [&](Reply&& r) {
      if (std::exchange(value, !value)) {
        std::optional<std::string> bytes = std::move(r).as_optional_string();
        out.push_back(bytes ? std::optional<StoredValue>({std::move(*bytes), std::nullopt}) : std::nullopt);
      } else if (const long long ms = r.as_integer(); out.back() && ms != -1) {
        out.back()->ttl = std::chrono::milliseconds(std::max(ms, 0LL));  // -2: gone since the GET
      }
    }, Idempotent::yes);
    return out;
  }

  void set(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
    pool_->run(key, [&](Connection& c) { c.command({"SET", key, value, "PX", ttl_ms(ttl)}); }, Idempotent::yes);
  }

  bool del(std::string_view key) {
    return pool_->run(key, [&](Connection& c) { return c.command({"UNLINK", key}).as_integer() == 1; });
  }

  // From the masters, as get().
  std::vector<std::optional<std::string>> get_many(std::span<const std::string_view> keys) {
    const LentBytes values = many_lent(keys, ReadFrom::master);
    std::vector<std::optional<std::string>> out;
    out.reserve(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) out.emplace_back(values[i]);
    return out;
  }

  // One pipeline. Every reply is read before refusals (OOM) are reported, so the
  // connection stays usable; BatchWriteError says how many writes failed.
  void set_many(std::span<const StoreEntry> entries) {
    const auto add = [&](Connection& c, std::size_t i) {
      const StoreEntry& e = entries[i];
      c.append({"SET", e.key, e.value, "PX", ttl_ms(e.ttl)});
    };
    std::size_t failed = 0;
    std::string first;
    each(entries.size(), [&](std::size_t i) { return std::string_view(entries[i].key); }, 1, add, [&](Reply&& r) {
      if (!r.is_error()) return;
      if (failed++ == 0) first = std::move(r).error_message();
    }, Idempotent::yes);
    if (failed != 0) throw BatchWriteError(first, failed, entries.size());
  }

  // One UNLINK on one server; on a cluster an UNLINK per key, one pipeline per node.
  std::size_t del_many(std::span<const std::string_view> keys) {
    if (keys.empty()) return 0;
    if (!pool_->cluster())
      return pool_->run(keys[0], [&](Connection& c) {
        return static_cast<std::size_t>(c.command(prefixed("UNLINK", keys)).as_integer());
      });
    std::size_t deleted = 0;
    for (Reply& r : by_node(keys, 1, [&](Connection& c, std::size_t i) { c.append({"UNLINK", keys[i]}); }))
      deleted += static_cast<std::size_t>(r.as_integer());
    return deleted;
  }

  // One write, in one atomic step: a plain one is a SET, the others the value
  // write script; with an invalidation, the invalidation script then the write
  // script in one MULTI/EXEC (invalidating first lets the targets name the
  // written key, or a tag its value gets, without deleting the new value); its
  // result goes to `invalidated` when given. With `w.replication` on, WAIT
  // follows in the same round trip. Throws the Redis layer's errors,
  // ReplicationError (something was written, on the master only: too few
  // replicas confirmed it in time), and std::invalid_argument for a scripted
  // write without a positive TTL or a Replication that cannot work.
  WriteResult write(const StoreWrite& w, InvalidationResult* invalidated = nullptr) {
    const bool invalidates = w.invalidation && !w.invalidation->empty();
    check_replication(w.replication, pool_->connection_options());
    if (w.replication.on() && !invalidates) return only_result(write_many({&w, 1}));
    if (w.plain()) {
      set(w.key, w.bytes, w.ttl);
      return WriteResult::written;
    }
    const detail::ValueWriteCall call(w);
    if (!invalidates) {
      detail::require_one_slot_on_cluster(*pool_, call.keys(), "cachet: a tagged or conditional write");
      return pool_->run(w.key, [&](Connection& c) { return call.run(c); });
    }
    const detail::InvalidationCall invalidation(*w.invalidation);
    std::vector<std::string_view> keys = call.keys();  // one MULTI/EXEC: one slot for both scripts
    keys.insert(keys.end(), invalidation.keys().begin(), invalidation.keys().end());
    detail::require_one_slot_on_cluster(*pool_, keys, "cachet: a write with an invalidation");
    return pool_->run(w.key, [&](Connection& c) { return write_invalidating(c, w, call, invalidation, invalidated); });
  }

  // The writes in one pipeline, each its own atomic step; none may carry an
  // invalidation (std::invalid_argument). Refusals (OOM) are counted, not
  // thrown. When writes ask for replicas, one WAIT for the most any asks follows
  // in the same round trip; ReplicationError once every reply is read. On a
  // cluster: one pipeline per node, and a WAIT after each write asking for one.
  BatchWriteResult write_many(std::span<const StoreWrite> writes) {
    if (writes.empty()) return {};
    for (const StoreWrite& w : writes) check_replication(w.replication, pool_->connection_options());
    if (pool_->cluster()) return detail::run_value_writes(*pool_, writes);
    return pool_->run(writes[0].key, [&](Connection& c) { return detail::run_value_writes(c, writes); });
  }

  // Tag sets and their members, keys, and version counters, in one atomic script.
  InvalidationResult invalidate(const InvalidationTargets& targets) {
    if (targets.empty()) return {};
    const detail::InvalidationCall call(targets);
    detail::require_one_slot_on_cluster(*pool_, call.keys(), "cachet: an invalidation");
    return pool_->run(call.keys()[0], [&](Connection& c) { return call.run(c); });
  }

  // INCR: the counter's next value, shared by every process (a write sequence).
  std::uint64_t incr(std::string_view key) {
    return pool_->run(key, [&](Connection& c) {
      return static_cast<std::uint64_t>(c.command({"INCR", key}).as_integer());
    });
  }


  // INCR of each counter, set to `start` first where it is missing (so a counter
  // evicted and recreated does not restart at 1): a one-key script each, one
  // pipeline (per node on a cluster); not repeated after a lost connection.
  void incr_each_from(std::span<const std::string_view> keys, std::string_view start) {
    static const std::string script = std::string(detail::incr_from_lua) + "return incr_from(KEYS[1], ARGV[1])";
    each(keys.size(), [&](std::size_t i) { return keys[i]; }, 1,
         [&](Connection& c, std::size_t i) { c.append({"EVAL", script, "1", keys[i], start}); },
         [](Reply&& r) { r.throw_if_error(); }, Idempotent::no);
  }

  // Each counter's value, set to `start` first where it is missing: a one-key
  // script each, one pipeline (per node on a cluster). Safe to repeat.
  std::vector<std::string> get_or_start(std::span<const std::string_view> keys, std::string_view start) {
    static constexpr std::string_view script =
        "local v = redis.call('GET', KEYS[1]) if v then return v end "
        "redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1]";
    std::vector<std::string> out;
    out.reserve(keys.size());
    each(keys.size(), [&](std::size_t i) { return keys[i]; }, 1,
         [&](Connection& c, std::size_t i) { c.append({"EVAL", script, "1", keys[i], start}); },
         [&](Reply&& r) { out.push_back(std::move(r).as_string()); }, Idempotent::yes);
    return out;
  }

  // The Redis store itself: what the lock guard and the lock run on (a
  // TieredStore gives its second tier).
  RedisStore& redis() noexcept { return *this; }

  Pool& pool() const noexcept { return *pool_; }

  // Invalidation and tag-set upkeep: what Tags, NamespaceVersions, DependencyMap
  // and invalidate_matching need, so that only the store sends Redis commands.

  // SET key bytes PX ttl and add `key` to each tag set (first removing up to
  // `prune_sample` members that are gone, and raising the set's TTL to the
  // value's), in one atomic script. std::invalid_argument for a TTL <= 0.
  void set_tagged(std::string_view key, std::string_view bytes, std::chrono::milliseconds ttl,
                  std::span<const std::string> tag_sets, std::size_t prune_sample) {
    const detail::ValueWriteCall call({key, bytes, ttl, tag_sets, prune_sample});
    detail::require_one_slot_on_cluster(*pool_, call.keys(), "cachet: a tagged write");
    pool_->run(key, [&](Connection& c) { call.run(c); });
  }

  // set_tagged for each write (its key, bytes, ttl, tag_sets, prune_sample and
  // watch), pipelined: one round trip, each its own atomic script. Refusals (OOM)
  // are thrown as BatchWriteError once every reply is read.
  void set_tagged_many(std::span<const StoreWrite> writes) {
    for (const StoreWrite& w : writes)
      if (w.lock_check || w.version_check || w.invalidation)
        throw std::invalid_argument("cachet: set_tagged_many runs no lock, version or invalidation check");
    if (writes.empty()) return;
    const BatchWriteResult r = write_many(writes);
    if (r.failed != 0) throw BatchWriteError(r.first_error, r.failed, writes.size());
  }

  // Removes members of the tag set `set` whose keys are gone, looking at about
  // `budget` members from `cursor` (SSCAN). Continue with the returned cursor until done().
  PruneResult prune_tag_set(std::string_view set, std::size_t budget = 1000, std::uint64_t cursor = 0) {
    budget = std::max<std::size_t>(budget, 1);
    return pool_->run(set, [&](Connection& c) {  // on the set's node
      PruneResult result;
      result.cursor = cursor;
      do {
        const std::size_t count = std::min<std::size_t>(budget - result.examined, 1000);
        const Reply page = c.command({"SSCAN", set, std::to_string(result.cursor), "COUNT", count});
        result.cursor = std::stoull(std::string(page[0].as_string()));
        std::vector<std::string_view> keys{set};  // the set, then the members to check
        for (ReplyView member : page[1]) keys.push_back(member.as_string());
        result.examined += keys.size() - 1;
        if (keys.size() == 1) continue;
        detail::require_one_slot_on_cluster(*pool_, keys, "cachet: pruning a tag set");
        result.removed += static_cast<std::size_t>(
            detail::tag_prune_script().run(c, keys, std::span<std::string_view>{}).as_integer());
      } while (result.cursor != 0 && result.examined < budget);
      return result;
    });
  }

  // Deletes every key matching `pattern`: SCAN MATCH in batches, each batch
  // UNLINKed (never KEYS, which blocks the server). Returns how many existed.
  // Throws the Redis layer's errors; what was deleted before stays deleted. On a
  // cluster every master, with passes run again while the layout moves
  // (store/detail/unlink_matching.hpp).
  std::size_t unlink_matching(std::string_view pattern, const UnlinkMatchingOptions& options = {}) {
    return detail::MatchingUnlinker(*pool_, options).run(pattern);
  }

 private:
  // get_many_lent on a cluster. A key's error is thrown here, where the policies'
  // degradation sees it (cluster answers were re-run by then), except WRONGTYPE:
  // a miss, as MGET's nil on one server.
  LentBytes get_each_lent(std::span<const std::string_view> keys, ReadFrom from) {
    std::vector<Reply> each =
        by_node(keys, 1, [&](Connection& c, std::size_t i) { c.append({"GET", keys[i]}); }, Idempotent::yes, from);
    for (const Reply& r : each)
      if (r.is_error() && !r.error_message().starts_with("WRONGTYPE")) r.throw_if_error();
    return LentBytes(std::move(each));
  }

  // A read: safe to send again.
  template <class F>
  std::invoke_result_t<F&, Connection&> read(std::string_view key, F&& f) {
    return pool_->run(key, std::forward<F>(f), Idempotent::yes);
  }
  // A plain read (GET, MGET), which a replica may answer (Pool::read).
  template <class F>
  std::invoke_result_t<F&, Connection&> plain_read(std::string_view key, F&& f) {
    return pool_->read(key, std::forward<F>(f));
  }

  // One MGET on one server; on a cluster a GET per key, one pipeline per node.
  LentBytes many_lent(std::span<const std::string_view> keys, ReadFrom from) {
    if (keys.empty()) return {};
    if (pool_->cluster()) return get_each_lent(keys, from);
    LentBytes values = read(keys[0], [&](Connection& c) { return LentBytes(c.command(prefixed("MGET", keys))); });
    if (values.size() != keys.size()) throw ProtocolError("cachet: MGET returned a batch of the wrong size");
    return values;
  }

  // add(conn, i) queues key i's `per_key` commands: one pipeline per node.
  template <class Add>
  std::vector<Reply> by_node(std::span<const std::string_view> keys, std::size_t per_key, Add add,
                             Idempotent again = Idempotent::yes, ReadFrom from = ReadFrom::master) {
    const auto send = [&](Connection& c, std::span<const std::size_t> at, bool /*eval*/) {
      for (std::size_t i : at) add(c, i);
    };
    return pipeline_by_node(*pool_, keys, per_key, send, again, from);
  }

  // The `per_key` commands add(conn, i) queues for each of n keys (key_of(i)),
  // each reply to on_reply in key order: one pipeline on one server, one per
  // node on a cluster.
  template <class KeyOf, class Add, class OnReply>
  void each(std::size_t n, KeyOf key_of, std::size_t per_key, Add add, OnReply on_reply, Idempotent again) {
    if (n == 0) return;
    if (pool_->cluster()) {
      std::vector<std::string_view> keys(n);
      for (std::size_t i = 0; i < n; ++i) keys[i] = key_of(i);
      for (Reply& r : by_node(keys, per_key, add, again)) on_reply(std::move(r));
      return;
    }
    pool_->run(key_of(0), [&](Connection& c) {
      for (std::size_t i = 0; i < n; ++i) add(c, i);
      for (std::size_t j = 0; j < n * per_key; ++j) on_reply(c.read_reply());
    }, again);
  }

  // write()'s invalidation, then its write, in one MULTI/EXEC (both checked to share a slot).
  static WriteResult write_invalidating(Connection& conn, const StoreWrite& w, const detail::ValueWriteCall& call,
                                        const detail::InvalidationCall& invalidation, InvalidationResult* invalidated) {
    const detail::WaitCall wait(w.replication);
    ScriptBatch batch(conn);
    batch.add(detail::invalidation_script(), invalidation.evalsha({}));
    batch.add(detail::value_write_script(), call.evalsha({}));
    if (w.replication.on()) batch.then(wait.argv());  // after EXEC: the invalidation always writes
    const Reply results = batch.atomically();
    results[0].throw_if_error();
    results[1].throw_if_error();
    if (invalidated) *invalidated = detail::InvalidationCall::result(results[0]);
    if (w.replication.on()) wait.check(batch.then_reply());
    return detail::ValueWriteCall::result(results[1]);
  }

  // write()'s result from a batch of that one write.
  static WriteResult only_result(BatchWriteResult r) {
    if (r.failed != 0) throw ReplyError(std::move(r.first_error));
    if (r.superseded != 0) return WriteResult::superseded;
    return r.lock_lost != 0 ? WriteResult::lock_lost : WriteResult::written;
  }

  static long long ttl_ms(std::chrono::milliseconds ttl) { return ttl.count() > 0 ? ttl.count() : 1; }

  static std::vector<std::string_view> prefixed(std::string_view verb, std::span<const std::string_view> keys) {
    std::vector<std::string_view> argv;
    argv.reserve(keys.size() + 1);
    argv.push_back(verb);
    argv.insert(argv.end(), keys.begin(), keys.end());
    return argv;
  }

  Pool* pool_;
};

static_assert(ExpiringStore<RedisStore>);
static_assert(LendingStore<RedisStore>);
static_assert(ConditionalStore<RedisStore>);

// A store whose values live in Redis (RedisStore, or a TieredStore over one):
// tag sets, locks and queues are kept beside them, on the RedisStore it gives.
template <class S>
concept RedisBacked = Store<S> && requires(S& s) {
  { s.redis() } -> std::same_as<RedisStore&>;
};

}  // namespace cachet
