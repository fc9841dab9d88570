#pragma once
// The write-behind queue in Redis: every stream operation write-behind makes
// (WriteBehind in policy/write_behind.hpp is the policy). Keys: the stream
// {ns}:wb:{queue}, its pending hash (id -> the id's latest entry) {...}:pending
// and its dead-letter stream {...}:dead, beside the cache keys and tag sets an
// enqueue writes. On a Redis Cluster they must share a slot: use HashTag::ns.
//
//   RedisWriteQueue queue(RedisStore(pool), keys.write_behind("writes"));
//   queue.enqueue(write, max_length, grow);       // XADD + SET + tags, one script
//   auto reader = queue.reader("cachet", "pod-1", poll);  // a flusher's own connection
//   reader.read_new(500, poll); ...; reader.settle(Settle::written, {}, entries, heads);

#include <cachet/detail/one_slot.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/script_batch.hpp>
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
};

enum class Settle { written, dead };

class RedisWriteQueue {
 public:
  class Reader;

  // `stream` is the stream's key ({ns}:wb:{queue}). The store's pool must outlive the queue.
  RedisWriteQueue(RedisStore store, std::string stream)
      : store_(store), stream_(std::move(stream)), pending_(stream_ + ":pending"), dead_(stream_ + ":dead") {}

  const std::string& stream() const noexcept { return stream_; }
  const std::string& dead_letters() const noexcept { return dead_; }
  // The back-off between retries after a Redis error: the connection's reconnect pacing.
  const BackoffOptions& reconnect() const noexcept { return store_.pool().connection_options().reconnect; }

  // Queues `w` and sets its cache entry, tags and write version, atomically;
  // nullopt when the queue is at `max_length` (0: unbounded) and not to `grow`:
  // nothing was written. With `replication` on, WAIT follows in the same round
  // trip: ReplicationError when the queued write reached fewer replicas in time
  // (it is queued on the master all the same; enqueueing it again is harmless).
  std::optional<Enqueued> enqueue(const QueuedWrite& w, std::size_t max_length, bool grow,
                                  const Replication& replication = {}) {
    check_replication(replication, store_.pool().connection_options());
    std::vector<std::string_view> argv{"EVALSHA", "", "", stream_, pending_, w.cache_key, w.write_version};
    argv.insert(argv.end(), w.tag_sets.begin(), w.tag_sets.end());
    const std::string numkeys = std::to_string(argv.size() - 3);
    argv[2] = numkeys;
    const std::string ttl = std::to_string(std::max<long long>(w.ttl.count(), 1)), bound = std::to_string(max_length),
                      sample = std::to_string(w.prune_sample), version_ttl = std::to_string(w.version_ttl.count());
    detail::require_one_slot_on_cluster(store_.pool(), std::span(argv).subspan(3, argv.size() - 3),
                                        "cachet: a write-behind enqueue");
    argv.insert(argv.end(), {w.id, w.bytes, ttl, bound, grow ? "1" : "0", sample, version_ttl});
    return store_.pool().run(stream_, [&](Connection& c) { return enqueue_on(c, argv, replication); });
  }

  // The bytes of `id`'s queued write, or nullopt when none is pending.
  std::optional<std::string> pending(std::string_view id) {
    return read([&](Connection& c) {
      return detail::pending_script().run(c, {pending_, stream_}, {id}).as_optional_string();
    });
  }

  // Writes queued and not yet settled (XLEN).
  std::size_t length() {
    return read([&](Connection& c) { return static_cast<std::size_t>(c.command({"XLEN", stream_}).as_integer()); });
  }

  // The last entry ever queued (XINFO STREAM), or nullopt when there is no stream.
  std::optional<StreamId> last_id() {
    return read([&](Connection& c) -> std::optional<StreamId> {
      if (c.command({"EXISTS", stream_}).as_integer() == 0) return std::nullopt;
      const Reply info = c.command({"XINFO", "STREAM", stream_});
      for (std::size_t i = 0; i + 1 < info.size(); i += 2)
        if (info[i].as_string() == "last-generated-id") return StreamId::parse(info[i + 1].as_string());
      throw ProtocolError("cachet: XINFO STREAM has no last-generated-id");
    });
  }

  // Whether an entry up to `last` (included) is still queued.
  bool holds_up_to(const StreamId& last) {
    return read([&](Connection& c) {
      return c.command({"XRANGE", stream_, "-", last.str(), "COUNT", 1}).size() > 0;
    });
  }

  // The queue's length and oldest entry.
  QueueBacklog backlog() {
    return read([&](Connection& c) {
      QueueBacklog b;
      b.length = static_cast<std::size_t>(c.command({"XLEN", stream_}).as_integer());
      const Reply first = c.command({"XRANGE", stream_, "-", "+", "COUNT", 1});
      if (first.size() > 0) b.oldest = StreamId::parse(first[0][0].as_string());
      return b;
    });
  }

  // A consumer `consumer` of the group `group`, on its own connection (its reads
  // block for up to `block_max`).
  Reader reader(std::string group, std::string consumer, std::chrono::milliseconds block_max) const;

 private:
  // The enqueue script (argv: its EVALSHA), then WAIT when `replication` is on.
  static std::optional<Enqueued> enqueue_on(Connection& c, std::vector<std::string_view> argv,
                                            const Replication& replication) {
    const detail::WaitCall wait(replication);
    ScriptBatch batch(c);
    batch.add(detail::enqueue_script(), std::move(argv));
    if (replication.on()) batch.then(wait.argv());
    const Reply r = std::move(batch.pipelined()[0]);
    r.throw_if_error();
    if (r.is_nil()) return std::nullopt;
    if (replication.on()) wait.check(batch.then_reply());
    return Enqueued{StreamId::parse(r[0].as_string()), r[1].as_integer() == 1};
  }

  // A read of the stream (or a script that only reads): safe to send again.
  template <class F>
  std::invoke_result_t<F&, Connection&> read(F&& f) {
    return store_.pool().run(stream_, std::forward<F>(f), Idempotent::yes);
  }

  RedisStore store_;
  std::string stream_, pending_, dead_;
};

// One consumer of the queue's group on its own connection. The group is created
// (with the stream) on first use, and again after NOGROUP (Redis lost its data).
// The connection does not reconnect on its own: an error is thrown at once, and
// the next call reconnects; the caller paces the retries.
class RedisWriteQueue::Reader {
 public:
  Reader(const RedisWriteQueue& queue, std::string group, std::string consumer, std::chrono::milliseconds block_max)
      : conn_(blocking(queue.store_.pool().connection_options(), block_max)), stream_(queue.stream_),
        pending_(queue.pending_), dead_(queue.dead_), group_(std::move(group)), consumer_(std::move(consumer)) {}

  // This consumer's pending entries after `after` ("0": from the first), up to `count`.
  std::vector<StreamEntry> read_own(std::string_view after, std::size_t count) {
    const Reply r = on_group([&] {
      return conn_.command({"XREADGROUP", "GROUP", group_, consumer_, "COUNT", count, "STREAMS", stream_, after});
    });
    return r.is_nil() || r.size() == 0 ? std::vector<StreamEntry>{} : parse(r[0][1]);
  }

  // Up to `count` entries no consumer was given yet, waiting up to `block` for one.
  std::vector<StreamEntry> read_new(std::size_t count, std::chrono::milliseconds block) {
    const Reply r = on_group([&] {
      return conn_.command({"XREADGROUP", "GROUP", group_, consumer_, "COUNT", count, "BLOCK", block.count(),
                            "STREAMS", stream_, ">"});
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
      return conn_.command({"XAUTOCLAIM", stream_, group_, consumer_, idle.count(), cursor, "COUNT", count});
    });
    return {std::string(r[0].as_string()), parse(r[1])};
  }

  // Claims back, their idle time set to 0, those of `entries` still pending for
  // this consumer (one another consumer took over stays with it). Returns how many.
  template <class Entries>
  std::size_t keep_own(const Entries& entries) {
    std::vector<std::string_view> args{group_, consumer_};
    args.insert(args.end(), entries.begin(), entries.end());
    const std::vector<std::string_view> keys{stream_};
    const Reply r = on_group([&] { return detail::keep_own_script().run(conn_, keys, args); });
    return static_cast<std::size_t>(r.as_integer());
  }

  // Claims up to `count` entries stranded behind the group's read position in
  // no pending list: no read would ever deliver them.
  std::vector<StreamEntry> claim_stranded(std::size_t count) {
    const Reply r =
        on_group([&] { return detail::claim_stranded_script().run(conn_, {stream_}, {group_, consumer_, count}); });
    return parse(r);
  }

  // Acknowledges and deletes `entries` (every write of the batch, superseded
  // ones included); `heads` are the writes the batch wrote (Settle::written) or
  // dead-letters with `error` (Settle::dead). See write_queue_scripts.hpp.
  void settle(Settle how, std::string_view error, std::span<const std::string> entries,
              std::span<const SettledWrite> heads) {
    std::vector<std::string_view> k{stream_, pending_, dead_};
    const std::string count = std::to_string(entries.size());
    std::vector<std::string_view> a{group_, how == Settle::dead ? "dead" : "written", error, count};
    a.insert(a.end(), entries.begin(), entries.end());
    for (const SettledWrite& h : heads) {
      k.push_back(h.cache_key);
      a.push_back(h.id);
      a.push_back(h.entry);
    }
    on_group([&] { return detail::settle_script().run(conn_, k, a); });
  }

 private:
  static ConnectionOptions blocking(ConnectionOptions o, std::chrono::milliseconds block_max) {
    refuse_cluster(o.cluster, "cachet::RedisWriteQueue::Reader (the write-behind flusher)");
    o.command_timeout = std::max(o.command_timeout, block_max + std::chrono::seconds(1));  // XREADGROUP ... BLOCK
    o.reconnect = {std::chrono::milliseconds(0), std::chrono::milliseconds(0), 1.0, 0.0};  // the caller paces retries
    return o;
  }

  // Runs `send` in the group, created first if need be; NOGROUP has it created again next time.
  template <class F>
  Reply on_group(F send) {
    if (!joined_) join();
    try {
      return send();
    } catch (const ReplyError& e) {
      if (e.is("NOGROUP")) joined_ = false;
      throw;
    }
  }

  void join() {
    try {
      conn_.command({"XGROUP", "CREATE", stream_, group_, "0", "MKSTREAM"});
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

  Connection conn_;
  std::string stream_, pending_, dead_, group_, consumer_;
  bool joined_ = false;
};

inline RedisWriteQueue::Reader RedisWriteQueue::reader(std::string group, std::string consumer,
                                                       std::chrono::milliseconds block_max) const {
  return Reader(*this, std::move(group), std::move(consumer), block_max);
}

}  // namespace cachet
