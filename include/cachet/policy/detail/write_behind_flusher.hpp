#pragma once
// The write-behind flusher: one consumer of the queue's consumer group on one
// partition (a RedisWriteQueue::Reader, on its own connection: its reads
// block); WriteBehind runs one per partition.
//
// - Reads its own pending entries first (a restart under the same consumer
//   name resumes them in order), and again after any error (a read whose reply
//   was lost delivered entries it never saw), then new ones.
// - Every `reclaim_idle / 2` it takes over entries another consumer left
//   pending that long (XAUTOCLAIM), and entries stranded behind the group's
//   read position in no pending list, which no read delivers (those also every
//   `poll` while someone waits in this object's flush()).
// - Holds at most `max_batch` ids. A write of an id already held replaces it
//   (coalescing: last write wins, per-id order kept); the replaced entry is
//   acknowledged with the one that replaced it.
// - Flushes when `max_batch` ids are ready or the oldest has waited `max_delay`.
//   A batch that fails is split in halves until the failing writes stand alone
//   (at most 2 log2(n) + 2 failed calls before anything succeeds: past that,
//   the database is taken to be down and the round is retried after a back-off).
//   A write that fails alone while others succeed, or with an error the options'
//   `rejected` recognises, is retried on its own back-off and, after
//   `max_attempts` such failures, dead-lettered with its error.
// - Acknowledges only what the database took (at-least-once: a flusher that dies
//   between the write and the acknowledgement has its batch written again).

#include <cachet/codec/errors.hpp>
#include <cachet/detail/backoff.hpp>
#include <cachet/metrics.hpp>
#include <cachet/policy/detail/write_access.hpp>
#include <cachet/policy/write_queue.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/store/write_queue.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace cachet::detail {

// Cache: the CacheAside whose entries the queue holds (decode, metrics).
template <class V, class W, class Cache>
class Flusher {
  using clock = std::chrono::steady_clock;

 public:
  // `reconnect`: the back-off of retries after a Redis error (the connection options').
  Flusher(Cache& cache, W& writer, const WriteBehindOptions& options, RedisWriteQueue::Reader reader,
          BackoffOptions reconnect)
      : cache_(cache), writer_(writer), options_(options), reader_(std::move(reader)), outage_(options.retry),
        redis_backoff_(reconnect), retry_(options.retry),
        not_yet_(std::max(reconnect.initial, std::chrono::milliseconds(1))) {}

  // Flushes until `stop`. Redis errors are counted and retried after a back-off
  // (`reconnect`); so is anything else, rather than let
  // the flusher end unseen.
  void run(const std::atomic<bool>& stop) {
    stop_ = &stop;
    while (!stop.load(std::memory_order_acquire)) {
      try {
        step();
        redis_backoff_.reset();
        loading_ = false;
      } catch (const ReplyError& e) {
        retry_after(e.is("LOADING"));
      } catch (...) {
        retry_after(false);
      }
    }
    try {
      settle_written();  // what the database already has, so that it is not written again
    } catch (const Error&) {
    }
  }

  // While someone waits in flush(): flush what is held without waiting for max_delay.
  void hurry(int delta) noexcept { hurry_.fetch_add(delta, std::memory_order_acq_rel); }
  // Full XAUTOCLAIM passes made so far (tests wait on it to see a takeover that does not come).
  std::uint64_t reclaim_passes() const noexcept { return reclaim_passes_.load(std::memory_order_acquire); }

 private:
  struct Held {
    StreamEntry head;                     // the latest write of the id
    std::vector<std::string> superseded;  // its earlier entries, acknowledged with it
    clock::time_point arrived;
    clock::time_point next_try{};  // its own back-off after failing alone
    std::size_t attempts = 0;      // failures alone while the database was up
  };

  // Written to the database, to be acknowledged (kept across Redis failures).
  struct Written {
    std::string id, entry, cache_key, write_version, bytes;
  };

  struct Failure {
    std::size_t index = 0;  // in the round
    std::string error{};
    bool rejected = false;  // the database refused the data (WriteBehindOptions::rejected)
  };

  // One round's split of a failed batch.
  struct Split {
    std::size_t budget = 0, failed_calls = 0;
    bool any_success = false;
    std::vector<std::size_t> written;
    std::vector<Failure> alone;  // writes that failed on their own
  };

  // After an error: the next step reads our own pending entries first (a reply
  // lost on the way may have delivered some), after the back-off; or, while Redis
  // loads its data set (LOADING: up, not failing), soon, without growing it,
  // and counted once for the whole load rather than at each retry.
  void retry_after(bool loading) {
    read_from_ = "0";
    if (!(loading && loading_)) cache_.metrics().count(Event::redis_error);
    loading_ = loading;
    if (loading) return pause_until(clock::now() + not_yet_);
    redis_backoff_.record_failure();
    pause_until(redis_backoff_.next_attempt());
  }

  void step() {
    settle_written();
    auto now = clock::now();
    if (now >= next_reclaim_) reclaim(now);
    if (room() > 0 && now - last_rescue_ >= (hurrying() ? options_.poll : reclaim_period())) rescue(now);
    if (room() > 0) read(now);
    now = clock::now();
    if (outage_.ready() && due(now)) return round();
    if (room() == 0) pause_until(wake(now));
  }

  std::size_t room() const { return held_.size() < options_.max_batch ? options_.max_batch - held_.size() : 0; }

  void read(clock::time_point now) {
    const bool history = read_from_ != ">";
    const auto block = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(wake(now) - now),
                                  std::chrono::milliseconds(1), options_.poll);
    std::vector<StreamEntry> entries = history ? reader_.read_own(read_from_, room()) : reader_.read_new(room(), block);
    if (history) read_from_ = entries.empty() ? std::string(">") : entries.back().entry.str();
    for (StreamEntry& e : entries) add(std::move(e), false);
  }

  // XAUTOCLAIM: entries other consumers left pending for `reclaim_idle`. Each
  // pass starts by claiming back what this flusher holds (their idle time back
  // to 0), so another flusher never takes over the entries of one that is alive,
  // busy or retrying through an outage, whether its batch is full or not.
  void reclaim(clock::time_point now) {
    const auto period = reclaim_period();
    if (reclaim_cursor_ == "0-0" && !entries_.empty())
      reader_.keep_own(entries_);
    if (room() == 0) {
      next_reclaim_ = now + period;
      return;
    }
    RedisWriteQueue::Reader::Claimed claimed = reader_.claim_idle(options_.reclaim_idle, reclaim_cursor_, room());
    reclaim_cursor_ = std::move(claimed.cursor);
    for (StreamEntry& e : claimed.entries) add(std::move(e), true);
    if (reclaim_cursor_ != "0-0") return;
    next_reclaim_ = now + period;  // a full pass: the next after half the idle time
    reclaim_passes_.fetch_add(1, std::memory_order_release);
  }

  std::chrono::milliseconds reclaim_period() const {
    return std::max(options_.reclaim_idle / 2, std::chrono::milliseconds(50));
  }

  // Takes the entries no read would deliver (behind the group's read position,
  // in no pending list): they would stay in the stream for ever.
  void rescue(clock::time_point now) {
    last_rescue_ = now;
    for (StreamEntry& e : reader_.claim_stranded(room())) add(std::move(e), true);
  }

  void add(StreamEntry e, bool reclaimed) {
    std::string entry = e.entry.str();
    if (!entries_.insert(entry).second) return;  // held already (our own, claimed back)
    if (reclaimed) cache_.metrics().count(Event::reclaimed);
    if (e.deleted) return settled_.push_back(std::move(entry));  // nothing to write, only to acknowledge
    const auto [it, fresh] = held_.try_emplace(e.id);
    Held& h = it->second;
    if (fresh) {
      h.head = std::move(e);
      h.arrived = clock::now();
      return;
    }
    cache_.metrics().count(Event::coalesced);
    if (e.entry > h.head.entry) {  // a newer write replaces the held one
      h.superseded.push_back(h.head.entry.str());
      h.head = std::move(e);
      h.attempts = 0;
      h.next_try = {};
    } else {  // an older one (reclaimed late) is settled with the newer
      h.superseded.push_back(std::move(entry));
    }
  }

  bool hurrying() const noexcept { return hurry_.load(std::memory_order_acquire) > 0; }

  // When the next batch is due: when the oldest ready write has waited
  // max_delay; now with max_batch ready or someone in flush(); never (max) with none.
  clock::time_point next_due(clock::time_point now) const {
    auto due = clock::time_point::max();
    std::size_t ready = 0;
    for (const auto& [id, h] : held_) {
      if (h.next_try > now) continue;
      ++ready;
      due = std::min(due, std::max(h.arrived, h.next_try) + options_.max_delay);
    }
    if (ready == 0) return clock::time_point::max();
    return ready >= options_.max_batch || hurrying() ? now : due;
  }

  bool due(clock::time_point now) const { return next_due(now) <= now; }

  // When to look again: the next batch, the end of an outage's back-off, or `poll`.
  clock::time_point wake(clock::time_point now) const {
    auto t = next_due(now);
    if (!outage_.ready(now)) t = std::max(t == clock::time_point::max() ? now : t, outage_.next_attempt());
    return std::min(t, now + options_.poll);
  }

  // One batch: the ready writes, oldest first, written (split on failure).
  void round() {
    const auto now = clock::now();
    std::vector<Held*> ready;
    for (auto& [id, h] : held_)
      if (h.next_try <= now && ready.size() < options_.max_batch) ready.push_back(&h);
    std::sort(ready.begin(), ready.end(), [](const Held* a, const Held* b) { return a->head.entry < b->head.entry; });
    std::vector<PendingWrite<V>> writes;
    std::vector<Held*> owners;
    for (Held* h : ready) {
      try {
        std::optional<V> v = WriteAccess<Cache>(cache_).decode_value(h->head.cache_key, h->head.bytes);
        if (!v) throw DecodeError("a negative cache entry");
        writes.push_back({h->head.id, std::move(*v), h->head.entry, h->superseded.size()});
        owners.push_back(h);
      } catch (const DecodeError& e) {
        cache_.metrics().count(Event::decode_error);
        dead_letter(*h, std::string("cannot decode the queued value: ") + e.what());
      }
    }
    if (writes.empty()) return;
    Split split;
    split.budget = 2 * static_cast<std::size_t>(std::ceil(std::log2(static_cast<double>(writes.size())))) + 2;
    write_split(std::span<const PendingWrite<V>>(writes), 0, split);
    const bool all_rejected =
        std::all_of(split.alone.begin(), split.alone.end(), [](const Failure& f) { return f.rejected; });
    const bool down = !split.any_success && (split.alone.empty() || !all_rejected);
    if (split.any_success) outage_.reset();
    if (down) outage_.record_failure();  // nothing says the writes are wrong: retry them all later
    for (std::size_t i : split.written) written(*owners[i]);
    for (const Failure& f : split.alone)
      if (split.any_success || f.rejected) failed_alone(*owners[f.index], f.error);
    settle_written();
  }

  // Writes `writes` (at `first` in the round); on failure, each half on its own.
  void write_split(std::span<const PendingWrite<V>> writes, std::size_t first, Split& split) {
    if (!split.any_success && split.failed_calls >= split.budget) return;  // taken for an outage
    Failure failure{first};
    if (write(writes, failure)) {
      split.any_success = true;
      for (std::size_t i = 0; i < writes.size(); ++i) split.written.push_back(first + i);
      return;
    }
    ++split.failed_calls;
    if (writes.size() == 1) return split.alone.push_back(std::move(failure));
    const std::size_t half = writes.size() / 2;
    write_split(writes.first(half), first, split);
    write_split(writes.subspan(half), first + half, split);
  }

  bool write(std::span<const PendingWrite<V>> writes, Failure& failure) {
    try {
      if constexpr (std::is_invocable_v<W&, std::span<const PendingWrite<V>>, const std::function<void()>&>)
        writer_(writes, std::function<void()>([this] { keep_held(); }));  // a writer shared with other flushers
      else
        writer_(writes);
      return true;
    } catch (const std::exception& e) {
      failure.error = e.what();
      failure.rejected = options_.rejected && options_.rejected(e);
    } catch (...) {
      failure.error = "unknown exception";
    }
    cache_.metrics().count(Event::write_error);
    return false;
  }

  // While waiting for a writer another flusher is using: claims back what this
  // one holds, so that no other process takes it over meanwhile (best effort:
  // a Redis error here is the next step's to meet).
  void keep_held() {
    try {
      if (!entries_.empty()) reader_.keep_own(entries_);
    } catch (const Error&) {
    }
  }

  void failed_alone(Held& h, const std::string& error) {
    if (++h.attempts >= options_.max_attempts) return dead_letter(h, error);
    h.next_try = clock::now() + retry_.delay(static_cast<std::uint32_t>(h.attempts));
  }

  // The database has it: moved out of `held_` (a newer write of the id starts afresh) to be acknowledged.
  void written(Held& h) {
    settled_.push_back(h.head.entry.str());
    settled_.insert(settled_.end(), h.superseded.begin(), h.superseded.end());
    std::string version = cache_.keys().write_version(h.head.cache_key);
    written_.push_back({h.head.id, h.head.entry.str(), h.head.cache_key, std::move(version), std::move(h.head.bytes)});
    held_.erase(h.head.id);
  }

  // Acknowledges what the database has taken; kept for the next try if Redis fails.
  void settle_written() {
    if (settled_.empty()) return;
    std::vector<SettledWrite> heads;
    heads.reserve(written_.size());
    for (const Written& w : written_) heads.push_back({w.id, w.entry, w.cache_key, w.write_version, w.bytes});
    reader_.settle(Settle::written, {}, settled_, heads);
    cache_.metrics().count(Event::flushed, written_.size());
    for (const std::string& e : settled_) entries_.erase(e);
    settled_.clear();
    written_.clear();
  }

  void dead_letter(Held& h, const std::string& error) {
    std::vector<std::string> entries = h.superseded;
    entries.push_back(h.head.entry.str());
    const std::string version = cache_.keys().write_version(h.head.cache_key);
    const SettledWrite head{h.head.id, entries.back(), h.head.cache_key, version, h.head.bytes};
    reader_.settle(Settle::dead, error, entries, {&head, 1});
    cache_.metrics().count(Event::dead_lettered, entries.size());
    for (const std::string& e : entries) entries_.erase(e);
    held_.erase(h.head.id);
  }

  void pause_until(clock::time_point until) {
    while (!stop_->load(std::memory_order_acquire) && clock::now() < until)
      std::this_thread::sleep_for(std::min<clock::duration>(until - clock::now(), std::chrono::milliseconds(10)));
  }

  Cache& cache_;
  W& writer_;
  const WriteBehindOptions& options_;
  RedisWriteQueue::Reader reader_;
  const std::atomic<bool>* stop_ = nullptr;
  std::map<std::string, Held, std::less<>> held_;  // by id
  std::unordered_set<std::string> entries_;        // every entry held or to settle, to drop repeats
  std::vector<std::string> settled_;               // entries to acknowledge: written, superseded, or deleted
  std::vector<Written> written_;                   // the writes among them
  std::string read_from_ = "0";                    // own pending entries first, then ">"
  std::string reclaim_cursor_ = "0-0";
  clock::time_point next_reclaim_{};
  clock::time_point last_rescue_{};
  bool loading_ = false;  // the last step met LOADING (counted already)
  Backoff outage_, redis_backoff_, retry_;
  std::chrono::milliseconds not_yet_;  // the pause while Redis is LOADING
  std::atomic<int> hurry_{0};
  std::atomic<std::uint64_t> reclaim_passes_{0};
};

}  // namespace cachet::detail
