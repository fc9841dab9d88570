#pragma once
// Write-behind on a durable queue: a write updates the cache and appends to a
// Redis Stream in one atomic script, then returns; flushers write batches to
// the database and acknowledge them only once it has them.
//
//   auto products_cache = cachet::make_cache<Product>(pool, {.ns = "shop", .name = "product"});
//   auto save = [&](std::span<const cachet::PendingWrite<Product>> batch) { db.upsert(batch); };
//   auto products = cachet::write_behind(products_cache, save);
//   products.write("42", product);      // XADD + SET in one script; no database call
//   products.get("42");                 // read-your-writes, also before the flush
//   products.flush();                   // everything written before is in the database
//
// The policy attaches to a cache the caller owns, which must outlive it; attach
// before the cache is shared (attaching switches on its write-version watching).
// Read through the policy (get, get_or_load) to see a pending write whose cache
// entry was evicted before its flush.
//
// - Durable: a write is in Redis before write() returns, and leaves the stream
//   only when the database has it (XACK after the batch write). Nothing is lost
//   when a flusher dies; as durable as Redis is (use AOF persistence, and a
//   maxmemory-policy that never evicts keys without a TTL: noeviction or volatile-*).
// - At-least-once: a flusher that dies between the database write and the XACK
//   has that batch written again by the next. Each write carries its stream
//   entry (PendingWrite::entry): the idempotency key, ordered like the writes.
// - Coalescing: writes of one id held by a flusher fold into the last (last
//   write wins; per-id order kept). With several flushers, or entries reclaimed
//   from a dead one, an older write can reach the database after a newer one:
//   upsert only when `entry` is newer than the row's (see PendingWrite).
// - Failures: a batch that fails is split until the failing writes stand alone;
//   those are retried with back-off and dead-lettered to {ns}:wb:{queue}:dead
//   after `max_attempts`, while the rest flows. A database that is down fails
//   every write: nothing is dead-lettered, rounds back off, the queue grows up
//   to `max_length`, where `on_full` blocks, rejects or lets it grow.
// - A value the cache tags (tag_loaded_values) joins its tag sets in the same
//   script; on Redis Cluster its entry (and queued bytes) carry the tags'
//   versions instead, read before the write, as CacheAside's tagged writes do.
// - Reads see pending writes: the cache entry is set with the write, and a read
//   that finds it evicted or expired before the flush looks in the pending hash
//   {ns}:wb:{queue}:pending. A load that overlaps a write and writes back the
//   old row is undone when that write is flushed.
// - flush() waits until every write queued before it is in the database (or
//   dead-lettered), up to `flush_timeout`, and reports what is left; the
//   destructor flushes (up to `drain_timeout`) and stops.
//
// Redis Cluster: the queue is split over `partitions` streams (16 by default),
// each in its own slot, an id's writes all in one (kept in order), and this
// object runs a flusher per partition, each reading from its partition's
// master. A write queues first (on the partition's node, WAITed for with
// `replication`), then sets the cache entry (on the entity's node, WAITed for
// too) unless a newer write of the id set it already. invalidate_tags makes a
// tagged entry stale there rather than deleting it: a read through the policy
// then finds the pending write, as on one server. docs/cluster.md has the layout.

#include <cachet/detail/poll.hpp>
#include <cachet/executor.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/detail/write_access.hpp>
#include <cachet/policy/detail/write_behind_flusher.hpp>
#include <cachet/policy/detail/write_policy.hpp>
#include <cachet/policy/write_queue.hpp>
#include <cachet/store/write.hpp>
#include <cachet/store/write_queue.hpp>

#include <unistd.h>

#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cachet {

template <detail::AttachableCache Cache, class W>
  requires BatchWriter<W, typename Cache::value_type>
class WriteBehind : public detail::WritePolicy<Cache, W> {
  using Base = detail::WritePolicy<Cache, W>;
  using Base::cache_, Base::access_, Base::writer_;
  using V = typename Cache::value_type;

 public:
  // Attaches to `cache`, which must outlive the policy. Over a TieredStore a
  // write drops the key from this process's in-process tier (and, with
  // tracking, from every process's).
  WriteBehind(Cache& cache, W writer, WriteBehindOptions write = {})
      : Base(cache, std::move(writer)),
        write_(named(std::move(write))),
        queue_(cache_.store().redis(), cache_.keys().write_behind(write_.queue), write_.partitions),
        background_({.threads = queue_.partitions(), .queue = queue_.partitions()}) {
    check_replication(write_.replication, cache_.store().redis().pool().connection_options());
    if (!write_.flusher) return;
    for (std::size_t p = 0; p < queue_.partitions(); ++p)
      flushers_.push_back(std::make_unique<Flusher>(
          cache_, one_at_a_time_, write_, queue_.reader(write_.group, write_.consumer, write_.poll, p),
          queue_.reconnect()));
    for (auto& f : flushers_) background_.try_submit([this, flusher = f.get()] { flusher->run(stop_); });
  }

  // With a flusher here: flushes for up to `drain_timeout`, then stops it. What
  // is left stays queued for the next flusher.
  ~WriteBehind() {
    if (flushers_.empty()) return;
    try {
      flush(write_.drain_timeout);
    } catch (...) {  // Redis down: the queue keeps what it holds
    }
    stop_.store(true, std::memory_order_release);
    background_.stop();
  }

  // Queues `value` for `id` and sets the cache, in one step (two on a cluster:
  // the queue's, then the entry's; a tagged write there first reads its tags'
  // versions, creating the counters of tags never seen); returns its stream
  // entry. Throws the Redis layer's errors: after a timeout, or on a cluster
  // an error in the entry's step, the write may be queued all the same (it is
  // flushed; writing again is harmless); else nothing was queued. EncodeError,
  // what the cache's tags callback throws (before anything is sent),
  // QueueFullError when the queue stays at its bound, and, with `replication`
  // on, ReplicationError when fewer replicas confirmed the queued write in time
  // (it is queued on the master and will be flushed unless a failover loses it).
  StreamId write(std::string_view id, const V& value) {
    cache_.metrics().count(Event::write);
    const std::string k = cache_.key(id);
    const detail::Encoded e = access_.encode(k, value);
    const std::string_view written = k;
    [[maybe_unused]] const auto forget = access_.forgetting({&written, 1});  // the enqueue script sets the entry
    const std::string write_version = cache_.keys().write_version(k);
    QueuedWrite w{id, k, e.bytes, e.ttl, write_version, e.ttl + write_.version_margin};
    TagBuffers keep;  // w views it
    StoreWrite tagged = tag(w, value, keep);  // the tags callback: its throw is not an outage, so before the breaker
    queue_.check(w);  // a refusal (keys in two slots, tag sets apart) before the circuit breaker could count it
    std::optional<Enqueued> queued;
    bool counted = false, stamped = false;
    const auto has_room = [&] {
      const bool grow = write_.on_full == QueueFull::grow;
      access_.guarded([&] {
        if (!std::exchange(stamped, true)) stamp(w, tagged, keep);  // once; in the enqueue's call to the breaker
        if (before_enqueue_for_test) before_enqueue_for_test();
        queued = queue_.enqueue(w, write_.max_length, grow, write_.replication);
      }, true);
      if (queued) return true;
      if (!std::exchange(counted, true)) cache_.metrics().count(Event::queue_full);
      return write_.on_full == QueueFull::reject;  // no waiting for room
    };
    detail::poll_until(std::chrono::steady_clock::now() + write_.block_for, std::chrono::milliseconds(1),
                       std::chrono::milliseconds(50), has_room);
    const std::string& partition = queue_.partition(queue_.partition_of(id)).stream;
    if (!queued)
      throw QueueFullError("cachet: write-behind queue " + partition + " is at its bound of " +
                           std::to_string(queue_.partition_bound(write_.max_length)) + " writes");
    if (queued->over_bound) over_bound(partition);
    return queued->entry;
  }

  // The cached value, or the pending write of `id` when the entry is gone before its flush.
  std::optional<V> get(std::string_view id) {
    if (std::optional<V> v = cache_.get(id)) return v;
    return pending(id);
  }

  // The cached value, the pending write, or what `loader` returns (stored for next time).
  template <Loader<V> L>
  auto get_or_load(std::string_view id, L&& loader) -> std::invoke_result_t<L&, std::string_view> {
    using Held = std::conditional_t<std::is_copy_constructible_v<std::decay_t<L>>, std::decay_t<L>, L&>;
    return cache_.get_or_load(id, PendingFirst<Held>{&cache_, queue_, std::forward<L>(loader)});
  }

  // Waits until every write queued before the call (by any process) is in the
  // database or dead-lettered, for up to `flush_timeout` (or `timeout`;
  // milliseconds::max(): no limit). A result that is false (the database
  // refusing every write, no flusher running) says what is left. Needs a
  // flusher running, here or elsewhere.
  FlushResult flush() { return flush(write_.flush_timeout); }
  FlushResult flush(std::chrono::milliseconds timeout) {
    const auto deadline = deadline_after(timeout);
    // A connection per check, not one held through the wait: the pool serves the writers meanwhile.
    std::vector<std::optional<StreamId>> last(queue_.partitions());
    for (std::size_t p = 0; p < last.size(); ++p) last[p] = queue_.last_id(p);
    struct Hurry {
      WriteBehind* policy;
      explicit Hurry(WriteBehind* w) : policy(w) { policy->hurry(1); }
      ~Hurry() { policy->hurry(-1); }
    } hurrying(this);
    std::size_t p = 0;  // the partitions before it are drained
    const auto drained = [&] {
      const bool late = std::chrono::steady_clock::now() >= deadline;
      try {
        while (p < last.size() && (!last[p] || !queue_.holds_up_to(*last[p], p))) ++p;
        return p == last.size();
      } catch (const Error& e) {  // a restart mid-wait: the queue is in Redis, ask again until the deadline
        if (late || !restarting(e)) throw;
        return false;
      }
    };
    if (detail::poll_until(deadline, std::chrono::milliseconds(1), std::chrono::milliseconds(20), drained)) return {};
    const QueueBacklog left = queue_.backlog();
    return {false, left.length, left.oldest};
  }

  // Writes queued and not yet in the database (XLEN).
  std::size_t queued() { return queue_.length(); }

  const WriteBehindOptions& write_options() const noexcept { return write_; }
  const std::string& stream() const noexcept { return queue_.stream(); }
  const std::string& dead_letters() const noexcept { return queue_.dead_letters(); }
  // The queue's partitions: stream() and dead_letters() are partition 0's.
  std::size_t partitions() const noexcept { return queue_.partitions(); }
  // Partition `i`'s keys (stream, pending hash, dead letters); throws std::out_of_range past partitions().
  const RedisWriteQueue::Partition& partition(std::size_t i) const { return queue_.partition(i); }
  // The index of the partition that holds `id`'s writes: partition(partition_of(id)) has its keys.
  std::size_t partition_of(std::string_view id) const noexcept { return queue_.partition_of(id); }

  // Tests only: called in write() after the tags' versions were read, before the enqueue.
  std::function<void()> before_enqueue_for_test;
  // Tests only: the fewest full takeover passes (XAUTOCLAIM) a flusher here has made.
  std::uint64_t reclaim_passes_for_test() const noexcept {
    std::uint64_t fewest = flushers_.empty() ? 0 : UINT64_MAX;
    for (const auto& f : flushers_) fewest = std::min(fewest, f->reclaim_passes());
    return fewest;
  }

 private:
  // A loader that looks for a pending write first (copied along with the user's
  // loader when a guard refreshes in the background). It holds the cache and a
  // copy of the queue, not this policy: a background refresh may run after the
  // policy is gone, never after the cache (whose destructor stops its jobs).
  template <class L>
  struct PendingFirst {
    Cache* cache;
    RedisWriteQueue queue;
    L loader;
    auto operator()(std::string_view id) -> std::invoke_result_t<std::remove_reference_t<L>&, std::string_view> {
      using R = std::invoke_result_t<std::remove_reference_t<L>&, std::string_view>;
      if (std::optional<V> v = pending_in(*cache, queue, id)) return R(std::move(*v));
      return loader(id);
    }
  };

  using TagBuffers = typename detail::WriteAccess<Cache>::TagBuffers;

  // `w` tagged as the cache tags its loads: the tag sets the enqueue script
  // joins; on Redis Cluster, stamp() then stamps its bytes with the tags'
  // versions (a read: throws the Redis layer's errors), so the entry and the
  // queued bytes the flush settles back both go stale when a tag is invalidated.
  // Returns the store write that `keep` and stamp() keep `w` in step with.
  StoreWrite tag(QueuedWrite& w, const V& value, TagBuffers& keep) {
    StoreWrite tagged{w.cache_key, w.bytes, w.ttl};
    const V* values[] = {&value};
    access_.tags_of({&tagged, 1}, values, keep);
    w.tag_sets = tagged.tag_sets;
    w.prune_sample = tagged.prune_sample;
    return tagged;
  }
  void stamp(QueuedWrite& w, StoreWrite& tagged, TagBuffers& keep) {
    access_.stamp_tags({&tagged, 1}, keep);
    w.bytes = tagged.bytes;
  }

  std::optional<V> pending(std::string_view id) { return pending_in(cache_, queue_, id); }

  // The value of `id`'s queued write; nullopt when none (or Redis is down).
  static std::optional<V> pending_in(Cache& cache, RedisWriteQueue& queue, std::string_view id) {
    const detail::WriteAccess<Cache> access(cache);
    std::optional<std::string> bytes;
    const bool reached = access.guarded([&] { bytes = queue.pending(id); }, cache.options().throw_redis_errors);
    if (!reached || !bytes) return std::nullopt;
    try {
      return access.decode_value(cache.key(id), *bytes);  // the key it was queued for, unless a version bump came between
    } catch (const DecodeError&) {
      cache.metrics().count(Event::decode_error);
      return std::nullopt;
    }
  }

  // An error Redis gives while it restarts: the connection lost or refused,
  // LOADING (reading its data set back) or BUSY (a script running long), or no
  // pooled connection free while the others reconnect.
  static bool restarting(const Error& e) {
    if (const auto* reply = dynamic_cast<const ReplyError*>(&e)) return reply->is("LOADING") || reply->is("BUSY");
    return dynamic_cast<const ConnectionError*>(&e) || dynamic_cast<const PoolTimeoutError*>(&e);
  }

  static std::chrono::steady_clock::time_point deadline_after(std::chrono::milliseconds timeout) {
    using steady = std::chrono::steady_clock;
    const auto now = steady::now();
    if (timeout >= std::chrono::duration_cast<std::chrono::milliseconds>(steady::time_point::max() - now))
      return steady::time_point::max();
    return now + timeout;
  }

  // While someone waits in flush(): the flushers flush what they hold without waiting for max_delay.
  void hurry(int delta) noexcept {
    for (auto& f : flushers_) f->hurry(delta);
  }

  void over_bound(const std::string& partition) {
    cache_.metrics().count(Event::queue_full);
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto last = last_warning_.load(std::memory_order_relaxed);
    const auto second = std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::seconds(1)).count();
    if (now - last < second || !last_warning_.compare_exchange_strong(last, now)) return;
    if (write_.on_warning)
      write_.on_warning("cachet: write-behind queue " + partition + " is past its bound of " +
                        std::to_string(queue_.partition_bound(write_.max_length)) + " writes; the database may be down");
  }

  // A unique consumer name unless one was given: host, pid, random suffix.
  static WriteBehindOptions named(WriteBehindOptions o) {
    if (!o.consumer.empty()) return o;
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    char suffix[9];
    std::snprintf(suffix, sizeof suffix, "%08x", random_suffix());
    o.consumer = std::string(host) + ":" + std::to_string(::getpid()) + ":" + suffix;
    return o;
  }

  // 32 random bits: OpenSSL's, or std::random_device's should OpenSSL fail (a
  // name needs to be unique, not secret); throws the standard library's error if both fail.
  static unsigned random_suffix() {
    unsigned char bytes[4] = {};
    if (RAND_bytes(bytes, sizeof bytes) != 1) return std::random_device{}();
    return unsigned(bytes[0]) << 24 | unsigned(bytes[1]) << 16 | unsigned(bytes[2]) << 8 | bytes[3];
  }

  // The batch writer as the flushers call it: one at a time, so it need not be
  // thread-safe when each partition has its own flusher. A flusher waiting for
  // it claims back its entries every `keep_every` (`waiting`), so that a long
  // batch of another partition's does not let other processes take them over.
  // (A flag and a condition variable rather than std::timed_mutex, whose timed
  // lock ThreadSanitizer does not see.)
  struct Turn {
    std::mutex mutex;
    std::condition_variable free;
    bool busy = false;
  };
  struct OneAtATime {
    W* writer;
    Turn* turn;
    std::chrono::milliseconds keep_every;
    void operator()(std::span<const PendingWrite<V>> batch, const std::function<void()>& waiting) const {
      std::unique_lock lock(turn->mutex);
      while (!turn->free.wait_for(lock, keep_every, [&] { return !turn->busy; })) {
        lock.unlock();
        waiting();
        lock.lock();
      }
      turn->busy = true;
      lock.unlock();
      struct Done {
        Turn* t;
        ~Done() {
          std::lock_guard l(t->mutex);
          t->busy = false;
          t->free.notify_one();
        }
      } done{turn};
      (*writer)(batch);
    }
  };
  using Flusher = detail::Flusher<V, OneAtATime, Cache>;

  WriteBehindOptions write_;
  RedisWriteQueue queue_;
  Turn writing_;
  OneAtATime one_at_a_time_{&writer_, &writing_, std::max(write_.reclaim_idle / 4, std::chrono::milliseconds(10))};
  std::atomic<bool> stop_{false};
  std::atomic<std::chrono::steady_clock::rep> last_warning_{0};
  std::vector<std::unique_ptr<Flusher>> flushers_;  // one per partition
  Executor background_;  // the flushers' threads; last: stopped first
};

// Attaches write-behind to `cache` (which must outlive the result):
//   auto products = cachet::write_behind(products_cache, save_batch, {.max_batch = 100});
template <class Cache, class W>
auto write_behind(Cache& cache, W&& writer, WriteBehindOptions options = {}) {
  static_assert(detail::AttachableCache<Cache>,
                "cachet::write_behind attaches to a CacheAside over Redis (RedisStore, or a TieredStore over it)");
  static_assert(BatchWriter<std::decay_t<W>, typename Cache::value_type>,
                "cachet::write_behind: the writer is called as writer(std::span<const cachet::PendingWrite<V>> batch)");
  return WriteBehind<Cache, std::decay_t<W>>(cache, std::forward<W>(writer), std::move(options));
}

}  // namespace cachet
