#pragma once
// The write-behind queue in Redis: every stream operation write-behind makes
// (WriteBehind in policy/write_behind.hpp is the policy). Keys: the stream
// {ns}:wb:{queue}, its pending hash (id -> the id's latest entry) {...}:pending
// and its dead-letter stream {...}:dead, beside the cache keys and tag sets an
// enqueue writes. With `partitions` > 1 (the default on a Redis Cluster) the
// queue is that many such streams, each with its own pending hash and dead
// letters in its slot, and an id's writes all go to one of them
// (store/detail/queue_partitions.hpp has the layout).
//
//   RedisWriteQueue queue(RedisStore(pool), keys.write_behind("writes"));
//   queue.enqueue(write, max_length, grow);       // XADD + SET + tags, one script
//   auto reader = queue.reader("cachet", "pod-1", poll);  // a flusher's own connection
//   reader.read_new(500, poll); ...; reader.settle(Settle::written, {}, entries, heads);
//
// The Reader, a flusher's side, is in store/write_queue_reader.hpp.

#include <cachet/detail/hash_slot.hpp>
#include <cachet/detail/one_slot.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/script_batch.hpp>
#include <cachet/store/detail/queue_partitions.hpp>
#include <cachet/store/detail/wait_call.hpp>
#include <cachet/store/detail/write_queue_scripts.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/store/replication.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

// A Redis Stream entry id, "<ms>-<seq>": ordered as the writes were queued.
struct StreamId {
  std::uint64_t ms = 0;
  std::uint64_t seq = 0;

  auto operator<=>(const StreamId&) const = default;

  std::string str() const { return std::to_string(ms) + "-" + std::to_string(seq); }

  static StreamId parse(std::string_view text) {
    StreamId id;
    const auto dash = text.find('-');
    const char* end = text.data() + text.size();
    const bool ok = dash != std::string_view::npos &&
                    std::from_chars(text.data(), text.data() + dash, id.ms).ptr == text.data() + dash &&
                    std::from_chars(text.data() + dash + 1, end, id.seq).ptr == end;
    if (!ok) throw std::invalid_argument("cachet: not a stream id: '" + std::string(text) + "'");
    return id;
  }
};

// One write to queue: the value's cache entry, its write version key (INCRed,
// so that a load that read the old row meanwhile cannot overwrite the entry;
// kept `version_ttl`), and the tag sets it joins (on a cluster, none: there
// WriteBehind stamps `bytes` with the tags' versions, as CacheAside does).
struct QueuedWrite {
  std::string_view id;
  std::string_view cache_key;
  std::string_view bytes;
  std::chrono::milliseconds ttl;
  std::string_view write_version;
  std::chrono::milliseconds version_ttl;
  std::span<const std::string> tag_sets = {};
  std::size_t prune_sample = 0;
};

struct Enqueued {
  StreamId entry;
  bool over_bound = false;  // queued past max_length (asked to grow)
};

// One stream entry as a reader gets it.
struct StreamEntry {
  StreamId entry;
  std::string id, cache_key, bytes;
  bool deleted = false;  // gone from the stream while pending: only to be acknowledged
};

// What the queue holds: its length (XLEN) and oldest entry.
struct QueueBacklog {
  std::size_t length = 0;
  std::optional<StreamId> oldest;
};

// The latest write of an id in a settled batch.
struct SettledWrite {
  std::string_view id;
  std::string entry;
  std::string_view cache_key;
  std::string_view write_version = {};  // the cache key's (keys.write_version): on a cluster, beside its applied entry
  std::string_view bytes = {};          // the write's (its stream entry's)
};

enum class Settle { written, dead };

class RedisWriteQueue {
 public:
  class Reader;

  // One partition's keys, which share a slot.
  struct Partition {
    std::string stream, pending, dead;
  };

  // `stream` is the queue's key ({ns}:wb:{queue}); `partitions` how many
  // streams it spreads over (0: 1 on one server, 16 on a cluster), which must
  // be the same in every process. The store's pool must outlive the queue.
  RedisWriteQueue(RedisStore store, std::string stream, std::size_t partitions = 1)
      : store_(store), parts_(layout(stream, detail::queue_partitions(partitions, store.pool(), stream))) {}

  // Partition 0's stream and dead letters: the queue's when it has one partition.
  const std::string& stream() const noexcept { return parts()[0].stream; }
  const std::string& dead_letters() const noexcept { return parts()[0].dead; }
  std::size_t partitions() const noexcept { return parts().size(); }
  const Partition& partition(std::size_t i) const { return parts().at(i); }
  // The partition that holds `id`'s writes.
  std::size_t partition_of(std::string_view id) const noexcept { return detail::partition_of(id, parts().size()); }
  // The back-off between retries after a Redis error: the connection's reconnect pacing.
  const BackoffOptions& reconnect() const noexcept { return store_.pool().connection_options().reconnect; }

  // Queues `w` and sets its cache entry, tags and write version; nullopt when
  // its partition is at its share of `max_length` (0: unbounded) and not to
  // `grow`: nothing was written. With `replication` on, WAIT follows the queued
  // write in the same round trip: ReplicationError when it reached fewer
  // replicas in time (it is queued on the master all the same; enqueueing it
  // again is harmless). One script when every key shares a slot (one server,
  // HashTag::ns); else two steps (enqueue_apart), and tag sets are a ConfigError.
  std::optional<Enqueued> enqueue(const QueuedWrite& w, std::size_t max_length, bool grow,
                                  const Replication& replication = {}) {
    check_replication(replication, store_.pool().connection_options());
    const Partition& p = parts()[partition_of(w.id)];
    const std::size_t bound = partition_bound(max_length);
    if (together(p, w)) return enqueue_together(p, w, bound, grow, replication);
    refuse_apart(w);
    return enqueue_apart(p, w, bound, grow, replication);
  }

  // Throws, sending nothing, what enqueue() refuses: on a cluster, a write whose
  // keys live apart from its partition and that has tag sets (ConfigError), or whose
  // cache key and write version are in different slots (CrossSlotError).
  void check(const QueuedWrite& w) const {
    if (!together(parts()[partition_of(w.id)], w)) refuse_apart(w);
  }

  // A partition's share of a queue bound of `max_length` writes (0: unbounded).
  std::size_t partition_bound(std::size_t max_length) const noexcept {
    return max_length == 0 ? 0 : (max_length + partitions() - 1) / partitions();
  }

  // Tests only: called between an apart enqueue's two steps, to make two writers' steps cross.
  std::function<void(const QueuedWrite&)> between_steps_for_test;

  // The bytes of `id`'s queued write, or nullopt when none is pending.
  std::optional<std::string> pending(std::string_view id) {
    const Partition& p = parts()[partition_of(id)];
    return read(p.stream, [&](Connection& c) {
      return detail::pending_script().run(c, {p.pending, p.stream}, {id}).as_optional_string();
    });
  }

  // Writes queued and not yet settled (XLEN), over every partition.
  std::size_t length() {
    std::size_t n = 0;
    for (const Partition& p : parts())
      n += read(p.stream, [&](Connection& c) { return static_cast<std::size_t>(c.command({"XLEN", p.stream}).as_integer()); });
    return n;
  }

  // The last entry ever queued in `partition` (XINFO STREAM), or nullopt when there is no stream.
  std::optional<StreamId> last_id(std::size_t partition = 0) {
    const std::string& stream = parts().at(partition).stream;
    return read(stream, [&](Connection& c) -> std::optional<StreamId> {
      if (c.command({"EXISTS", stream}).as_integer() == 0) return std::nullopt;
      const Reply info = c.command({"XINFO", "STREAM", stream});
      for (std::size_t i = 0; i + 1 < info.size(); i += 2)
        if (info[i].as_string() == "last-generated-id") return StreamId::parse(info[i + 1].as_string());
      throw ProtocolError("cachet: XINFO STREAM has no last-generated-id");
    });
  }

  // Whether an entry of `partition` up to `last` (included) is still queued.
  bool holds_up_to(const StreamId& last, std::size_t partition = 0) {
    const std::string& stream = parts().at(partition).stream;
    return read(stream, [&](Connection& c) {
      return c.command({"XRANGE", stream, "-", last.str(), "COUNT", 1}).size() > 0;
    });
  }

  // The queue's length and oldest entry, over every partition.
  QueueBacklog backlog() {
    QueueBacklog b;
    for (const Partition& p : parts()) {
      const QueueBacklog one = read(p.stream, [&](Connection& c) {
        QueueBacklog pb;
        pb.length = static_cast<std::size_t>(c.command({"XLEN", p.stream}).as_integer());
        const Reply first = c.command({"XRANGE", p.stream, "-", "+", "COUNT", 1});
        if (first.size() > 0) pb.oldest = StreamId::parse(first[0][0].as_string());
        return pb;
      });
      b.length += one.length;
      if (one.oldest && (!b.oldest || *one.oldest < *b.oldest)) b.oldest = one.oldest;
    }
    return b;
  }

  // A consumer `consumer` of the group `group` reading `partition`, on its own
  // connection (its reads block for up to `block_max`).
  Reader reader(std::string group, std::string consumer, std::chrono::milliseconds block_max,
                std::size_t partition = 0) const;

 private:
  // Shared by the copies (a loader holds one): built once, never changed.
  using Layout = std::shared_ptr<const std::vector<Partition>>;

  static Layout layout(const std::string& base, std::size_t n) {
    auto parts = std::make_shared<std::vector<Partition>>();
    for (std::size_t i = 0; i < n; ++i) {
      std::string stream = detail::partition_key(base, i, n);
      parts->push_back({stream, stream + ":pending", stream + ":dead"});
    }
    return parts;
  }

  const std::vector<Partition>& parts() const noexcept { return *parts_; }

  // Whether one script can write `w` to `p`: on one server always; on a
  // cluster when its keys share the partition's slot (HashTag::ns).
  bool together(const Partition& p, const QueuedWrite& w) const {
    if (!store_.pool().cluster()) return true;
    const auto slot = detail::hash_slot(p.stream);
    const auto here = [&](std::string_view k) { return detail::hash_slot(k) == slot; };
    return here(w.cache_key) && here(w.write_version) && std::all_of(w.tag_sets.begin(), w.tag_sets.end(), here);
  }

  static void refuse_apart(const QueuedWrite& w) {
    if (!w.tag_sets.empty())
      throw ConfigError("cachet: a write-behind write's tag sets on Redis Cluster must share its queue "
                        "partition's slot (HashTag::ns); WriteBehind stamps a tagged entry with its tags' "
                        "versions instead (docs/cluster.md)");
    const std::string_view keys[] = {w.cache_key, w.write_version};
    detail::require_one_slot(keys, "cachet: a write-behind write's cache entry and write version",
                             "key the cache with HashTag::entity, which gives both the entity's slot");
  }

  std::optional<Enqueued> enqueue_together(const Partition& p, const QueuedWrite& w, std::size_t bound, bool grow,
                                           const Replication& replication) {
    std::vector<std::string_view> argv{"EVALSHA", "", "", p.stream, p.pending, w.cache_key, w.write_version};
    argv.insert(argv.end(), w.tag_sets.begin(), w.tag_sets.end());
    const std::string numkeys = std::to_string(argv.size() - 3);
    argv[2] = numkeys;
    const std::string ttl = ttl_of(w), max = std::to_string(bound), sample = std::to_string(w.prune_sample),
                      version_ttl = std::to_string(w.version_ttl.count());
    argv.insert(argv.end(), {w.id, w.bytes, ttl, max, grow ? "1" : "0", sample, version_ttl});
    return queued(store_.pool().run(
        p.stream, [&](Connection& c) { return run_then_wait(c, detail::enqueue_script(), argv, replication); }));
  }

  // The partition and the entity on different nodes (a cluster): the queued
  // write first, on the partition's node, WAITed for when replicated (it is the
  // durable intent); then the entity's cache entry and write version on the
  // entity's node, the entry set only when this write is newer than the last
  // applied there (two writers' steps can cross), WAITed for too. A crash
  // between the two leaves a queued write whose flush settles the entry; the
  // other order could show a value no queue holds, which the database would
  // never get. When the queued step was not confirmed (ReplicationError: it is
  // queued; a timeout: perhaps), the entity step still runs (a timeout's
  // deletes the entry: a read then finds the pending write), then the error.
  std::optional<Enqueued> enqueue_apart(const Partition& p, const QueuedWrite& w, std::size_t bound, bool grow,
                                        const Replication& replication) {
    const std::string max = std::to_string(bound);
    const std::vector<std::string_view> argv{"EVALSHA", "",      "2", p.stream, p.pending, w.id, w.cache_key,
                                             w.bytes,   max, grow ? "1" : "0"};
    std::optional<Enqueued> q;
    std::exception_ptr unconfirmed;
    try {
      q = queued(store_.pool().run(p.stream, [&](Connection& c) {
        return run_then_wait(c, detail::queue_write_script(), argv, replication, &unconfirmed);
      }));
    } catch (const TimeoutError&) {
      try {
        entity_step(w, {}, replication);
      } catch (const Error&) {  // the timeout is the error to report
      }
      throw;
    }
    if (!q) return q;
    if (between_steps_for_test) between_steps_for_test(w);
    entity_step(w, q->entry.str(), replication);
    if (unconfirmed) std::rethrow_exception(unconfirmed);  // ReplicationError: queued all the same
    return q;
  }

  // The entity's step of enqueue_apart: `entry` empty to delete the cache entry.
  void entity_step(const QueuedWrite& w, const std::string& entry, const Replication& replication) {
    const std::string ttl = ttl_of(w), version_ttl = std::to_string(w.version_ttl.count());
    const std::string applied = detail::applied_entry_key(w.write_version);
    const std::vector<std::string_view> argv{"EVALSHA", "",  "3",         w.cache_key, w.write_version, applied,
                                             w.bytes,   ttl, version_ttl, entry,       entry.empty() ? "forget" : ""};
    // Sent again after a lost reply: the version only moves on once more, and the SET is the same.
    store_.pool().run(w.cache_key,
                      [&](Connection& c) { return run_then_wait(c, detail::entity_write_script(), argv, replication); },
                      Idempotent::yes);
  }

  static std::string ttl_of(const QueuedWrite& w) { return std::to_string(std::max<long long>(w.ttl.count(), 1)); }

  // An enqueue script's reply: {entry, over the bound}, or nil when there was no room.
  static std::optional<Enqueued> queued(const Reply& r) {
    if (r.is_nil()) return std::nullopt;
    return Enqueued{StreamId::parse(r[0].as_string()), r[1].as_integer() == 1};
  }

  // The script (argv: its EVALSHA), then WAIT when `replication` is on (detail::run_then_wait).
  static Reply run_then_wait(Connection& c, const Script& script, std::vector<std::string_view> argv,
                             const Replication& replication, std::exception_ptr* unconfirmed = nullptr) {
    return detail::run_then_wait(
        c, replication, [&](ScriptBatch& b) { b.add(script, std::move(argv)); }, unconfirmed);
  }

  // A read of a partition (or a script that only reads): safe to send again.
  template <class F>
  std::invoke_result_t<F&, Connection&> read(std::string_view stream, F&& f) {
    return store_.pool().run(stream, std::forward<F>(f), Idempotent::yes);
  }

  RedisStore store_;
  Layout parts_;
};

}  // namespace cachet

// Last: the Reader needs the queue complete, and every user of reader() needs the Reader.
#include <cachet/store/write_queue_reader.hpp>
