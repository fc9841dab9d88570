#pragma once
// An in-process store of decoded values: the first tier of a TieredStore. It is
// MemoryStore's machinery (sharded, bounded by entries and bytes, TTL-aware,
// SIEVE) holding, instead of bytes, a `Cached<V>`: the value as an immutable
// `std::shared_ptr<const V>` plus the envelope's metadata (created-at, soft
// expiry, compute time, negative), so a hit costs a hash and a reference-count
// increment: nothing is parsed and nothing is allocated, and
// stale-while-revalidate, fail-safe and early expiration judge the entry as
// they would its bytes. A thread that reads a key again is answered by its own
// handle on the value (detail/value_front.hpp), checked against the key's
// invalidation stamp, without the shard's lock: threads reading one hot key
// then share no written memory.
//
//   cachet::ValueStore<Product> l1({.max_entries = 10'000, .max_bytes = 16 << 20});
//   auto ticket = l1.ticket(key);                 // before the read is sent
//   ... read and decode the value from Redis ...
//   l1.fill(key, ticket, {std::make_shared<const Product>(p), meta}, bytes.size(), ttl);
//   std::optional<cachet::Cached<Product>> hit = l1.get(key);
//
// Values come in only by fill(), which keeps one only if its key was neither
// invalidated nor the store cleared since the ticket was taken: a read that was
// in flight when its key changed is not kept (the race Redis's client-side
// caching documentation warns about). What max_bytes counts for an entry is its
// key plus the `weight` given to fill (the size of the bytes it was decoded
// from: a stand-in for the decoded object's size).

#include <cachet/clock.hpp>
#include <cachet/codec/envelope.hpp>
#include <cachet/store/detail/memory_shard.hpp>
#include <cachet/store/memory_options.hpp>
#include <cachet/store/detail/value_front.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

namespace cachet {

// A value as the first tier keeps it; `value` is nullptr for a cached "does not exist".
template <class V>
struct Cached {
  std::shared_ptr<const V> value;
  EntryMeta meta;
};

// Thread-safe: every operation locks the one shard its key belongs to, except
// a hit answered by the calling thread's handle, which locks nothing.
// ValueStore tells time by CoarseSystemClock, cheap enough for every hit: an
// entry may be served for less than its resolution() past its TTL.
template <class V, Clock C = CoarseSystemClock>
class BasicValueStore {
 public:
  using value_type = V;
  using clock_type = C;
  using time_point = std::chrono::system_clock::time_point;

  // Taken before a value is read from elsewhere; fill() honours it.
  struct Ticket {
    std::uint64_t stamp = 0;
    time_point taken{};  // a kept value's TTL counts from here, when the read had not been sent yet
  };

  explicit BasicValueStore(MemoryStoreOptions options = {}, C clock = C{})
      : shards_(options), clock_(std::move(clock)), id_(next_id()) {}

  // The entry, or nullopt if absent or expired. Allocates nothing once this
  // thread has read the key before (it then holds a handle on the value).
  std::optional<Cached<V>> get(std::string_view key) { return get(key, clock_.now()); }
  // get() as of `now`, read from this store's clock by the caller, who can
  // judge the entry's own soft expiry by the same read.
  std::optional<Cached<V>> get(std::string_view key, time_point now) {
    std::optional<Cached<V>> out(std::in_place);
    if (get_into(key, now, *out) == nullptr) out.reset();
    return out;
  }
  // get() as of `now` into `out`, written in place (a hit's hot path copies no
  // temporary entry). Returns the entry's metadata as this store holds it, equal
  // to out.meta and valid until this thread's next call; nullptr, `out`
  // untouched, when absent or expired.
  const EntryMeta* get_into(std::string_view key, time_point now, Cached<V>& out) {
    const detail::KeyHash h(key);
    auto& shard = shards_.of(h);
    const std::uint64_t stamp = shard.stamp(h.slot());  // before the lookup: see MemoryShard::stamp
    if (const EntryMeta* mine = detail::ValueFront<V>::mine().find(id_, h.full, key, stamp, now, out)) return mine;
    auto found = shard.template get<Found>(key, h.slot(), now, [](const Node& n) {
      return Found{n.payload, n.expires, n.weight};
    });
    if (!found) return nullptr;
    take_handle(h, key, stamp, found->expires, found->entry, found->weight);
    out = std::move(found->entry);
    return &out.meta;
  }

  Ticket ticket(std::string_view key) {
    const detail::KeyHash h(key);
    return {shards_.of(h).stamp(h.slot()), clock_.now()};
  }

  // Keeps `entry` for `ttl` from when `t` was taken, unless `key` was
  // invalidated or the store cleared since (false, counted as refused). A ttl
  // that has already run out, or an entry too big for a shard, is not kept
  // either; any older entry of the key is dropped then.
  bool fill(std::string_view key, const Ticket& t, Cached<V> entry, std::size_t weight, std::chrono::milliseconds ttl) {
    const detail::KeyHash h(key);
    const time_point expires = shards_.expiry(t.taken, ttl);
    const Cached<V> kept = entry;  // the filling thread takes its handle once the fill holds
    if (!shards_.of(h).put(key, h.slot(), clock_.now(), expires, weight,
                           [&] { return Node::make(key, {}, weight, expires, std::move(entry)); }, &t.stamp))
      return false;
    take_handle(h, key, t.stamp, expires, kept, weight);
    return true;
  }

  // Drops the key's entry and refuses the fills of tickets taken before. True if it held one.
  bool invalidate(std::string_view key) {
    const detail::KeyHash h(key);
    return shards_.of(h).del(key, h.slot(), clock_.now());
  }

  // Drops everything and refuses every fill of a ticket taken before.
  void clear() { shards_.clear(); }

  // `hits` counts the hits that reached the shards: a thread's own handles
  // answer up to 63 of every 64 repeated reads of a key without them.
  MemoryStoreStats stats() const { return shards_.stats(); }
  const MemoryStoreOptions& options() const noexcept { return shards_.options(); }

 private:
  using Node = detail::MemoryNode<Cached<V>>;
  struct Found {
    Cached<V> entry;
    time_point expires;
    std::size_t weight;
  };

  // `stamp` was read before `entry` was: see MemoryShard::stamp.
  void take_handle(const detail::KeyHash& h, std::string_view key, std::uint64_t stamp, time_point expires,
                   const Cached<V>& entry, std::size_t weight) {
    using Front = detail::ValueFront<V>;
    if (weight <= Front::max_weight) Front::mine().keep(id_, h.full, key, stamp, expires, entry.value, entry.meta);
  }

  // Tells this store's handles in the threads' fronts from any other's, even one at the same address.
  static std::uint64_t next_id() noexcept {
    static std::atomic<std::uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  detail::MemoryShards<Node> shards_;
  C clock_;
  std::uint64_t id_;
};

template <class V>
using ValueStore = BasicValueStore<V, CoarseSystemClock>;

}  // namespace cachet
