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

#include <cachet/detail/hash_slot.hpp>
#include <cachet/detail/one_slot.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/pipeline_by_node.hpp>
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
// kept `version_ttl`), and the tag sets it joins.
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
  // HashTag::ns); else two steps (enqueue_apart), and tags are a ConfigError.
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
  // keys live apart from its partition and that has tags (ConfigError), or whose
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
      throw ConfigError("cachet: a tagged write-behind write on Redis Cluster is not supported yet (its tag "
                        "sets would live apart from the entry): write untagged values, or put the namespace in "
                        "one slot with HashTag::ns");
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

// One consumer of the queue's group reading one partition, on its own
// connection. The group is created (with the stream) on first use, and again
// after NOGROUP (Redis lost its data). The connection does not reconnect on its
// own: an error is thrown at once, and the next call reconnects; the caller
// paces the retries. On a cluster the connection goes to the partition's
// master, asked of the pool again after any error (a MOVED, a dropped
// connection, a failover), and a settle's cache entries are settled through
// the pool on their own nodes.
class RedisWriteQueue::Reader {
 public:
  Reader(const RedisWriteQueue& queue, std::string group, std::string consumer, std::chrono::milliseconds block_max,
         std::size_t partition = 0)
      : pool_(&queue.store_.pool()), options_(blocking(pool_->connection_options(), block_max)),
        part_(queue.partition(partition)), group_(std::move(group)), consumer_(std::move(consumer)) {
    if (!pool_->cluster()) conn_.emplace(options_);  // one server: connects at once
  }

  // This consumer's pending entries after `after` ("0": from the first), up to `count`.
  std::vector<StreamEntry> read_own(std::string_view after, std::size_t count) {
    const Reply r = on_group([&] {
      return conn().command({"XREADGROUP", "GROUP", group_, consumer_, "COUNT", count, "STREAMS", part_.stream, after});
    });
    return r.is_nil() || r.size() == 0 ? std::vector<StreamEntry>{} : parse(r[0][1]);
  }

  // Up to `count` entries no consumer was given yet, waiting up to `block` for one.
  std::vector<StreamEntry> read_new(std::size_t count, std::chrono::milliseconds block) {
    const Reply r = on_group([&] {
      return conn().command({"XREADGROUP", "GROUP", group_, consumer_, "COUNT", count, "BLOCK", block.count(),
                             "STREAMS", part_.stream, ">"});
    });
    return r.is_nil() || r.size() == 0 ? std::vector<StreamEntry>{} : parse(r[0][1]);
  }

  struct Claimed {
    std::string cursor;  // "0-0": the pass is complete
    std::vector<StreamEntry> entries;
  };

  // XAUTOCLAIM: up to `count` entries other consumers left pending for `idle`,
  // scanning from `cursor` ("0-0": the start).
  Claimed claim_idle(std::chrono::milliseconds idle, std::string_view cursor, std::size_t count) {
    const Reply r = on_group([&] {
      return conn().command({"XAUTOCLAIM", part_.stream, group_, consumer_, idle.count(), cursor, "COUNT", count});
    });
    return {std::string(r[0].as_string()), parse(r[1])};
  }

  // Claims back, their idle time set to 0, those of `entries` still pending for
  // this consumer (one another consumer took over stays with it). Returns how many.
  template <class Entries>
  std::size_t keep_own(const Entries& entries) {
    std::vector<std::string_view> args{group_, consumer_};
    args.insert(args.end(), entries.begin(), entries.end());
    const std::vector<std::string_view> keys{part_.stream};
    const Reply r = on_group([&] { return detail::keep_own_script().run(conn(), keys, args); });
    return static_cast<std::size_t>(r.as_integer());
  }

  // Claims up to `count` entries stranded behind the group's read position in
  // no pending list: no read would ever deliver them.
  std::vector<StreamEntry> claim_stranded(std::size_t count) {
    const Reply r = on_group(
        [&] { return detail::claim_stranded_script().run(conn(), {part_.stream}, {group_, consumer_, count}); });
    return parse(r);
  }

  // Acknowledges and deletes `entries` (every write of the batch, superseded
  // ones included); `heads` are the writes the batch wrote (Settle::written) or
  // dead-letters with `error` (Settle::dead). See write_queue_scripts.hpp: one
  // script when the heads' cache keys share the partition's slot, else each
  // head's cache entry on its node first (one pipeline per node), then the
  // stream: a failure before leaves the whole batch pending for a retry.
  void settle(Settle how, std::string_view error, std::span<const std::string> entries,
              std::span<const SettledWrite> heads) {
    std::vector<std::string_view> k{part_.stream, part_.pending, part_.dead};
    const std::string count = std::to_string(entries.size());
    const std::string_view mode = how == Settle::dead ? "dead" : "written";
    std::vector<std::string_view> a{group_, mode, error, count};
    a.insert(a.end(), entries.begin(), entries.end());
    for (const SettledWrite& h : heads) {
      a.push_back(h.id);
      a.push_back(h.entry);
    }
    if (!apart(heads)) {
      for (const SettledWrite& h : heads) k.push_back(h.cache_key);
      on_group([&] { return detail::settle_script().run(conn(), k, a); });
      return;
    }
    settle_entries(heads, mode);
    on_group([&] { return detail::settle_stream_script().run(conn(), k, a); });
  }

 private:
  static ConnectionOptions blocking(ConnectionOptions o, std::chrono::milliseconds block_max) {
    o.command_timeout = std::max(o.command_timeout, block_max + std::chrono::seconds(1));  // XREADGROUP ... BLOCK
    o.reconnect = {std::chrono::milliseconds(0), std::chrono::milliseconds(0), 1.0, 0.0};  // the caller paces retries
    return o;
  }

  Connection& conn() {
    if (!conn_) conn_.emplace(partition_master());
    return *conn_;
  }

  // The options to reach the partition's master now. A command through the pool
  // first: it follows a MOVED, and after a failover it refreshes the pool's map.
  ConnectionOptions partition_master() const {
    pool_->run(part_.stream, [&](Connection& c) { c.command({"EXISTS", part_.stream}); }, Idempotent::yes);
    std::optional<ConnectionOptions> o = pool_->at_cluster_master(part_.stream, options_);
    if (!o) throw ConnectionError("cachet: no master serves " + part_.stream);
    return *std::move(o);
  }

  // Whether a settle of `heads` takes two steps: their cache keys are on other nodes.
  bool apart(std::span<const SettledWrite> heads) const {
    if (!pool_->cluster()) return false;
    const auto slot = detail::hash_slot(part_.stream);
    return std::any_of(heads.begin(), heads.end(),
                       [&](const SettledWrite& h) { return detail::hash_slot(h.cache_key) != slot; });
  }

  // The heads' cache entries, settled on their nodes (one pipeline per node);
  // throws the first error. Safe to run again: it acts on the entry only while
  // that holds the settled write.
  void settle_entries(std::span<const SettledWrite> heads, std::string_view mode) {
    std::vector<std::string_view> keys;
    std::vector<std::string> applied;
    applied.reserve(heads.size());
    for (const SettledWrite& h : heads) {
      keys.push_back(h.cache_key);
      applied.push_back(detail::applied_entry_key(h.write_version));
    }
    const Script& script = detail::settle_entry_script();
    const auto send = [&](Connection& c, std::span<const std::size_t> at, bool eval) {
      const std::string_view body = eval ? std::string_view(script.source()) : std::string_view(script.sha(c));
      for (std::size_t i : at)
        c.append({eval ? "EVAL" : "EVALSHA", body, "2", heads[i].cache_key, applied[i], heads[i].bytes, mode,
                  std::string_view(heads[i].entry)});
    };
    for (const Reply& r : pipeline_by_node(*pool_, keys, 1, send, Idempotent::yes)) r.throw_if_error();
  }

  // Runs `send` in the group, created first if need be; NOGROUP has it created
  // again next time. On a cluster any other error drops the connection, so the
  // next call asks where the partition lives now.
  template <class F>
  Reply on_group(F send) {
    try {
      if (!joined_) join();
      return send();
    } catch (const ReplyError& e) {
      if (e.is("NOGROUP")) joined_ = false;
      else drop_on_cluster();
      throw;
    } catch (const Error&) {
      drop_on_cluster();
      throw;
    }
  }

  void drop_on_cluster() {
    if (!pool_->cluster()) return;
    conn_.reset();
    joined_ = false;  // the new master may not have the group (a failover to a replica that lagged)
  }

  void join() {
    try {
      conn().command({"XGROUP", "CREATE", part_.stream, group_, "0", "MKSTREAM"});
    } catch (const ReplyError& e) {
      if (!e.is("BUSYGROUP")) throw;
    }
    joined_ = true;
  }

  // [[id, [field, value, ...]], ...]: stream entries with the fields k (id), c (cache key), v (bytes).
  static std::vector<StreamEntry> parse(ReplyView list) {
    std::vector<StreamEntry> out;
    for (ReplyView e : list) {
      StreamEntry entry;
      entry.entry = StreamId::parse(e[0].as_string());
      const ReplyView fields = e[1];
      entry.deleted = fields.is_nil();
      for (std::size_t i = 0; !entry.deleted && i + 1 < fields.size(); i += 2) {
        const std::string_view name = fields[i].as_string();
        std::string* to =
            name == "k" ? &entry.id : name == "c" ? &entry.cache_key : name == "v" ? &entry.bytes : nullptr;
        if (to) *to = std::string(fields[i + 1].as_string());
      }
      out.push_back(std::move(entry));
    }
    return out;
  }

  Pool* pool_;
  ConnectionOptions options_;
  std::optional<Connection> conn_;  // opened on first use on a cluster, and after an error there
  Partition part_;
  std::string group_, consumer_;
  bool joined_ = false;
};

inline RedisWriteQueue::Reader RedisWriteQueue::reader(std::string group, std::string consumer,
                                                       std::chrono::milliseconds block_max,
                                                       std::size_t partition) const {
  return Reader(*this, std::move(group), std::move(consumer), block_max, partition);
}

}  // namespace cachet
