#pragma once
// Write-behind counters (page views, likes): increments go to a Redis hash, and
// a flusher writes the sums to the database in batches.
//
//   auto save = [&](std::uint64_t batch, std::span<const cachet::CounterDelta> sums) { db.add_views(batch, sums); };
//   cachet::WriteBehindCounters<decltype(save)> views(pool, {.ns = "shop", .queue = "views"}, save);
//   views.increment("product:42");      // HINCRBY, one round trip
//
// The article's flush (HGETALL, write, then HDEL) loses every increment made
// between the read and the delete. Here the hand-over is atomic: one script
// RENAMEs the pending hash to a "flushing" one and gives it a batch number, so
// increments made during a flush land in a new pending hash. The flushing hash
// is deleted only after the database took it; a failed or interrupted flush
// hands the same batch, with the same number, to the next one. Make the
// database write idempotent on that number (record applied batches in the same
// transaction) and the totals are exact, crashes included. Numbers follow the
// server's clock in microseconds (or the last number + 1, if larger), so a
// Redis that lost its data (no persistence, a failover to an empty replica)
// never reuses an applied batch's number: its lost pending counts are lost,
// but nothing counted after it is dropped as "applied before".
//
// Keys: {ns}:wb:{queue}:counts (pending), :counts:flushing, :counts:batch (the
// flushing batch's number), :counts:seq. On a Redis Cluster they are
// partitioned (`partitions`, 16 by default): {{ns}:wb:{queue}:counts:p<i>} and
// so on, each partition in its own slot, an id always in the same one (1
// partition when the namespace has a hash tag, HashTag::ns); a flush hands over
// and writes each partition's batch. With partitions a batch number is the
// partition's own times 1024 plus the partition, whatever the count: unique
// over partitions, and beyond 2^53 (keep it a 64-bit integer, not a double). RedisCounterQueue
// (store/counter_queue.hpp) does the Redis side.
//
// Redis replicates asynchronously: an increment the master acknowledged can be
// lost if it dies before its replica has it. With `replication` on, increment()
// returns only once that many replicas confirmed it (WAIT, in the same round
// trip), else throws ReplicationError; a flush writes a batch only once its
// hand-over is on the replicas. See docs/durability.md.

#include <cachet/detail/backoff.hpp>
#include <cachet/executor.hpp>
#include <cachet/keys.hpp>
#include <cachet/metrics.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/store/counter_queue.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/store/replication.hpp>

#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cachet {

// Adds a batch of sums to the database, all or nothing; `batch` is its
// idempotency key (the same batch may be given again after a failure).
template <class W>
concept CounterWriter = std::invocable<W&, std::uint64_t, std::span<const CounterDelta>>;

struct CountersOptions {
  std::string ns = "cachet";
  std::string queue = "counters";
  KeyOptions keys{};
  std::chrono::milliseconds interval{1000};  // how often this object flushes; zero: only flush()
  BackoffOptions retry{std::chrono::milliseconds(100), std::chrono::milliseconds(5000), 2.0, 0.2};
  std::string metrics_label{};  // defaults to ns:queue
  // Hashes the counts spread over; 0: 1 on one server, 16 on a cluster. The
  // same in every process: counts left in the partitions of another count stay
  // there until a flusher with that count takes them.
  std::size_t partitions = 0;
  // increment() returns only once this many replicas have the increment (WAIT),
  // else throws ReplicationError; a flush hands a batch to the writer only once
  // they have its hand-over. 0: no wait. See docs/durability.md.
  Replication replication{};
};

template <class W>
  requires CounterWriter<W>
class WriteBehindCounters {
 public:
  // The pool must outlive the counters.
  WriteBehindCounters(Pool& pool, CountersOptions options, W writer)
      : options_(std::move(options)),
        writer_(std::move(writer)),
        queue_(RedisStore(pool), KeyBuilder(options_.ns, options_.keys).write_behind(options_.queue) + ":counts",
               options_.partitions),
        metrics_(MetricsRegistry::global().add(
            options_.metrics_label.empty() ? options_.ns + ":" + options_.queue : options_.metrics_label,
            queue_.key())),
        backoff_(options_.retry) {
    check_replication(options_.replication, pool.connection_options());
    if (options_.interval.count() > 0) background_.try_submit([this] { flush_periodically(); });
  }

  WriteBehindCounters(const WriteBehindCounters&) = delete;
  WriteBehindCounters& operator=(const WriteBehindCounters&) = delete;

  // Stops the periodic flusher and flushes once more (what fails stays in Redis for the next flush).
  ~WriteBehindCounters() {
    {
      std::lock_guard lock(wake_mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    background_.stop();
    try {
      flush();
    } catch (...) {
    }
    MetricsRegistry::global().remove(metrics_);
  }

  // Adds `by` to `id`'s pending count; returns the pending count. With
  // `replication` on, ReplicationError when too few replicas confirmed it in
  // time: counted on the master, but a failover now could lose it. A Redis
  // error (that one included) is counted as redis_error, as WriteBehind::write's.
  std::int64_t increment(std::string_view id, std::int64_t by = 1) {
    metrics_->count(Event::write);
    return in_redis([&] { return queue_.increment(id, by, options_.replication); });
  }

  // What `id` has gained that the database does not have yet (pending + flushing),
  // read in one MULTI so that a hand-over between the two reads is not counted twice.
  std::int64_t pending(std::string_view id) { return queue_.pending(id); }

  // Hands the pending counts over and writes them, partition by partition;
  // returns how many counters were written. A batch left by a failed flush is
  // written first. Throws the first writer exception or Redis error, after
  // trying every partition; what failed stays in Redis for the next flush.
  // Each partition that failed counts once: redis_error when Redis failed
  // (hand-over, done), write_error when the writer threw (whatever it threw).
  std::size_t flush() {
    std::lock_guard lock(flush_mutex_);
    std::size_t written = 0;
    std::exception_ptr failed;
    for (std::size_t p = 0; p < queue_.partitions(); ++p) {
      try {
        written += flush_partition(p);
      } catch (...) {
        if (!failed) failed = std::current_exception();
      }
    }
    if (failed) std::rethrow_exception(failed);
    return written;
  }

  CacheMetrics& metrics() noexcept { return *metrics_; }

 private:
  std::size_t flush_partition(std::size_t partition) {
    std::size_t written = 0;
    for (;;) {  // at most twice: a batch left over, then the current one
      std::optional<CounterBatch> batch = in_redis([&] { return queue_.hand_over(partition, options_.replication); });
      if (!batch) return written;
      try {
        writer_(batch->number, std::span<const CounterDelta>(batch->sums));
      } catch (...) {
        metrics_->count(Event::write_error);
        throw;
      }
      in_redis([&] { queue_.done(batch->number); });
      metrics_->count(Event::flushed, batch->sums.size());
      written += batch->sums.size();
      if (!batch->left_over) return written;
    }
  }

  // f(), a call to Redis: its error counted as redis_error.
  template <class F>
  std::invoke_result_t<F&> in_redis(F&& f) {
    try {
      return f();
    } catch (const Error&) {
      metrics_->count(Event::redis_error);
      throw;
    }
  }

  void flush_periodically() {
    std::unique_lock lock(wake_mutex_);
    while (!stop_) {
      const auto wait = backoff_.failures() == 0 ? options_.interval : backoff_.delay(backoff_.failures());
      if (wake_.wait_for(lock, wait, [&] { return stop_; })) return;
      lock.unlock();
      try {
        flush();
        backoff_.reset();
      } catch (...) {  // counted by flush(); what failed stays in Redis for the next round
        backoff_.record_failure();
      }
      lock.lock();
    }
  }

  CountersOptions options_;
  W writer_;
  RedisCounterQueue queue_;
  std::shared_ptr<CacheMetrics> metrics_;
  std::mutex flush_mutex_;
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  detail::Backoff backoff_;  // the periodic flusher's, after failures
  Executor background_{{.threads = 1, .queue = 1}};  // last: stopped first
};

}  // namespace cachet
