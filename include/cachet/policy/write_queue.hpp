#pragma once
// The write-behind queue: what its batch writer is given, and how it is
// configured (WriteBehind in write_behind.hpp is the policy; RedisWriteQueue in
// store/write_queue.hpp the queue in Redis, with StreamId).

#include <cachet/error.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/store/replication.hpp>
#include <cachet/store/write_queue.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cachet {

// One write as the batch writer gets it: the last write of `id` the flusher
// holds. `entry` is its stream entry, unique and ordered: use it as the
// idempotency key (store it with the row and skip an entry already applied),
// and upsert only when it is newer than the row's, so that a write redelivered
// after a crash, or reclaimed from another flusher, never overwrites a newer one.
template <class V>
struct PendingWrite {
  std::string id;
  V value;
  StreamId entry;
  std::size_t superseded = 0;  // earlier writes of `id` coalesced into this one
};

// Writes a batch to the database, all or nothing, and throws if it did not.
template <class W, class V>
concept BatchWriter = std::invocable<W&, std::span<const PendingWrite<V>>>;

// What WriteBehind::flush() saw: true when every write queued before the call
// is in the database or dead-lettered; otherwise what the queue still held at
// the deadline.
struct FlushResult {
  bool drained = true;
  std::size_t queued = 0;          // writes still queued (XLEN: also those queued during the wait)
  std::optional<StreamId> oldest;  // the oldest of them, "<ms>-<seq>": how long it has waited

  explicit operator bool() const noexcept { return drained; }
};

// What a write does when the queue is at `max_length` (the database has been down for long).
enum class QueueFull {
  block,   // wait up to `block_for` for room, then throw QueueFullError
  reject,  // throw QueueFullError at once
  grow,    // queue it anyway; count it and call `on_warning`
};

class QueueFullError : public Error {
 public:
  using Error::Error;
};

struct WriteBehindOptions {
  std::string queue = "writes";  // the stream is {ns}:wb:{queue}
  // Streams the queue spreads over (an id's writes stay in one, in order); 0: 1
  // on one server, 16 on a Redis Cluster (1 when the namespace has a hash tag,
  // HashTag::ns, its layout before partitions). Must be the same in every process:
  // writes queued in the partitions of another count are stranded until a
  // flusher with that count drains them. `max_length` is shared out over them.
  std::size_t partitions = 0;
  std::string group = "cachet";  // the flushers' consumer group
  // This flusher's consumer name; empty: host, pid and a random suffix. A stable
  // name (a pod name) lets a restarted flusher resume its own pending entries first.
  std::string consumer{};
  bool flusher = true;  // flush in this object; false: only queue (another process flushes)

  std::size_t max_batch = 500;               // a batch is flushed at this many writes...
  std::chrono::milliseconds max_delay{100};  // ...or when its first write is this old
  std::chrono::milliseconds poll{50};        // longest blocking read, so stop and flush() are seen

  // A write that fails on its own while other writes succeed (the database is
  // up: the write is "poison"), or with an error `rejected` recognises, is
  // retried with back-off, and after this many such failures moved to the
  // dead-letter stream {ns}:wb:{queue}:dead with its error.
  std::size_t max_attempts = 5;
  // Whether an error of the batch writer says the database refused the data (a
  // constraint) rather than that it is unavailable. Without it, a write failing
  // alone counts only when other writes of the same round succeed: a poison
  // write with no traffic around it is retried until some arrives.
  std::function<bool(const std::exception&)> rejected{};
  // The back-off of those retries, and between rounds while every write fails (an
  // outage). Redis errors are retried on the connection's `reconnect` back-off.
  BackoffOptions retry{std::chrono::milliseconds(50), std::chrono::milliseconds(2000), 2.0, 0.2};
  std::chrono::milliseconds reclaim_idle{30000};  // XAUTOCLAIM entries a flusher left pending this long

  std::size_t max_length = 1'000'000;  // 0: unbounded
  QueueFull on_full = QueueFull::block;
  std::chrono::milliseconds block_for{1000};
  std::function<void(std::string_view)> on_warning{};  // QueueFull::grow, at most once a second

  std::chrono::milliseconds flush_timeout{30000};  // how long flush() waits unless told (a queue may never drain)
  std::chrono::milliseconds drain_timeout{30000};  // how long the destructor waits for the queue to drain
  // A write's version ({ns}:wv:{key}, which loads watch) is kept for the value's TTL plus this.
  std::chrono::milliseconds version_margin{std::chrono::minutes(1)};
  // write() returns only once this many replicas have the queued write (WAIT),
  // else throws ReplicationError; 0: no wait. See docs/durability.md.
  Replication replication{};
};

}  // namespace cachet
