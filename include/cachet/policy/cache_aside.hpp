#pragma once
// Cache-aside: look in the cache; on a miss call the loader, store what it
// returns, return it.
//
//   cachet::Pool pool(redis);
//   cachet::RedisStore store(pool);
//   cachet::CacheAside<Product> products(store, {.ns = "shop", .name = "product"});
//   Product p = products.get_or_load("42", [&](std::string_view id) { return db.product(id); });
//
// - The loader returns V, or std::optional<V> where nullopt means "does not exist";
//   with a negative TTL for the name, that answer is cached too.
// - A loader that throws: the exception reaches the caller, nothing is cached.
// - Redis down, slow or refusing: reads fall back to the loader (never a Redis
//   error on a read unless `throw_redis_errors`); a circuit breaker stops paying
//   the timeout while it is down and probes until it is back.
// - Bytes that do not decode (corrupt, foreign, another codec) are a miss: the
//   value is reloaded and rewritten, and `decode_error` is counted.
// - Over a TieredStore, lookups ask the in-process tier first: a fresh (or
//   negative) entry there is the answer, shared and undecoded; what is read from
//   Redis is kept there; every write and invalidation reaches both tiers.

#include <cachet/breaker.hpp>
#include <cachet/clock.hpp>
#include <cachet/codec/entry.hpp>
#include <cachet/codec/json.hpp>
#include <cachet/policy/detail/key_buffer.hpp>
#include <cachet/policy/loader.hpp>
#include <cachet/executor.hpp>
#include <cachet/guard/concepts.hpp>
#include <cachet/guard/no_guard.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/keys.hpp>
#include <cachet/metrics.hpp>
#include <cachet/invalidation/namespace_version.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/store/concepts.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/store/tiered_store.hpp>
#include <cachet/invalidation/tags.hpp>
#include <cachet/ttl.hpp>

#include <chrono>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cachet {

struct CacheOptions {
  std::string ns = "cachet";      // keys are {ns}:{name}:{id}
  std::string name{};             // the value's name: key part, TTL rule, metrics prefix
  KeyOptions keys{};
  TtlPolicy ttl{};                // the central TTL table; the rule for `name` applies
  Format format = Format::envelope;
  BreakerOptions breaker{};
  bool throw_redis_errors = false;  // let Redis errors on reads reach the caller
  std::string metrics_label{};    // the `cache` label of the metrics; defaults to ns:name
  ExecutorOptions background{};   // the workers of background refreshes and timed-out loads
  // A versioned namespace: keys are {ns}:{name}:v{N}:{id} with N = versions->current(name),
  // so versions->bump(name) invalidates every value at once. Must outlive the cache.
  NamespaceVersions* versions = nullptr;
};

template <class V, Codec C = JsonCodec<V>, Guard G = NoGuard, Store S = RedisStore, Clock Clk = SystemClock>
  requires CodecFor<C, V>
class CacheAside {
 public:
  using value_type = V;

  explicit CacheAside(S store, CacheOptions options, C codec = {}, G guard = {}, Clk clock = {})
      : options_(validated(std::move(options), store)),
        store_(std::move(store)),
        entries_(options_.format, std::move(codec)),
        guard_(std::move(guard)),
        clock_(std::move(clock)),
        keys_(options_.ns, options_.keys),
        key_prefix_(keys_.name_prefix(options_.name)),
        metrics_(MetricsRegistry::global().add(label(options_), options_.ns + ":" + options_.name)),
        breaker_(options_.breaker, [m = metrics_](BreakerState to) { m->count(transition_event(to)); }),
        sliding_(options_.ttl.sliding(options_.name)),
        version_(options_.versions ? &options_.versions->of(options_.name) : nullptr),
        executor_(options_.background) {
    follow_version();
  }

  CacheAside(const CacheAside&) = delete;
  CacheAside& operator=(const CacheAside&) = delete;
  ~CacheAside() {
    executor_.stop();  // running refreshes finish while everything they use still exists
    MetricsRegistry::global().remove(metrics_);
  }

  // The cached value, or nullopt on a miss or a negative entry. Never loads.
  std::optional<V> get(std::string_view id) {
    Lookup found = lookup_id(id);
    if (found.state == Lookup::value) return std::optional<V>(value_of(found.entry));
    return std::nullopt;
  }

  // get() without a copy: over a TieredStore an in-process hit is the value the
  // tier holds (no parse, no allocation); nullptr on a miss or a negative entry.
  std::shared_ptr<const V> get_shared(std::string_view id) {
    Lookup found = lookup_id(id);
    return found.state == Lookup::value ? shared(std::move(found.entry)) : nullptr;
  }

  // The cached value, or what `loader(id)` returns (stored for next time).
  // Returns what the loader returns: V, or std::optional<V>. Misses and stale
  // entries go through the guard. A guard that refreshes in the background
  // (stale-while-revalidate, early expiration, load timeouts) runs a copy of
  // the loader later: it must be copyable and must not refer to the caller's stack.
  template <Loader<V> L>
  auto get_or_load(std::string_view id, L&& loader) -> std::invoke_result_t<L&, std::string_view> {
    using R = std::invoke_result_t<L&, std::string_view>;
    return through(id, loader, [](Entry& e) { return R(value_of(e)); }, [](R&& r) -> R { return std::move(r); });
  }

  // get_or_load without a copy of a cached value (see get_shared); nullptr for
  // "does not exist".
  template <Loader<V> L>
  std::shared_ptr<const V> get_or_load_shared(std::string_view id, L&& loader) {
    return through(id, loader, [](Entry& e) { return shared(std::move(e)); }, [](auto&& r) { return share(std::move(r)); });
  }

  // One MGET for all ids, one call of `batch_loader(missing_ids)` for the misses
  // (it returns a vector of std::optional<V>, one per missing id, in order), and
  // one pipelined write of what it found. Results are in the order of `ids`.
  template <class BatchLoader>
    requires std::invocable<BatchLoader&, std::span<const std::string_view>>
  std::vector<std::optional<V>> get_many(std::span<const std::string_view> ids, BatchLoader&& batch_loader) {
    std::vector<std::optional<V>> out(ids.size());
    if (ids.empty()) return out;  // no call to Redis, so nothing a half-open breaker could mistake for a probe
    std::vector<std::string> keys;
    keys.reserve(ids.size());
    std::vector<std::size_t> missing;
    bool reachable = true;
    for (auto id : ids) {
      std::string k;
      if (!read_key(id, k)) {  // no version to address the cache by: every id is loaded, nothing stored
        metrics_->count(Event::miss, ids.size());
        reachable = false;
        for (std::size_t i = 0; i < ids.size(); ++i) missing.push_back(i);
        break;
      }
      keys.push_back(std::move(k));
    }
    if (reachable) reachable = lookup_many(keys, out, missing);
    if (missing.empty()) return out;

    std::vector<std::string_view> missing_ids;
    for (std::size_t i : missing) missing_ids.push_back(ids[i]);
    std::vector<std::string> watch_keys;  // write versions before the load (see watch_writes)
    std::optional<Seen> seen;
    if (reachable && watch_writes_) {
      for (std::size_t i : missing) watch_keys.push_back(keys_.write_version(keys[i]));
      reachable = (seen = read_seen(watch_keys)).has_value();
    }
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::optional<V>> loaded =
        call_loader([&] { return batch_loader(std::span<const std::string_view>(missing_ids)); });
    if (loaded.size() != missing.size())
      throw std::invalid_argument("cachet: batch loader returned " + std::to_string(loaded.size()) + " values for " +
                                  std::to_string(missing.size()) + " ids");
    if (reachable) write_back(keys, missing, loaded, started, watch_keys, seen ? &*seen : nullptr);
    for (std::size_t j = 0; j < missing.size(); ++j) out[missing[j]] = std::move(loaded[j]);
    return out;
  }

  // Stores `value` for `id` (a write-through, say). Redis errors are thrown: the
  // caller asked for this write and must know it did not happen. A cache that
  // tags what it loads (tag_loaded_values) tags what it is given the same way.
  void set(std::string_view id, const V& value) {
    if constexpr (RedisBacked<S>) {
      if (tags_for_) return set(id, value, tags_for_(value));
    }
    const Encoded e = encode(value);
    store_.set(key(id), e.bytes, e.ttl);
  }

  // Removes `id`'s entry. Throws on Redis errors: a failed invalidation leaves stale data.
  bool invalidate(std::string_view id) { return store_.del(key(id)); }

  std::size_t invalidate_many(std::span<const std::string_view> ids) {
    std::vector<std::string> keys;
    keys.reserve(ids.size());
    for (auto id : ids) keys.push_back(key(id));
    return store_.del_many(views(keys));
  }

  // Tagged write (RedisStore): the value is stored and added to each tag's set in
  // one atomic script, so invalidate_tags can never miss it. Throws on Redis errors.
  template <TagList R>
    requires RedisBacked<S>
  void set(std::string_view id, const V& value, const R& tags) {
    refuse_tags_if_sliding();
    const Encoded e = encode(value);
    const std::string k = key(id);
    const std::string_view written = k;
    [[maybe_unused]] const auto forget = forgetting({&written, 1});
    tag_sets().set_tagged(k, e.bytes, e.ttl, tags);
  }
  void set(std::string_view id, const V& value, std::initializer_list<std::string_view> tags)
    requires RedisBacked<S>
  {
    set(id, value, std::span<const std::string_view>(tags.begin(), tags.size()));
  }

  // Removes every value tagged with any of `tags` ({ns}:tag:{tag}: shared by the
  // namespace's caches). Throws on Redis errors. Over a TieredStore, returns once
  // this process's in-process tier has dropped them too.
  template <TagList R>
    requires RedisBacked<S>
  std::size_t invalidate_tags(const R& tags) {
    const std::size_t n = tag_sets().invalidate(tags);
    settle();
    return n;
  }
  std::size_t invalidate_tags(std::initializer_list<std::string_view> tags)
    requires RedisBacked<S>
  {
    return invalidate_tags(std::span<const std::string_view>(tags.begin(), tags.size()));
  }

  // Tags every value this cache loads (get_or_load, get_many) with `tags_for(value)`,
  // in the same script as its write. Set it before the cache is shared.
  void tag_loaded_values(std::function<std::vector<std::string>(const V&)> tags_for)
    requires RedisBacked<S>
  {
    refuse_tags_if_sliding();
    tags_for_ = std::move(tags_for);
  }

  // For the write policies, whose writes change each written key's write version
  // ({ns}:wv:{key}): a load notes it first, and its write is refused if a write
  // changed it meanwhile. Else a load that read the old row could overwrite the
  // write's newer value until the TTL. Costs a GET per load. Attaching a write
  // policy (write_through, write_behind) switches it on; do that before sharing.
  void watch_writes()
    requires RedisBacked<S>
  {
    watch_writes_ = true;
  }

  // Throws the Redis layer's errors if a versioned name's version was never read.
  std::string key(std::string_view id) const {
    std::string k;
    append_key(k, id);
    return k;
  }

  // For the write policies built on a cache (WriteThrough, WriteBehind), which
  // write entries in their own scripts. A fresh entry of `value` made now, as a
  // load would store it: its bytes and its Redis TTL. Throws EncodeError.
  struct Encoded {
    std::string bytes;
    std::chrono::milliseconds ttl;
  };
  Encoded encode(const V& value) const {
    const auto now = clock_.now();
    const Expiry e = options_.ttl.expiry(options_.name, now);
    return {entries_.encode(value, meta(now, e, {})), e.ttl};
  }
  // The value in an entry's bytes, fresh or stale; nullopt for a negative entry. Throws DecodeError.
  std::optional<V> decode_value(std::string_view bytes) const { return entries_.decode(bytes).value; }

  // Runs a Redis operation under the cache's circuit breaker. Returns false when
  // Redis was not reached (breaker open, or the call failed); errors and skips
  // are counted, and thrown only when `rethrow` is set.
  template <class Op>
  bool guarded(Op&& op, bool rethrow) {
    return attempt(std::forward<Op>(op), rethrow) == Reach::reached;
  }

  // guarded(), telling a failed call from one the open breaker skipped.
  enum class Reach { reached, failed, skipped };
  template <class Op>
  Reach attempt(Op&& op, bool rethrow) {
    if (!breaker_.allow()) {
      metrics_->count(Event::redis_skipped);
      if (rethrow) throw ConnectionError("cachet: circuit breaker open, redis skipped");
      return Reach::skipped;
    }
    try {
      op();
      breaker_.success();
      return Reach::reached;
    } catch (const ReplyError&) {  // the server answered: a per-key refusal, not an outage
      breaker_.success();
      metrics_->count(Event::redis_error);
      if (rethrow) throw;
      return Reach::failed;
    } catch (const Error&) {  // connection, timeout, pool exhausted
      breaker_.failure();
      metrics_->count(Event::redis_error);
      if (rethrow) throw;
      return Reach::failed;
    } catch (...) {
      breaker_.failure();
      throw;
    }
  }
  // Around writes still made past the store (Tags::set_tagged, write-behind's
  // enqueue; the store's own writes evict for themselves): over a TieredStore, the keys leave the in-process tier
  // when the returned object goes, whether the write returned or threw.
  auto forgetting([[maybe_unused]] std::span<const std::string_view> keys) {
    if constexpr (tiered) return store_.evicting(keys);
    else return 0;
  }

  // After an invalidation that deleted keys the cache cannot name (a tag's):
  // over a TieredStore, returns once this process's in-process tier has
  // dropped them (TieredStore::reconcile).
  void settle() {
    if constexpr (tiered) store_.reconcile();
  }

  // For the write policies: tags `w` as this cache tags `value` (tag_loaded_values,
  // into the {ns}:tag:{tag} sets, which `sets` keeps for `w` to view); nothing
  // when it tags nothing.
  void tag_write(StoreWrite& w, const V& value, std::vector<std::string>& sets) const {
    if (!tags_for_) return;
    for (const std::string& tag : tags_for_(value)) sets.push_back(keys_.tag(tag));
    w.tag_sets = sets;
    w.prune_sample = TagOptions{}.prune_sample;  // as the cache's Tags (tag_sets())
  }

  // The tags this cache gives `value` (tag_loaded_values); empty when it tags nothing.
  std::vector<std::string> tags_of(const V& value) const {
    return tags_for_ ? tags_for_(value) : std::vector<std::string>{};
  }
  const KeyBuilder& keys() const noexcept { return keys_; }
  CacheMetrics& metrics() noexcept { return *metrics_; }
  const CircuitBreaker& breaker() const noexcept { return breaker_; }
  S& store() noexcept { return store_; }
  G& guard() noexcept { return guard_; }
  const CacheOptions& options() const noexcept { return options_; }
  Executor& executor() noexcept { return executor_; }

 private:
  static constexpr bool tiered = ValueTiered<S, V>;
  // An entry in hand: over a TieredStore, shared with the in-process tier.
  using Entry = std::conditional_t<tiered, Cached<V>, typename EntryCodec<C>::Decoded>;
  // What a read of the store gives back before it is decoded.
  template <class St, bool = tiered>
  struct FetchedOf {
    using type = std::optional<std::string>;
  };
  template <class St>
  struct FetchedOf<St, true> {
    using type = typename St::Fetched;
  };
  using Fetched = typename FetchedOf<S>::type;

  struct Lookup {
    // stale: past its soft expiry, kept only for stale serving; without a guard
    // that serves it, it is reloaded like a miss.
    enum State { value, negative, stale, miss } state = miss;
    bool reachable = true;  // Redis answered (or was not needed)
    Entry entry{};
  };

  // The value of an entry that holds one: moved out, or the tier's shared copy.
  static decltype(auto) value_of(Entry& e) {
    if constexpr (tiered) return std::as_const(*e.value);
    else return std::move(*e.value);
  }
  static std::shared_ptr<const V> shared(Entry&& e) {
    if constexpr (tiered) return std::move(e.value);
    else return std::make_shared<const V>(std::move(*e.value));
  }
  template <class R>
  static std::shared_ptr<const V> share(R&& r) {
    if constexpr (detail::is_optional<std::remove_cvref_t<R>>::value) return r ? share(std::move(*r)) : nullptr;
    else return std::make_shared<const V>(std::move(r));
  }

  // A key's write version before a load (see watch_writes), read at most once per task.
  struct WriteMark {
    enum { unread, known, unknown } state = unread;  // unknown: Redis was not reached
    std::string key;                                 // the write version's key, once read
    std::optional<std::string> version;              // nullopt: no put yet
  };

  // The lock a guard holds for a load (Task::hold): the load's write carries its
  // check; `sent` once such a write was sent.
  struct Held {
    const LockCheck* check = nullptr;
    bool sent = false;
  };

  // One guarded load: what a guard is given (the protocol is in guard/concepts.hpp).
  // L is the caller's loader by reference, or a copy for a background job.
  template <class L>
  class Task {
   public:
    using result_type = std::invoke_result_t<std::remove_cvref_t<L>&, std::string_view>;

    Task(CacheAside& cache, std::string key, std::string id, L loader, Lookup found, Why why, bool refresh_only)
        : cache_(&cache), key_(std::move(key)), id_(std::move(id)), loader_(std::forward<L>(loader)),
          found_(std::move(found)), why_(why), refresh_only_(refresh_only) {}

    result_type load() { return cache_->load(key_, id_, loader_, reachable(), held_, mark_); }
    const std::string& key() const noexcept { return key_; }
    // In a write-through cache, the key's write version as this task first read
    // it: a caller that comes after a put reads another, so a load begun before
    // the put (which may have read the old row) is never shared with it.
    std::string flight_key() { return cache_->flight_key(key_, mark_, reachable()); }
    std::string lock_key() const { return cache_->keys_.lock(key_); }
    Why why() const noexcept { return why_; }
    const V* current() const noexcept {
      return why_ != Why::miss && found_.entry.value ? &*found_.entry.value : nullptr;
    }
    std::chrono::nanoseconds age() const { return now() - found_.entry.meta.created_at; }
    bool reachable() const noexcept { return found_.reachable; }
    bool refresh_only() const noexcept { return refresh_only_; }
    // Newer than the value in hand (if any): a refresh is not done by finding its own input.
    std::optional<result_type> reread() {
      return cache_->template reread<result_type>(key_, current() ? found_.entry.meta.created_at
                                                                   : EntryMeta::time_point::min());
    }
    result_type serve_current() {
      if (why_ == Why::stale && !refresh_only_) count(Event::stale_hit);  // a caller got it
      return skip();
    }
    result_type skip() const {
      if (!current()) throw std::logic_error("cachet: a guard served the value in hand of a task that has none");
      return result_type(*current());
    }
    void hold(const LockCheck* check) noexcept {
      if (check) held_.sent = false;
      held_.check = check;
    }
    bool hold_sent() const noexcept { return held_.sent; }
    Task<std::remove_cvref_t<L>> detach(bool refresh_only) const {
      static_assert(std::is_copy_constructible_v<std::remove_cvref_t<L>>,
                    "cachet: a background load runs a copy of the loader, which must be copyable");
      return {*cache_, key_, id_, loader_, found_, why_, refresh_only};
    }
    Executor& executor() noexcept { return cache_->executor_; }
    EntryMeta::time_point now() const { return cache_->clock_.now(); }
    void count(Event e) { cache_->metrics_->count(e); }

   private:
    CacheAside* cache_;
    std::string key_, id_;
    L loader_;
    Lookup found_;
    Why why_;
    bool refresh_only_;
    Held held_;               // the lock guard's check, while it holds the lock
    WriteMark mark_;          // read once, by flight_key() or load(), whichever comes first
  };

  // Whether the guard recomputes this fresh entry early (XFetch); never for plain entries.
  bool picked_early(const EntryMeta& meta) {
    if constexpr (EarlyRefreshing<G>) {
      return meta.fresh_until != EntryMeta::time_point::max() && guard_.refresh_early(meta, clock_.now());
    }
    return false;
  }

  // A waiter's second look: a fresh value (or a cached "does not exist")
  // computed after `after`. Uncounted, and any failure is just "not yet".
  template <class R>
  std::optional<R> reread(const std::string& k, EntryMeta::time_point after) {
    try {
      Lookup found = judge(decode(store_.get(k), false));  // the lookup counted these bytes
      if (found.entry.meta.created_at <= after) return std::nullopt;
      if (found.state == Lookup::value) return R(value_of(found.entry));
      if constexpr (detail::is_optional<R>::value) {
        if (found.state == Lookup::negative) return R(std::nullopt);
      }
    } catch (const Error&) {
    }
    return std::nullopt;
  }

  // Checked before anything is registered, so a refused configuration leaves nothing behind.
  static CacheOptions validated(CacheOptions o, [[maybe_unused]] S& store) {
    if (o.name.empty()) throw std::invalid_argument("cachet: CacheOptions::name is empty");
    if constexpr (tiered) {
      const std::string prefix = KeyBuilder(o.ns, o.keys).name_prefix(o.name);
      if (store.tracking() && !store.tracking()->covers(prefix))
        throw std::invalid_argument("cachet: the store's tracking prefixes do not cover '" + prefix + "'");
    }
    if (o.ttl.sliding(o.name)) {
      if (!TouchingStore<S>)
        throw std::invalid_argument("cachet: sliding expiry for '" + o.name + "' needs a store that renews TTLs on read");
      // Renewing on read would keep a "does not exist" answer alive for as long as it is asked.
      if (o.ttl.negative_ttl(o.name).count() > 0)
        throw std::invalid_argument("cachet: '" + o.name + "' cannot have both sliding expiry and a negative TTL");
    }
    return o;
  }
  static std::string label(const CacheOptions& o) { return o.metrics_label.empty() ? o.ns + ":" + o.name : o.metrics_label; }

  static Event transition_event(BreakerState to) {
    switch (to) {
      case BreakerState::open: return Event::breaker_open;
      case BreakerState::half_open: return Event::breaker_half_open;
      case BreakerState::closed: break;
    }
    return Event::breaker_close;
  }

  static std::vector<std::string_view> views(std::span<const std::string> keys) {
    return std::vector<std::string_view>(keys.begin(), keys.end());
  }

  EntryMeta meta(EntryMeta::time_point now, const Expiry& e, std::chrono::nanoseconds compute) const {
    EntryMeta m;
    m.created_at = now;
    m.fresh_until = e.fresh_until;
    m.compute_time = std::chrono::duration_cast<std::chrono::microseconds>(compute);
    return m;
  }

  // The lookup of id's key, built on the stack; a miss (uncounted by lookup)
  // when a versioned name's version cannot be read.
  Lookup lookup_id(std::string_view id) {
    detail::KeyBuffer k;
    if (read_key(id, k)) return lookup(k.view());
    metrics_->count(Event::miss);
    return Lookup{.reachable = false};
  }

  // The in-process tier first (over a TieredStore): a fresh or negative entry
  // there is the answer. A stale one is read again from Redis, which may hold a
  // newer value, and kept in hand only while Redis cannot be reached (so
  // fail-safe and stale-while-revalidate still have it). Only lookups that go
  // to Redis are timed (not those the breaker skipped): two clock reads would
  // be a quarter of an in-process hit.
  Lookup lookup(std::string_view k) {
    Lookup found = judge(cached(k));
    if (found.state == Lookup::miss || found.state == Lookup::stale) {
      const auto started = std::chrono::steady_clock::now();
      Fetched f;
      const Reach r = attempt([&] { f = fetch(k); }, options_.throw_redis_errors);
      if (r == Reach::reached) found = judge(take(k, f));
      else found.reachable = false;
      if (r != Reach::skipped) metrics_->get_latency().observe(std::chrono::steady_clock::now() - started);
    } else {
      metrics_->count(Event::l1_hit);
    }
    count(found);
    return found;
  }

  std::optional<Entry> cached([[maybe_unused]] std::string_view k) {
    if constexpr (tiered) return store_.cached(k);
    else return std::nullopt;
  }

  // Reads the store (Redis) under the breaker; a tiered store hands out a ticket for fill().
  Fetched fetch(std::string_view k) {
    if constexpr (tiered) return store_.fetch(k);
    else return read(k);
  }
  std::vector<Fetched> fetch_many(const std::vector<std::string_view>& keys) {
    if constexpr (tiered) return store_.fetch_many(keys);
    else return read_many(keys);
  }

  // Decodes what fetch() read; a tiered store keeps it in process.
  std::optional<Entry> take(std::string_view k, Fetched& f) {
    if constexpr (tiered) {
      std::optional<Entry> e = decode(f.bytes);
      if (e) store_.fill(k, f, *e);
      return e;
    } else {
      return decode(f);
    }
  }

  // A sliding entry's TTL is renewed by the read itself (the envelope's soft
  // expiry is not moved: sliding entries are meant to have no stale window).
  std::optional<std::string> read(std::string_view k) {
    if constexpr (TouchingStore<S>) {
      if (sliding_) return store_.get_and_touch(k, sliding_ttl());
    }
    return store_.get(k);
  }

  std::vector<std::optional<std::string>> read_many(const std::vector<std::string_view>& keys) {
    if constexpr (TouchingStore<S>) {
      if (sliding_) return store_.get_many_and_touch(keys, sliding_ttl());
    }
    return store_.get_many(keys);
  }

  std::chrono::milliseconds sliding_ttl() const { return options_.ttl.expiry(options_.name, clock_.now()).ttl; }

  // Counts a lookup as a hit, negative hit or miss (a stale entry is a miss).
  void count(const Lookup& found) {
    metrics_->count(found.state == Lookup::value      ? Event::hit
                    : found.state == Lookup::negative ? Event::negative_hit
                                                      : Event::miss);
  }

  // Nullopt for nothing, or for corrupt or foreign bytes (a miss, counted if `counted`).
  std::optional<Entry> decode(const std::optional<std::string>& bytes, bool counted = true) {
    if (!bytes) return std::nullopt;
    try {
      auto d = entries_.decode(*bytes);
      if constexpr (tiered) return Entry{d.value ? std::make_shared<const V>(std::move(*d.value)) : nullptr, d.meta};
      else return d;
    } catch (const DecodeError&) {
      if (counted) metrics_->count(Event::decode_error);
      return std::nullopt;
    }
  }

  // Fresh, stale (past the soft expiry) or negative, by the cache's clock.
  Lookup judge(std::optional<Entry> e) const {
    Lookup found;
    if (!e) return found;
    found.entry = std::move(*e);
    const EntryMeta& m = found.entry.meta;
    const bool fresh = m.fresh_until == EntryMeta::time_point::max() || clock_.now() < m.fresh_until;  // max: plain
    found.state = !fresh ? Lookup::stale : m.negative ? Lookup::negative : Lookup::value;
    return found;
  }

  // Fills `out` with the hits (in process first, then one MGET for the rest)
  // and lists the indices still missing. Returns whether Redis was reached.
  bool lookup_many(const std::vector<std::string>& keys, std::vector<std::optional<V>>& out,
                   std::vector<std::size_t>& missing) {
    const auto started = std::chrono::steady_clock::now();
    std::vector<Lookup> found(keys.size());
    std::vector<std::string_view> remote;  // the keys the in-process tier did not answer
    std::vector<std::size_t> at;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      found[i] = judge(cached(keys[i]));
      if (found[i].state != Lookup::miss && found[i].state != Lookup::stale) {
        metrics_->count(Event::l1_hit);
      } else {
        remote.push_back(keys[i]);
        at.push_back(i);
      }
    }
    std::vector<Fetched> fetched;
    const Reach r = remote.empty() ? Reach::reached : attempt(
        [&] {
          fetched = fetch_many(remote);
          if (fetched.size() != remote.size()) throw ProtocolError("cachet: store returned a batch of the wrong size");
        },
        options_.throw_redis_errors);
    const bool reached = r == Reach::reached;
    for (std::size_t j = 0; j < remote.size(); ++j) {
      if (reached) found[at[j]] = judge(take(remote[j], fetched[j]));
      else found[at[j]].reachable = false;
    }
    if (r != Reach::skipped) metrics_->get_latency().observe(std::chrono::steady_clock::now() - started);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      count(found[i]);
      if (found[i].state == Lookup::value) out[i] = value_of(found[i].entry);
      else if (found[i].state != Lookup::negative) missing.push_back(i);
    }
    return reached;
  }

  // One loader call (a batch load is one): counted, timed, and counted again as
  // an error if it throws. A throwing load is never cached: the next call loads again.
  template <class F>
  auto call_loader(F&& f) -> decltype(f()) {
    const auto started = std::chrono::steady_clock::now();
    metrics_->count(Event::load);
    try {
      auto result = f();
      metrics_->load_latency().observe(std::chrono::steady_clock::now() - started);
      return result;
    } catch (...) {
      metrics_->load_latency().observe(std::chrono::steady_clock::now() - started);
      metrics_->count(Event::load_error);
      throw;
    }
  }

  template <class L>
  auto load(const std::string& k, std::string_view id, L& loader, bool write, Held& held, WriteMark& mark)
      -> std::invoke_result_t<L&, std::string_view> {
    if (write && watch_writes_ && !marked(k, mark)) write = false;  // nothing may be stored unwatched
    const Watch w{mark.key, mark.state == WriteMark::known ? &mark.version : nullptr};  // key empty: unwatched
    const auto started = std::chrono::steady_clock::now();
    auto result = call_loader([&] { return loader(id); });
    if (write) {
      if constexpr (detail::is_optional<decltype(result)>::value) store_entry(k, result ? &*result : nullptr, started, held, w);
      else store_entry(k, &result, started, held, w);
    }
    return result;
  }

  // A load's condition in a write-through cache (see watch_writes): the write
  // version key and what it held before the load; key empty: none.
  using Seen = std::vector<std::optional<std::string>>;
  struct Watch {
    std::string_view key;
    const std::optional<std::string>* seen = nullptr;
  };

  // Reads `k`'s write version into `mark` unless it was read; false when it could not be.
  bool marked(const std::string& k, WriteMark& mark) {
    if (mark.state == WriteMark::unread) {
      mark.key = keys_.write_version(k);
      std::optional<Seen> seen = read_seen(std::span<const std::string>(&mark.key, 1));
      mark.state = seen ? WriteMark::known : WriteMark::unknown;
      if (seen) mark.version = std::move((*seen)[0]);
    }
    return mark.state == WriteMark::known;
  }

  // Task::flight_key: the key, prefixed (unambiguously) by its write version when
  // watched. A lookup that did not reach Redis does not ask it again.
  std::string flight_key(const std::string& k, WriteMark& mark, bool reachable) {
    if (!watch_writes_) return k;
    if (!reachable && mark.state == WriteMark::unread) mark.state = WriteMark::unknown;
    if (!marked(k, mark)) return "?" + k;
    if (!mark.version) return "-" + k;
    return std::to_string(mark.version->size()) + ":" + *mark.version + k;
  }

  // The write versions of `keys`, or nullopt (nothing may be stored) when Redis is not reached.
  std::optional<Seen> read_seen(std::span<const std::string> keys) {
    Seen seen;
    if (!guarded([&] { seen = store_.get_many(views(keys)); }, false)) return std::nullopt;
    return seen;
  }

  static void watched(StoreWrite& w, const Watch& watch) {
    if (watch.key.empty()) return;
    w.watch = watch.key;
    if (*watch.seen) w.seen = **watch.seen;
  }

  // Writes a loaded value (or, for nullptr, a negative entry when enabled),
  // under the guard's lock check when there is one. Failures are counted,
  // never thrown at the reader.
  void store_entry(const std::string& k, const V* value, std::chrono::steady_clock::time_point started, Held& held,
                   const Watch& watch) {
    const auto now = clock_.now();
    const auto compute = std::chrono::steady_clock::now() - started;
    std::string bytes;
    std::chrono::milliseconds ttl{};
    try {
      if (value) {
        const Expiry e = options_.ttl.expiry(options_.name, now);
        bytes = entries_.encode(*value, meta(now, e, compute));
        ttl = e.ttl;
      } else if ((ttl = options_.ttl.negative_ttl(options_.name)).count() > 0) {
        bytes = entries_.encode_negative(meta(now, {now + ttl, ttl}, compute));
      } else {
        return;  // "does not exist" is not cached for this name
      }
    } catch (const EncodeError&) {
      metrics_->count(Event::cache_write_error);  // the reader still gets the value
      return;
    }
    WriteResult result = WriteResult::written;
    const bool reached = guarded([&] { result = store_value(k, bytes, ttl, value, held, watch); }, false);
    if (!reached) metrics_->count(Event::cache_write_error);
    if (result == WriteResult::lock_lost) metrics_->count(Event::fenced_out);
    if (result == WriteResult::superseded) metrics_->count(Event::stale_write_refused);
  }

  // One pipelined write of everything a batch load found (and negative entries).
  void write_back(const std::vector<std::string>& keys, const std::vector<std::size_t>& missing,
                  const std::vector<std::optional<V>>& loaded, std::chrono::steady_clock::time_point started,
                  const std::vector<std::string>& watch_keys, const Seen* seen) {
    const auto now = clock_.now();
    const auto compute = (std::chrono::steady_clock::now() - started) / std::max<std::size_t>(loaded.size(), 1);
    const auto negative_ttl = options_.ttl.negative_ttl(options_.name);
    std::vector<std::string> bytes;
    std::vector<StoreEntry> entries;
    std::vector<const V*> values;  // per entry; nullptr for a negative one
    std::vector<Watch> watches;    // per entry
    bytes.reserve(missing.size());
    entries.reserve(missing.size());
    for (std::size_t j = 0; j < missing.size(); ++j) {
      try {
        if (loaded[j]) {
          const Expiry e = options_.ttl.expiry(options_.name, now);
          bytes.push_back(entries_.encode(*loaded[j], meta(now, e, compute)));
          entries.push_back({keys[missing[j]], bytes.back(), e.ttl});
          values.push_back(&*loaded[j]);
        } else if (negative_ttl.count() > 0) {
          bytes.push_back(entries_.encode_negative(meta(now, {now + negative_ttl, negative_ttl}, compute)));
          entries.push_back({keys[missing[j]], bytes.back(), negative_ttl});
          values.push_back(nullptr);
        } else {
          continue;
        }
        watches.push_back(seen ? Watch{watch_keys[j], &(*seen)[j]} : Watch{});
      } catch (const EncodeError&) {
        metrics_->count(Event::cache_write_error);
      }
    }
    if (entries.empty()) return;
    std::size_t refused = 0;
    const bool reached = guarded(
        [&] {
          try {
            store_values(entries, values, watches);
          } catch (const BatchWriteError& e) {  // the server answered; some writes were refused
            refused = e.failed();
            metrics_->count(Event::redis_error);
          }
        },
        false);
    metrics_->count(Event::cache_write_error, reached ? refused : entries.size());
  }

  // Tags over the store's Redis tier (a TieredStore's second tier).
  Tags tag_sets() { return Tags(store_.redis(), keys_); }

  // key(id) into `out`, appended (a std::string or a detail::KeyBuffer).
  template <class Out>
  void append_key(Out& out, std::string_view id) const {
    if (!version_) return keys_.append_value(out, key_prefix_, id);
    keys_.append_value(out, keys_.name_prefix(options_.name, version_->current()), id);
  }

  // key(id) for a read; false while a versioned name's version cannot be read
  // (Redis down since this process started): the read then bypasses Redis.
  template <class Out>
  bool read_key(std::string_view id, Out& out) {
    if (!version_ || version_->known()) {
      append_key(out, id);
      return true;
    }
    return guarded([&] { append_key(out, id); }, options_.throw_redis_errors);
  }

  // Over a TieredStore whose tracking covers the version counter, a bump by
  // anyone drops the cached version as soon as its invalidation arrives (and a
  // flush, or a lost subscriber, drops it too).
  void follow_version() {
    if constexpr (tiered) {
      Tracking* t = store_.tracking();
      if (!version_ || !t) return;
      version_subscription_ = t->listen([v = version_](std::optional<std::string_view> k) {
        if (!k || *k == v->counter_key()) v->expire();
      });
    }
  }

  // The read path of get_or_load and get_or_load_shared: a hit goes out through
  // `hit(entry)`, a load's result through `loaded(result)`.
  template <class L, class Hit, class Loaded>
  auto through(std::string_view id, L& loader, Hit hit, Loaded loaded) {
    using R = std::invoke_result_t<L&, std::string_view>;
    detail::KeyBuffer k;
    if (!read_key(id, k)) {  // no version to address the cache by: straight to the loader, nothing stored
      metrics_->count(Event::miss);
      return loaded(call_loader([&] { return loader(id); }));
    }
    Lookup found = lookup(k.view());
    Why why = found.state == Lookup::stale ? Why::stale : Why::miss;
    if (found.state == Lookup::value) {
      if (!picked_early(found.entry.meta)) return hit(found.entry);
      why = Why::early;
    }
    if (found.state == Lookup::negative) {
      if constexpr (detail::is_optional<R>::value) return loaded(R(std::nullopt));
    }
    Task<L&> task(*this, std::string(k.view()), std::string(id), loader, std::move(found), why, false);
    auto next = [](auto& t) { return t.load(); };
    return loaded(guard_.run(task, next));
  }

  // A hit renews a sliding value's TTL but not its tag sets', which could then
  // expire first and let the value outlive an invalidation of its tags.
  void refuse_tags_if_sliding() const {
    if (sliding_) throw std::invalid_argument("cachet: '" + options_.name + "' has sliding expiry, which tags do not support");
  }

  // A loaded value's write (value nullptr: a negative entry): under the guard's
  // lock check when there is one, tagged when `tags_for_` is set, conditional on
  // the watch in a write-through cache; the store executes it in one step.
  WriteResult store_value(const std::string& k, std::string_view bytes, std::chrono::milliseconds ttl,
                          const V* value, Held& held, const Watch& watch) {
    if constexpr (ConditionalStore<S>) {
      std::vector<std::string> sets;
      StoreWrite w{k, bytes, ttl};
      if (value) tag_write(w, *value, sets);
      watched(w, watch);
      w.lock_check = held.check;
      held.sent = held.sent || held.check != nullptr;  // before it is sent: a timed-out write may have released it
      return store_.write(w);
    } else {
      store_.set(k, bytes, ttl);  // a store without locks: the guard releases its own
      return WriteResult::written;
    }
  }

  // A batch's writes: one pipeline, each write tagged and watched as store_value's.
  void store_values(std::span<const StoreEntry> entries, const std::vector<const V*>& values,
                    const std::vector<Watch>& watches) {
    if constexpr (ConditionalStore<S>) {
      if (tags_for_ || watch_writes_) {
        std::vector<std::vector<std::string>> sets(entries.size());  // the writes view them
        std::vector<StoreWrite> writes;
        writes.reserve(entries.size());
        for (std::size_t i = 0; i < entries.size(); ++i) {
          writes.push_back({entries[i].key, entries[i].value, entries[i].ttl});
          if (values[i]) tag_write(writes.back(), *values[i], sets[i]);
          watched(writes.back(), watches[i]);
        }
        const BatchWriteResult r = store_.write_many(writes);
        metrics_->count(Event::stale_write_refused, r.superseded);
        if (r.failed != 0) throw BatchWriteError(r.first_error, r.failed, entries.size());
        return;
      }
    }
    store_.set_many(entries);
  }


  CacheOptions options_;
  S store_;
  EntryCodec<C> entries_;
  G guard_;
  Clk clock_;
  KeyBuilder keys_;
  std::string key_prefix_;  // "{ns}:{name}:", built once
  std::shared_ptr<CacheMetrics> metrics_;
  CircuitBreaker breaker_;
  bool sliding_;
  NamespaceVersion* version_;  // options_.versions' entry for `name`, or nullptr
  Tracking::Subscription version_subscription_;  // follow_version()
  std::function<std::vector<std::string>(const V&)> tags_for_;
  bool watch_writes_ = false;
  Executor executor_;  // last: stopped first, while what its jobs use still exists
};

}  // namespace cachet
