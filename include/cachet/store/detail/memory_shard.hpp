#pragma once
// What the in-process stores share (MemoryStore keeps bytes, ValueStore keeps
// decoded values): entries in one allocation each, split into shards with a
// lock each, bounded by entry count and by bytes, TTL-aware, evicted by SIEVE.
//
// A shard also hands out stamps for conditional writes: put() given a stamp
// stores nothing if the key's stripe was invalidated (del) or the shard
// cleared since the stamp was taken. A value read from elsewhere is then never
// kept when an invalidation of its key arrived while the read was in flight.
// Stamps are read without the lock, so a copy made elsewhere (a thread's own
// copy of a value, detail/value_front.hpp) can be checked cheaply.

#include <cachet/clock.hpp>
#include <cachet/detail/key_hash.hpp>
#include <cachet/store/memory_options.hpp>
#include <cachet/store/detail/flat_index.hpp>
#include <cachet/store/detail/sieve_queue.hpp>
#include <cachet/store/detail/spin_mutex.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

namespace detail {

struct NoPayload {};

// One allocation per entry: this header (32 bytes, then the payload), then the
// key's bytes, then, for a byte store, the value's. `weight` is what max_bytes
// counts beside the key: the inline value's length, or a weight the caller gave.
template <class Payload>
struct MemoryNode {
  using time_point = std::chrono::system_clock::time_point;
  static constexpr std::size_t max_weight = (std::size_t{1} << 31) - 1;
  static constexpr std::size_t max_key = 0xFFFF'FFFF;

  struct Free {
    void operator()(MemoryNode* n) const noexcept {
      n->~MemoryNode();
      ::operator delete(n);
    }
  };
  using Ptr = std::unique_ptr<MemoryNode, Free>;

  template <class... Args>
  static Ptr make(std::string_view key, std::string_view inline_value, std::size_t weight, time_point expires,
                  Args&&... payload) {
    void* mem = ::operator new(sizeof(MemoryNode) + key.size() + inline_value.size());
    MemoryNode* n;
    try {
      n = ::new (mem) MemoryNode(expires, key.size(), weight, std::forward<Args>(payload)...);
    } catch (...) {
      ::operator delete(mem);
      throw;
    }
    std::copy_n(key.data(), key.size(), n->bytes());
    std::copy_n(inline_value.data(), inline_value.size(), n->bytes() + key.size());
    return Ptr(n);
  }

  std::string_view key() const noexcept { return {bytes(), key_size}; }
  // A byte store's value, stored after the key.
  std::string_view value() const noexcept
    requires std::same_as<Payload, NoPayload>
  {
    return {bytes() + key_size, weight};
  }
  std::size_t size() const noexcept { return std::size_t{key_size} + weight; }  // what max_bytes counts
  bool expired(time_point now) const noexcept { return now >= expires; }
  bool visited() const noexcept { return visited_ != 0; }
  void visit(bool v) noexcept { visited_ = v; }

  MemoryNode* newer = nullptr;
  MemoryNode* older = nullptr;
  time_point expires;
  std::uint32_t key_size;
  std::uint32_t weight : 31;
  std::uint32_t visited_ : 1;  // SIEVE's bit, beside the size so the header stays 32 bytes
  [[no_unique_address]] Payload payload;

 private:
  template <class... Args>
  MemoryNode(time_point e, std::size_t k, std::size_t w, Args&&... args)
      : expires(e), key_size(static_cast<std::uint32_t>(k)), weight(static_cast<std::uint32_t>(w)), visited_(0),
        payload(std::forward<Args>(args)...) {}
  char* bytes() const noexcept { return const_cast<char*>(reinterpret_cast<const char*>(this + 1)); }
};

static_assert(sizeof(MemoryNode<NoPayload>) == 32);

// The key's hash: its low half addresses the shard's index (and its stripe),
// its high half picks the shard.
struct KeyHash {
  explicit KeyHash(std::string_view key) noexcept : full(key_hash(key)) {}
  std::uint32_t slot() const noexcept {
    const auto h = static_cast<std::uint32_t>(full);
    return h != 0 ? h : 1;  // 0 marks an empty slot
  }
  std::size_t shard(std::size_t mask) const noexcept { return static_cast<std::size_t>(full >> 32) & mask; }
  std::uint64_t full;
};

// Nodes taken out under the lock, freed (payload and all) once it is released.
template <class Node>
class Graveyard {
 public:
  Graveyard() = default;
  Graveyard(const Graveyard&) = delete;
  Graveyard& operator=(const Graveyard&) = delete;
  ~Graveyard() {
    while (head_) typename Node::Free{}(std::exchange(head_, head_->older));
  }
  void add(Node* n) noexcept { n->older = std::exchange(head_, n); }

 private:
  Node* head_ = nullptr;
};

// The entries whose keys hash to one shard, behind one lock. Cache-line
// aligned, so two shards' locks never share a line.
template <class Node>
class alignas(64) MemoryShard {
 public:
  using time_point = typename Node::time_point;

  MemoryShard(std::size_t max_entries, std::size_t max_bytes)
      : max_entries_(max_entries), max_bytes_(max_bytes), index_(max_entries) {}
  MemoryShard(const MemoryShard&) = delete;
  MemoryShard& operator=(const MemoryShard&) = delete;
  ~MemoryShard() { clear(); }

  // R built from read(node) under the lock, or nullopt if absent or expired.
  template <class R, class Read>
  std::optional<R> get(std::string_view key, std::uint32_t h, time_point now, Read read) {
    Graveyard<Node> dead;
    std::lock_guard lock(mutex_);
    Node* n = live(key, h, now, dead);
    if (!n) {
      ++stats_.misses;
      return std::nullopt;
    }
    ++stats_.hits;
    if (!n->visited()) n->visit(true);  // no write to a line that is already marked
    return std::optional<R>(std::in_place, read(*n));
  }

  // Replaces the key's entry with make()'s node (of `weight`, made outside the
  // lock); an entry that is already expired, or too big to ever fit, only
  // removes the old one. Given a `stamp`, changes nothing unless the key was
  // neither invalidated nor cleared since the stamp was taken. True if stored.
  template <class Make>
  bool put(std::string_view key, std::uint32_t h, time_point now, time_point expires, std::size_t weight, Make make,
           const std::uint64_t* stamp = nullptr) {
    const bool expired = expires <= now, too_big = !can_hold(key.size(), weight);
    typename Node::Ptr n = expired || too_big ? nullptr : make();
    Graveyard<Node> dead;
    std::lock_guard lock(mutex_);
    if (stamp && *stamp != this->stamp(h)) {
      ++stats_.refused;
      return false;
    }
    Node* old = live(key, h, now, dead);
    if (old) remove(old, h, dead);
    if (!n) {
      stats_.rejected += !expired && too_big;
      return false;
    }
    n->visit(old != nullptr);  // a rewrite counts as a use of the key
    make_room(n->size(), now, dead);
    index_.insert(h, n.get());
    bytes_ += n->size();
    queue_.push(n.release());
    return true;
  }

  // Removes the key's entry, and refuses the conditional puts of its stripe
  // stamped before. True if a live entry was removed.
  bool del(std::string_view key, std::uint32_t h, time_point now) {
    Graveyard<Node> dead;
    std::lock_guard lock(mutex_);
    stripes_[h % stripes_.size()].fetch_add(1, std::memory_order_release);
    Node* n = live(key, h, now, dead);
    if (n) remove(n, h, dead);
    return n != nullptr;
  }

  // Removes every entry, and refuses every conditional put stamped before.
  void clear() {
    Graveyard<Node> dead;
    std::lock_guard lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
    index_.for_each([&dead](Node* n) { dead.add(n); });
    index_.clear();
    queue_.clear();
    bytes_ = 0;
  }

  // A stripe's counter moves on every del of a key of the stripe, the
  // generation on every clear; a stamp is both. 128 stripes a shard keep the
  // refusals that another key's invalidation causes rare. Both move under the
  // lock; read without it, a stamp taken before a lookup can only be older
  // than the entry found, which makes a check against it fail, never pass.
  std::uint64_t stamp(std::uint32_t h) const noexcept {
    return std::uint64_t{generation_.load(std::memory_order_acquire)} << 32 |
           stripes_[h % stripes_.size()].load(std::memory_order_acquire);
  }

  void add_stats(MemoryStoreStats& total) const {
    std::lock_guard lock(mutex_);
    total.size += index_.size();
    total.bytes += bytes_;
    total.hits += stats_.hits;
    total.misses += stats_.misses;
    total.evictions += stats_.evictions;
    total.expirations += stats_.expirations;
    total.rejected += stats_.rejected;
    total.refused += stats_.refused;
  }

 private:
  bool can_hold(std::size_t key_size, std::size_t weight) const noexcept {
    return max_entries_ > 0 && key_size <= Node::max_key && weight <= Node::max_weight &&
           key_size + weight <= max_bytes_;
  }

  // The key's entry unless it is absent or expired; an expired one is reclaimed.
  Node* live(std::string_view key, std::uint32_t h, time_point now, Graveyard<Node>& dead) {
    Node* n = index_.find(h, [key](const Node* e) { return e->key() == key; });
    if (!n || !n->expired(now)) return n;
    ++stats_.expirations;
    remove(n, h, dead);
    return nullptr;
  }

  // Evicts until an entry of `size` bytes fits. The hand takes an expired entry
  // as soon as it reaches it, even one that was hit.
  void make_room(std::size_t size, time_point now, Graveyard<Node>& dead) {
    while (index_.size() >= max_entries_ || bytes_ + size > max_bytes_) {
      Node* victim = queue_.victim([now](const Node* n) { return n->expired(now); });
      ++(victim->expired(now) ? stats_.expirations : stats_.evictions);
      remove(victim, KeyHash(victim->key()).slot(), dead);
    }
  }

  void remove(Node* n, std::uint32_t h, Graveyard<Node>& dead) noexcept {
    queue_.erase(n);
    index_.erase(h, n);
    bytes_ -= n->size();
    dead.add(n);
  }

  mutable SpinMutex mutex_;
  const std::size_t max_entries_;
  const std::size_t max_bytes_;
  FlatIndex<Node> index_;
  SieveQueue<Node> queue_;
  std::size_t bytes_ = 0;
  MemoryStoreStats stats_{};  // the counters; size and bytes come from the index
  std::array<std::atomic<std::uint32_t>, 128> stripes_{};
  std::atomic<std::uint32_t> generation_{0};
};

// The shards of one store, sized from its options.
template <class Node>
class MemoryShards {
 public:
  using time_point = typename Node::time_point;

  explicit MemoryShards(MemoryStoreOptions options) : options_(effective(options)) {
    using Index = FlatIndex<Node>;
    const std::size_t entries = std::min(options_.max_entries / options_.shards, Index::max_capacity);
    shards_.reserve(options_.shards);
    for (std::size_t i = 0; i < options_.shards; ++i)
      shards_.push_back(std::make_unique<MemoryShard<Node>>(entries, options_.max_bytes / options_.shards));
  }

  MemoryShard<Node>& of(const KeyHash& h) const { return *shards_[h.shard(options_.shards - 1)]; }

  void clear() {
    for (auto& s : shards_) s->clear();
  }

  // Sums the shards, locking one at a time: under writes the total is not one instant's.
  MemoryStoreStats stats() const {
    MemoryStoreStats total;
    for (const auto& s : shards_) s->add_stats(total);
    return total;
  }

  // The options in effect: `shards` as rounded.
  const MemoryStoreOptions& options() const noexcept { return options_; }

  // now + ttl, saturating instead of overflowing for huge TTLs.
  static time_point expiry(time_point now, std::chrono::milliseconds ttl) {
    const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(time_point::max() - now);
    return ttl < room ? now + ttl : time_point::max();
  }

 private:
  static constexpr std::size_t min_shard_entries = 64;
  static constexpr std::size_t max_shards = 1024;

  static MemoryStoreOptions effective(MemoryStoreOptions o) {
    o.shards = std::bit_ceil(std::clamp<std::size_t>(o.shards, 1, max_shards));
    while (o.shards > 1 && o.max_entries / o.shards < min_shard_entries) o.shards /= 2;
    return o;
  }

  MemoryStoreOptions options_;
  std::vector<std::unique_ptr<MemoryShard<Node>>> shards_;
};

}  // namespace detail
}  // namespace cachet
