#pragma once
// Two tiers: decoded values in this process (a ValueStore, L1) in front of
// Redis (L2), kept coherent across processes by Redis client tracking.
//
//   cachet::Pool pool(redis);
//   cachet::Tracking tracking(pool, {.prefixes = {"shop:"}});  // on a cluster: every master
//   cachet::TieredStore<cachet::ValueStore<Product>> store(
//       cachet::ValueStore<Product>({.max_entries = 10'000}), cachet::RedisStore(pool), &tracking);
//
// As a Store it is L2's bytes, and every write (set, del, batches, the
// conditional writes and invalidations L2 executes) drops the key's L1 entry
// once L2 has the write, so this process reads its own writes.
// The value tier is what CacheAside uses: cached(key) answers from L1 (no
// parse, no allocation); fetch(key) reads L2 with a ticket taken before the
// read is sent, and fill() keeps the decoded value in L1 only if neither an
// invalidation of that key nor a change of tracking state (a lost subscriber,
// a FLUSHALL) came in between. L1 keeps a value no longer than L2 still does
// (PTTL, read in the same round trip) nor than `l1_ttl`.
//
// Coherence: with a `Tracking` that is live, any change to a key under its
// prefixes, by anyone, drops the key from L1 within the invalidation delay
// (well under a millisecond on loopback); while tracking is not live L1 keeps
// nothing new, and every loss of the subscriber empties it. Without tracking
// (nullptr, or a server that refuses it) other processes' writes reach L1 only
// when its entries expire: `l1_ttl` is then the bound on staleness. L1 is
// filled only from what L2 read on a master (on a cluster too: no replica reads).

#include <cachet/redis/tracking.hpp>
#include <cachet/store/concepts.hpp>
#include <cachet/store/invalidation.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/store/value_store.hpp>
#include <cachet/store/write.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

struct TieredOptions {
  // The longest L1 keeps an entry (never longer than L2 does): with tracking a
  // safety net, without it the bound on how stale other processes' writes can be.
  std::chrono::milliseconds l1_ttl{60'000};
};

template <class L1, ExpiringStore L2 = RedisStore>
class TieredStore {
 public:
  using value_type = typename L1::value_type;
  using clock_type = typename L1::clock_type;  // L1's, which judges its TTLs

  // Taken before L2 is read: the L1 ticket, the tracking epoch and the pool's ASK count.
  struct Ticket {
    typename L1::Ticket l1;
    std::uint64_t epoch = 0;
    std::uint64_t asks = 0;
  };

  // What fetch() read from L2, for fill().
  struct Fetched {
    std::optional<std::string> bytes;  // nullopt: L2 does not have it
    std::chrono::milliseconds ttl{0};  // how long L1 may keep it, from the ticket
    Ticket ticket;
  };

  // `tracking` (nullptr: none) must cover the store's keys, and outlive its use
  // (destroying it before the store is harmless).
  TieredStore(L1 l1, L2 l2, Tracking* tracking = nullptr, TieredOptions options = {})
      : l1_(std::make_unique<L1>(std::move(l1))), l2_(std::move(l2)), tracking_(tracking), options_(options) {
    if constexpr (requires { l2_.pool(); }) {  // L1 never fills from a lagging replica
      require_master_role(l2_.pool().connection_options().sentinel, "cachet::TieredStore");
      // On a cluster the tracked masters are those of the Tracking's pool's map,
      // and only the store's own pool's redirections change it: they must be one.
      if (tracking_ && l2_.pool().cluster() && tracking_->pool() != &l2_.pool())
        throw ConfigError("cachet::TieredStore on a Redis Cluster: its Tracking must follow the store's own Pool, "
                          "Tracking(pool) with the RedisStore's pool (docs/cluster.md)");
    }
    if (tracking_)
      subscription_ = tracking_->listen([l1 = l1_.get()](std::optional<std::string_view> key) {
        if (key) l1->invalidate(*key);
        else l1->clear();
      });
  }

  // The Store: L2's bytes; writes drop the L1 entry once L2 has them.
  std::optional<std::string> get(std::string_view key) { return l2_.get(key); }
  std::vector<std::optional<std::string>> get_many(std::span<const std::string_view> keys) { return l2_.get_many(keys); }

  void set(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
    const Eviction e = evicting({&key, 1});  // also after a timeout: the write may have happened
    l2_.set(key, value, ttl);
  }
  bool del(std::string_view key) {
    const Eviction e = evicting({&key, 1});
    return l2_.del(key);
  }
  void set_many(std::span<const StoreEntry> entries) {
    std::vector<std::string_view> keys;
    keys.reserve(entries.size());
    for (const StoreEntry& e : entries) keys.push_back(e.key);
    const Eviction e = evicting(keys);  // also when some writes were refused: others went through
    l2_.set_many(entries);
  }
  std::size_t del_many(std::span<const std::string_view> keys) {
    const Eviction e = evicting(keys);
    return l2_.del_many(keys);
  }

  // L2's conditional writes (ConditionalStore): the written keys, and the keys
  // the write invalidates, leave L1 whether the write returned or threw; an
  // invalidation of tag sets or counters, which drops keys L1 cannot name,
  // reconciles L1 (see reconcile).
  static constexpr bool conditional_writes = ConditionalStore<L2>;

  WriteResult write(const StoreWrite& w, InvalidationResult* invalidated = nullptr)
    requires ConditionalStore<L2>
  {
    std::vector<std::string_view> keys{w.key};
    if (w.invalidation) keys.insert(keys.end(), w.invalidation->keys.begin(), w.invalidation->keys.end());
    const Eviction e = evicting(keys);
    const Reconciling r(*this, w.invalidation && unnamed(*w.invalidation));
    return l2_.write(w, invalidated);
  }
  BatchWriteResult write_many(std::span<const StoreWrite> writes)
    requires ConditionalStore<L2>
  {
    std::vector<std::string_view> keys;
    keys.reserve(writes.size());
    for (const StoreWrite& w : writes) keys.push_back(w.key);  // L2 refuses invalidations in a batch
    const Eviction e = evicting(keys);
    return l2_.write_many(writes);
  }
  InvalidationResult invalidate(const InvalidationTargets& targets)
    requires ConditionalStore<L2>
  {
    const std::vector<std::string_view> keys(targets.keys.begin(), targets.keys.end());
    const Eviction e = evicting(keys);
    const Reconciling r(*this, unnamed(targets));
    return l2_.invalidate(targets);
  }
  std::uint64_t incr(std::string_view key)
    requires ConditionalStore<L2>
  {
    return l2_.incr(key);
  }

  // The first tier.
  std::optional<Cached<value_type>> cached(std::string_view key) { return l1_->get(key); }
  // The same as of `now`, read by the caller from clock_type (one read for L1's TTL and the caller's judgement).
  std::optional<Cached<value_type>> cached(std::string_view key, std::chrono::system_clock::time_point now) {
    return l1_->get(key, now);
  }
  // The same into `out`, written in place; see BasicValueStore::get_into.
  const EntryMeta* cached_into(std::string_view key, std::chrono::system_clock::time_point now,
                               Cached<value_type>& out) {
    return l1_->get_into(key, now, out);
  }

  // Reads L2 (value and TTL, one round trip) under a ticket taken before the read is sent.
  Fetched fetch(std::string_view key) {
    Fetched f;
    f.ticket = ticket(key);
    if (auto v = l2_.get_with_ttl(key)) take(f, std::move(*v));
    return f;
  }

  std::vector<Fetched> fetch_many(std::span<const std::string_view> keys) {
    std::vector<Fetched> out(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) out[i].ticket = ticket(keys[i]);
    std::vector<std::optional<StoredValue>> values = l2_.get_many_with_ttl(keys);
    for (std::size_t i = 0; i < keys.size() && i < values.size(); ++i)
      if (values[i]) take(out[i], std::move(*values[i]));
    return out;
  }

  // Keeps what fetch() read, decoded, in L1, unless its key was invalidated or
  // tracking changed state since the ticket, or (on a cluster) the pool followed
  // an ASK meanwhile: the read may have come from a node importing the slot, which
  // may not be tracked yet (a new master not in the map), so later writes there
  // would go unheard. True if kept.
  bool fill(std::string_view key, const Fetched& f, Cached<value_type> entry) {
    if (!f.bytes) return false;
    if (tracking_ && (!Tracking::keeps(f.ticket.epoch) || tracking_->epoch() != f.ticket.epoch ||
                      asks() != f.ticket.asks))
      return false;
    return l1_->fill(key, f.ticket.l1, std::move(entry), f.bytes->size(), f.ttl);
  }

  // Drops the key from L1 (and refuses fills in flight): after a write to L2 made past this store.
  void evict(std::string_view key) { l1_->invalidate(key); }

  // Evicts `keys` when it goes: wrap an L2 write in it, so L1 forgets the keys
  // whether the write returned or threw (a timed-out write may have happened).
  class [[nodiscard]] Eviction {
   public:
    Eviction(TieredStore& store, std::span<const std::string_view> keys) noexcept : store_(store), keys_(keys) {}
    Eviction(const Eviction&) = delete;
    Eviction& operator=(const Eviction&) = delete;
    ~Eviction() {
      for (std::string_view k : keys_) store_.evict(k);
    }

   private:
    TieredStore& store_;
    std::span<const std::string_view> keys_;
  };
  Eviction evicting(std::span<const std::string_view> keys) noexcept { return {*this, keys}; }

  // After Redis dropped keys this store cannot name (a tag invalidation): with
  // tracking live, waits until their invalidations have reached L1; otherwise
  // empties L1.
  void reconcile() {
    if (!tracking_ || !tracking_->sync()) l1_->clear();
  }

  // Invalidation and tag-set upkeep: L2's (RedisStore's), after which L1
  // forgets what they touched: the keys it can name at once (also when L2
  // threw: the command may have run), the rest by reconcile() on success.
  void set_tagged(std::string_view key, std::string_view bytes, std::chrono::milliseconds ttl,
                  std::span<const std::string> tag_sets, std::size_t prune_sample) {
    const Eviction e = evicting({&key, 1});
    l2_.set_tagged(key, bytes, ttl, tag_sets, prune_sample);
  }
  void set_tagged_many(std::span<const StoreWrite> writes) {
    std::vector<std::string_view> keys;
    keys.reserve(writes.size());
    for (const StoreWrite& w : writes) keys.push_back(w.key);
    const Eviction e = evicting(keys);
    l2_.set_tagged_many(writes);
  }
  // Drops set members only, never a value: nothing in L1 changes.
  PruneResult prune_tag_set(std::string_view set, std::size_t budget = 1000, std::uint64_t cursor = 0) {
    return l2_.prune_tag_set(set, budget, cursor);
  }
  std::size_t unlink_matching(std::string_view pattern, const UnlinkMatchingOptions& options = {}) {
    const std::size_t n = l2_.unlink_matching(pattern, options);
    reconcile();
    return n;
  }

  L1& l1() noexcept { return *l1_; }
  L2& l2() noexcept { return l2_; }
  Tracking* tracking() const noexcept { return tracking_; }
  const TieredOptions& options() const noexcept { return options_; }
  // The Redis store under the tiers: what the lock guard runs on.
  auto& redis() noexcept
    requires requires(L2& s) { s.redis(); }
  {
    return l2_.redis();
  }

 private:
  Ticket ticket(std::string_view key) {
    const std::uint64_t epoch = tracking_ ? tracking_->epoch() : 0;
    return {l1_->ticket(key), epoch, asks()};
  }

  // The ASKs L2's pool followed so far (any thread's: a fill during a migration is refused, never wrongly kept).
  std::uint64_t asks() noexcept {
    if constexpr (requires { l2_.pool(); }) return l2_.pool().cluster_asks();
    else return 0;
  }

  // Reconciles L1 when it goes (if `needed`), whether the write returned or threw.
  class Reconciling {
   public:
    Reconciling(TieredStore& store, bool needed) noexcept : store_(store), needed_(needed) {}
    Reconciling(const Reconciling&) = delete;
    Reconciling& operator=(const Reconciling&) = delete;
    ~Reconciling() {
      if (needed_) store_.reconcile();
    }

   private:
    TieredStore& store_;
    bool needed_;
  };

  // Whether the targets drop keys L1 cannot name: tag members, or a namespace's (counters).
  static bool unnamed(const InvalidationTargets& t) noexcept { return !t.tag_sets.empty() || !t.counters.empty(); }

  void take(Fetched& f, StoredValue&& v) {
    f.bytes = std::move(v.bytes);
    f.ttl = std::min(options_.l1_ttl, v.ttl.value_or(options_.l1_ttl));
  }

  std::unique_ptr<L1> l1_;  // on the heap: the tracking listener holds its address across moves
  L2 l2_;
  Tracking* tracking_;
  TieredOptions options_;
  Tracking::Subscription subscription_;  // after l1_: removed before L1 goes
};

// A store with a first tier of decoded V (TieredStore): CacheAside reads it
// before the bytes, and keeps what it decodes from L2 in it.
template <class S, class V>
concept ValueTiered = Store<S> && requires(S& s, std::string_view key, std::span<const std::string_view> keys,
                                           const typename S::Fetched& f, Cached<V> entry) {
  { s.cached(key) } -> std::same_as<std::optional<Cached<V>>>;
  { s.fetch(key) } -> std::same_as<typename S::Fetched>;
  { s.fetch_many(keys) } -> std::same_as<std::vector<typename S::Fetched>>;
  { s.fill(key, f, entry) } -> std::same_as<bool>;
  s.evict(key);
  s.evicting(keys);
  s.reconcile();
  { s.tracking() } -> std::same_as<Tracking*>;
};

static_assert(RedisBacked<TieredStore<ValueStore<std::string>>>);
static_assert(ConditionalStore<TieredStore<ValueStore<std::string>>>);
static_assert(ValueTiered<TieredStore<ValueStore<std::string>>, std::string>);

}  // namespace cachet
