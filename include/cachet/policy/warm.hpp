#pragma once
// Cache warming: fill a cache ahead of traffic from a list of ids and a batch
// loader (the one get_many takes), while traffic is served.
//
//   cachet::WarmResult r = cachet::warm(products, ids, load_products, {.on_progress = print});
//
// The ids are cut into batches; `concurrency` workers each load a batch (one
// loader call) and write it in one pipeline (the store's write_many). Every
// write is only-if-absent (StoreWrite::only_if_absent): a value a reader loaded
// or a writer stored meanwhile is at least as new as the warm's, so it is kept;
// in a write-through cache (watch_writes) the write is also refused when a put
// or delete moved the key's write version since the batch was loaded, and in a
// tagging cache a tagged write when a tag invalidation of the namespace ran
// since (the tag epoch, read before each batch's load, as a load's). Ids the
// loader finds nothing for are not cached. A batch whose load or write fails is
// reported and the rest go on. The result carries a checkpoint: passed back as
// WarmOptions::resume, only the ids not yet warmed are loaded (failed ones again).

#include <cachet/codec/errors.hpp>
#include <cachet/error.hpp>
#include <cachet/policy/detail/write_access.hpp>
#include <cachet/store/concepts.hpp>
#include <cachet/store/write.hpp>

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace cachet {

struct WarmProgress {
  std::size_t done = 0;    // ids handled (warmed, kept, not found, or failed), counting a checkpoint's
  std::size_t total = 0;   // ids given
  std::size_t failed = 0;  // ids whose batch failed to load or write
  std::size_t kept = 0;    // ids not written: a value was cached, a write or a tag invalidation came, after the warm began
};

// Where a warm got to: ids [0, done_before) and the [begin, end) ranges of
// `done_after` (ascending, beyond done_before) need no warming; plain data, to
// persist as the caller likes. Meant for the same list of ids.
struct WarmCheckpoint {
  std::size_t done_before = 0;
  std::vector<std::pair<std::size_t, std::size_t>> done_after = {};
};

struct WarmOptions {
  std::size_t batch_size = 100;  // ids per loader call and per pipelined write
  std::size_t concurrency = 4;   // batches in flight at once (loader calls included)
  // After each batch, from a worker thread, one call at a time. An exception
  // thrown from it stops the warm and is rethrown by warm().
  std::function<void(const WarmProgress&)> on_progress = {};
  std::stop_token stop = {};  // once requested, no further batch starts; those running finish
  WarmCheckpoint resume = {};  // ids it marks as warmed are skipped
};

struct WarmResult {
  WarmProgress progress = {};
  WarmCheckpoint checkpoint = {};   // pass back as WarmOptions::resume to continue
  bool cancelled = false;           // stopped (stop token) before every batch ran
  std::vector<std::size_t> failed = {};  // indices into the ids of those that failed, ascending
  std::string first_error = {};
};

namespace detail {

template <class Cache, class L>
class Warmer {
  using V = typename Cache::value_type;
  using TagBuffers = typename WriteAccess<Cache>::TagBuffers;
  static_assert(ConditionalStore<std::remove_cvref_t<decltype(std::declval<Cache&>().store())>>,
                "cachet::warm writes only-if-absent: the cache's store must be a RedisStore or a TieredStore over one");

 public:
  Warmer(Cache& cache, std::span<const std::string_view> ids, L& loader, const WarmOptions& options)
      : access_(cache), cache_(cache), ids_(ids), loader_(loader), options_(options), done_(ids.size(), 0) {
    if (options_.batch_size == 0 || options_.concurrency == 0)
      throw std::invalid_argument("cachet: warm needs a batch size and a concurrency of at least 1");
    progress_.total = ids.size();
    plan();
  }

  WarmResult run() {
    std::vector<std::jthread> workers;
    const std::size_t n = std::min(options_.concurrency, batches_.size());
    for (std::size_t i = 0; i < n; ++i) workers.emplace_back([this] { work(); });
    workers.clear();  // joins
    if (callback_error_) std::rethrow_exception(callback_error_);
    WarmResult r{progress_, checkpoint(), next_.load() < batches_.size(), {}, std::move(first_error_)};
    for (std::size_t i = 0; i < ids_.size(); ++i)
      if (done_[i] == failed_mark) r.failed.push_back(i);
    return r;
  }

 private:
  static constexpr char warmed_mark = 1, failed_mark = 2;

  // What one batch came to: ids kept, and an error (empty: none) that failed all of them.
  struct Outcome {
    std::size_t kept = 0;
    std::string error;
  };

  // The batches: the ids the checkpoint does not mark done, `batch_size` at a time.
  void plan() {
    const WarmCheckpoint& c = options_.resume;
    for (std::size_t i = 0; i < std::min(c.done_before, ids_.size()); ++i) done_[i] = warmed_mark;
    for (auto [begin, end] : c.done_after)
      for (std::size_t i = begin; i < std::min(end, ids_.size()); ++i) done_[i] = warmed_mark;
    std::vector<std::size_t> batch;
    for (std::size_t i = 0; i < ids_.size(); ++i) {
      if (done_[i]) {
        ++progress_.done;
        continue;
      }
      batch.push_back(i);
      if (batch.size() == options_.batch_size) batches_.push_back(std::exchange(batch, {}));
    }
    if (!batch.empty()) batches_.push_back(std::move(batch));
  }

  void work() {
    while (!options_.stop.stop_requested() && !stopping_.load()) {
      const std::size_t b = next_.fetch_add(1);
      if (b >= batches_.size()) return;
      Outcome o;
      try {
        o = warm_batch(batches_[b]);
      } catch (const std::exception& e) {  // the loader's or tags callback's, or a batch answered wrongly
        o.error = e.what();
      } catch (...) {
        o.error = "unknown exception from the batch loader or tags callback";
      }
      report(batches_[b], o);
    }
  }

  // Loads one batch and writes what it found, only where nothing is cached.
  Outcome warm_batch(const std::vector<std::size_t>& batch) {
    std::vector<std::string_view> ids;
    std::vector<std::string> keys, watch;
    for (std::size_t i : batch) ids.push_back(ids_[i]), keys.push_back(cache_.key(ids_[i]));
    std::vector<std::optional<std::string>> seen;  // write versions before the load (write-through)
    if (access_.watching_writes()) {
      for (const std::string& k : keys) watch.push_back(cache_.keys().write_version(k));
      const std::vector<std::string_view> views(watch.begin(), watch.end());
      if (!access_.guarded([&] { seen = cache_.store().get_many(views); }, false)) return {0, "redis unreachable"};
    }
    typename WriteAccess<Cache>::Epoch epoch;  // before the load, as a CacheAside's load: see write()
    if (!access_.read_epoch(epoch)) return {0, "redis unreachable"};
    std::vector<std::optional<V>> loaded = loader_(std::span<const std::string_view>(ids));
    if (loaded.size() != ids.size())
      return {0, "batch loader returned " + std::to_string(loaded.size()) + " values for " + std::to_string(ids.size()) + " ids"};
    return write(keys, loaded, watch, seen, epoch.get());
  }

  // Writes a batch; when a tag invalidation ran since `epoch` was read (before
  // the load), its tagged writes are refused and counted as kept (see current()).
  Outcome write(const std::vector<std::string>& keys, const std::vector<std::optional<V>>& loaded,
                const std::vector<std::string>& watch, const std::vector<std::optional<std::string>>& seen,
                const std::string* epoch) {
    std::vector<std::string> bytes;
    std::vector<StoreWrite> writes;
    std::vector<const V*> values;  // per write
    bytes.reserve(keys.size());
    for (std::size_t j = 0; j < keys.size(); ++j) {
      if (!loaded[j]) continue;  // "does not exist" is not warmed
      Encoded e = access_.encode(keys[j], *loaded[j]);  // EncodeError fails the batch
      bytes.push_back(std::move(e.bytes));
      StoreWrite w{keys[j], bytes.back(), e.ttl};
      w.only_if_absent = true;
      if (!watch.empty()) w.watch = watch[j], w.seen = seen[j] ? std::optional<std::string_view>(*seen[j]) : std::nullopt;
      writes.push_back(w);
      values.push_back(&*loaded[j]);
    }
    BatchWriteResult r;
    TagBuffers tagged;  // the writes view it
    access_.tags_of(writes, values, tagged);  // the tags callback, outside the breaker: its throw is no outage
    std::size_t refused = 0;  // tagged writes dropped: the epoch moved (stamped on Redis Cluster)
    const auto send = [&] { r = access_.send_current(writes, epoch, tagged, refused); };
    if (!writes.empty() && !access_.guarded(send, false)) return {0, "redis unreachable"};
    if (r.failed != 0) return {0, "redis refused " + std::to_string(r.failed) + " writes: " + r.first_error};
    // Where tags are sets (one server, HashTag::ns) the write script refused them:
    // counted as send_current counts those it dropped.
    cache_.metrics().count(Event::stale_write_refused, r.stale_tags);
    return {r.superseded + refused, {}};
  }

  void report(const std::vector<std::size_t>& batch, const Outcome& o) {
    std::lock_guard lock(mutex_);
    for (std::size_t i : batch) done_[i] = o.error.empty() ? warmed_mark : failed_mark;
    progress_.done += batch.size();
    progress_.kept += o.kept;
    if (!o.error.empty()) {
      progress_.failed += batch.size();
      if (first_error_.empty()) first_error_ = o.error;
    }
    if (!options_.on_progress || callback_error_) return;
    try {
      options_.on_progress(progress_);
    } catch (...) {
      callback_error_ = std::current_exception();
      stopping_.store(true);
    }
  }

  WarmCheckpoint checkpoint() const {
    WarmCheckpoint c;
    while (c.done_before < done_.size() && done_[c.done_before] == warmed_mark) ++c.done_before;
    for (std::size_t i = c.done_before; i < done_.size(); ++i) {
      if (done_[i] != warmed_mark) continue;
      if (!c.done_after.empty() && c.done_after.back().second == i) ++c.done_after.back().second;
      else c.done_after.emplace_back(i, i + 1);
    }
    return c;
  }

  WriteAccess<Cache> access_;
  Cache& cache_;
  std::span<const std::string_view> ids_;
  L& loader_;
  const WarmOptions& options_;
  std::vector<std::vector<std::size_t>> batches_;
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;  // guards what follows
  std::vector<char> done_;  // per id: 0 to do, warmed_mark, failed_mark
  WarmProgress progress_;
  std::string first_error_;
  std::exception_ptr callback_error_;
};

}  // namespace detail

// Warms `cache` (a CacheAside over a store with conditional writes: RedisStore,
// or a TieredStore over one) with `loader(std::span<const std::string_view>)`,
// which returns a std::vector<std::optional<V>>, one per id, in order. Blocks
// until every batch ran or the warm was stopped. Throws std::invalid_argument
// for a batch size or concurrency of 0, and what on_progress throws.
template <class Cache, class BatchLoader>
  requires std::invocable<BatchLoader&, std::span<const std::string_view>>
WarmResult warm(Cache& cache, std::span<const std::string_view> ids, BatchLoader&& loader, const WarmOptions& options = {}) {
  return detail::Warmer<Cache, std::remove_reference_t<BatchLoader>>(cache, ids, loader, options).run();
}

}  // namespace cachet
