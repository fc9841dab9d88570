#pragma once
// A CacheAside's writes of what it loaded: one entry (store_entry) or a batch
// in one pipeline (write_back), each under the guard's lock check when there is
// one, tagged when the cache tags its values (and then refused when a tag
// invalidation ran during the load: read_epoch), and conditional on the key's
// write version in a write-through cache (watch_writes); on Redis Cluster a
// tagged entry is stamped with its tags' versions instead (TagVersions).
// Failures are counted, never thrown at the reader.

#include <cachet/policy/detail/lookup.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet::detail {

template <class V, Codec C, Guard G, Store S, Clock Clk>
class CacheWriteBack : public CacheLookup<V, C, G, S, Clk> {
  using Base = CacheLookup<V, C, G, S, Clk>;

 public:
  using Base::Base;
  using Base::options_, Base::store_, Base::keys_, Base::clock_, Base::metrics_, Base::tags_for_, Base::watch_writes_;
  using Base::guarded, Base::encode_entry, Base::tags_for, Base::tag_writes, Base::stamp_tags, Base::tag_versions;
  using TagBuffers = typename Base::TagBuffers;

  // A load's condition in a write-through cache (see watch_writes): the write
  // version key and what it held before the load; key empty: none.
  using Seen = std::vector<std::optional<std::string>>;
  struct Watch {
    std::string_view key;
    const std::optional<std::string>* seen = nullptr;
  };

  // The lock a guard holds for a load (Task::hold): the load's write carries its
  // check; `sent` once such a write was sent.
  struct Held {
    const LockCheck* check = nullptr;
    bool sent = false;
  };

  // The tag epoch before a load whose entries are tagged, for the write to
  // check: after stamping on Redis Cluster (see TagVersions), in the write's
  // script on one server's tag sets (see Tags). Untagged loads read nothing.
  struct Epoch {
    std::optional<std::string> value;  // none read: nothing to check
    const std::string* get() const noexcept { return value ? &*value : nullptr; }
  };

  // The write versions of `keys`, or nullopt (nothing may be stored) when Redis
  // is not reached. With `epoch`, a tagged load's epoch is read in the same round
  // trip (read_epoch then reads nothing): earlier than the loader needs, so at
  // worst an invalidation refuses one more write.
  std::optional<Seen> read_seen(std::span<const std::string> keys, Epoch* epoch = nullptr) {
    std::vector<std::string_view> views = key_views(keys);
    const std::string epoch_key = epoch && tags_for_ ? keys_.tag_epoch() : std::string();
    if (!epoch_key.empty()) views.push_back(epoch_key);
    Seen seen;
    if (!guarded([&] { seen = store_.get_many(views); }, false)) return std::nullopt;
    if (!epoch_key.empty()) epoch->value = seen.back().value_or(""), seen.pop_back();  // as TagVersions::epoch
    return seen;
  }

  // Reads it into `epoch` when the load's entries are tagged and read_seen did
  // not; false (nothing may be stored) when Redis is not reached.
  bool read_epoch(Epoch& epoch) {
    if (!tags_for_ || epoch.value) return true;
    return guarded([&] { epoch.value = tag_versions().epoch(); }, false);
  }

  // Writes a loaded value (or, for nullptr, a negative entry when enabled);
  // `epoch`: read_epoch's, nullptr when none was read.
  void store_entry(const std::string& k, const V* value, std::chrono::steady_clock::time_point started, Held& held,
                   const Watch& watch, const std::string* epoch = nullptr) {
    const auto compute = std::chrono::steady_clock::now() - started;
    std::optional<Encoded> e;
    try {
      if (!(e = encode_entry(k, value, clock_.now(), compute))) return;  // "does not exist" is not cached for this name
    } catch (const EncodeError&) {
      metrics_->count(Event::cache_write_error);  // the reader still gets the value
      return;
    }
    std::vector<std::vector<std::string>> tags(1);
    if (!loaded_tags(value, tags[0])) return;
    StoreWrite w = write_of({k, e->bytes, e->ttl}, watch);
    TagBuffers keep;  // w views it
    if constexpr (ConditionalStore<S>) tag_writes({&w, 1}, std::move(tags), keep);
    WriteResult result = WriteResult::written;
    const bool reached = guarded([&] { result = store_value(w, keep, held, epoch); }, false);
    if (!reached) metrics_->count(Event::cache_write_error);
    if (result == WriteResult::lock_lost) metrics_->count(Event::fenced_out);
    if (result == WriteResult::superseded) metrics_->count(Event::stale_write_refused);
  }

  // One pipelined write of everything a batch load found (and negative entries).
  void write_back(std::span<const std::string_view> keys, const std::vector<std::size_t>& missing,
                  const std::vector<std::optional<V>>& loaded, std::chrono::steady_clock::time_point started,
                  const std::vector<std::string>& watch_keys, const Seen* seen, const std::string* epoch = nullptr) {
    const auto now = clock_.now();
    const auto compute = (std::chrono::steady_clock::now() - started) / std::max<std::size_t>(loaded.size(), 1);
    std::vector<std::string> bytes;
    std::vector<StoreEntry> entries;
    std::vector<std::vector<std::string>> tags;  // per entry
    std::vector<Watch> watches;                  // per entry
    bytes.reserve(missing.size());
    entries.reserve(missing.size());
    for (std::size_t j = 0; j < missing.size(); ++j) {
      try {
        const V* value = loaded[j] ? &*loaded[j] : nullptr;
        std::optional<Encoded> e = encode_entry(keys[missing[j]], value, now, compute);
        std::vector<std::string> t;
        if (!e || !loaded_tags(value, t)) continue;
        bytes.push_back(std::move(e->bytes));
        entries.push_back({keys[missing[j]], bytes.back(), e->ttl});
        tags.push_back(std::move(t));
        watches.push_back(seen ? Watch{watch_keys[j], &(*seen)[j]} : Watch{});
      } catch (const EncodeError&) {
        metrics_->count(Event::cache_write_error);
      }
    }
    if (entries.empty()) return;
    std::vector<StoreWrite> writes;  // conditional or tagged writes; none: plain SETs
    TagBuffers keep;                 // the writes view it
    if constexpr (ConditionalStore<S>) {
      if (tags_for_ || watch_writes_) {
        writes.reserve(entries.size());
        for (std::size_t i = 0; i < entries.size(); ++i) writes.push_back(write_of(entries[i], watches[i]));
        tag_writes(writes, std::move(tags), keep);
      }
    }
    std::size_t refused = 0;
    const bool reached = guarded(
        [&] {
          try {
            store_values(entries, writes, keep, epoch);
          } catch (const BatchWriteError& e) {  // the server answered; some writes were refused
            refused = e.failed();
            metrics_->count(Event::redis_error);
          }
        },
        false);
    metrics_->count(Event::cache_write_error, reached ? refused : entries.size());
  }

  // A batch's writes (tagged into `keep`) stamped and sent in one pipeline. When the
  // epoch moved during the load (stamp_tags false, on Redis Cluster) only the
  // untagged ones are sent; the tagged, in `refused`, are counted
  // stale_write_refused once Redis answered the send. On one server's tag sets the
  // scripts refuse them (BatchWriteResult::stale_tags). Returns the store's answer;
  // throws Redis errors.
  BatchWriteResult send_current(std::span<StoreWrite> writes, const std::string* epoch, TagBuffers& keep,
                                std::size_t& refused) {
    std::span<const StoreWrite> sent = writes;
    std::vector<StoreWrite> kept;  // when the epoch moved: the untagged writes
    if (!stamp_tags(writes, epoch, keep)) {
      for (std::size_t i = 0; i < writes.size(); ++i)
        if (!keep.tagged[i]) kept.push_back(writes[i]);
      sent = kept;
    }
    refused = writes.size() - sent.size();
    // Counted once the send is answered: a batch Redis never got is a cache write error only.
    try {
      BatchWriteResult r = sent.empty() ? BatchWriteResult{} : store_.write_many(sent);
      metrics_->count(Event::stale_write_refused, refused);
      return r;
    } catch (const BatchWriteError&) {  // answered, some of the sent refused
      metrics_->count(Event::stale_write_refused, refused);
      throw;
    }
  }

 private:
  // The tags of a loaded value (nullptr: none) into `out`, called outside the
  // breaker (a throw is no outage). False when the tags callback throws: as for
  // a value that cannot be encoded, the entry is not stored, a cache write error
  // is counted and the reader still gets the value.
  bool loaded_tags(const V* value, std::vector<std::string>& out) {
    if constexpr (ConditionalStore<S>) {
      try {
        out = tags_for(value);
      } catch (...) {
        metrics_->count(Event::cache_write_error);
        return false;
      }
    }
    return true;
  }

  // A loaded value's write `w` (tag_writes tagged it into `keep`): under the guard's
  // lock check when there is one, stamped on Redis Cluster, conditional on the
  // watch in a write-through cache; the store executes it in one step.
  WriteResult store_value(StoreWrite& w, TagBuffers& keep, Held& held, const std::string* epoch) {
    if constexpr (ConditionalStore<S>) {
      if (!stamp_tags({&w, 1}, epoch, keep)) return WriteResult::superseded;
      w.lock_check = held.check;
      // Before it is sent: a timed-out write may have released the lock.
      held.sent = held.sent || (held.check && held.check->release);
      return store_.write(w);
    } else {
      store_.set(w.key, w.bytes, w.ttl);  // a store without locks: the guard releases its own
      return WriteResult::written;
    }
  }

  // A batch's writes: one pipeline, `writes` (tagged into `keep`) stamped and
  // written as store_value's, or when there are none `entries` set plainly.
  // When the epoch moved only the tagged writes are refused (here on Redis
  // Cluster, by their scripts on one server).
  void store_values(std::span<const StoreEntry> entries, std::vector<StoreWrite>& writes, TagBuffers& keep,
                    const std::string* epoch) {
    if constexpr (ConditionalStore<S>) {
      if (!writes.empty()) {
        std::size_t refused = 0;
        const BatchWriteResult r = send_current(writes, epoch, keep, refused);
        metrics_->count(Event::stale_write_refused, r.superseded);
        if (r.failed != 0) throw BatchWriteError(r.first_error, r.failed, writes.size() - refused);
        return;
      }
    }
    store_.set_many(entries);
  }

  // The store write of a loaded entry, conditional on `watch` when it has a key
  // (tag_writes tags it).
  static StoreWrite write_of(const StoreEntry& entry, const Watch& watch) {
    StoreWrite w{entry.key, entry.value, entry.ttl};
    if (!watch.key.empty()) {
      w.watch = watch.key;
      if (*watch.seen) w.seen = **watch.seen;
    }
    return w;
  }
};

}  // namespace cachet::detail
