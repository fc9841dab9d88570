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

#include <cachet/clock.hpp>
#include <cachet/codec/json.hpp>
#include <cachet/guard/concepts.hpp>
#include <cachet/guard/no_guard.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/policy/cache_options.hpp>
#include <cachet/policy/detail/key_buffer.hpp>
#include <cachet/policy/detail/load_task.hpp>
#include <cachet/policy/loader.hpp>
#include <cachet/store/concepts.hpp>
#include <cachet/store/redis_store.hpp>

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

namespace detail {
template <class Cache>
class WriteAccess;
}  // namespace detail

// The user API; lookup (detail/lookup.hpp), loads (detail/load_task.hpp) and
// write-back (detail/write_back.hpp) are its private bases. Write policies
// reach the rest through detail::WriteAccess (detail/write_access.hpp).
template <class V, Codec C = JsonCodec<V>, Guard G = NoGuard, Store S = RedisStore, Clock Clk = SystemClock>
  requires CodecFor<C, V>
class CacheAside : protected detail::CacheLoad<V, C, G, S, Clk> {
  using Base = detail::CacheLoad<V, C, G, S, Clk>;
  template <class Cache>
  friend class detail::WriteAccess;

 public:
  using value_type = V;

  explicit CacheAside(S store, CacheOptions options, C codec = {}, G guard = {}, Clk clock = {})
      : Base(std::move(store), std::move(options), std::move(codec), std::move(guard), std::move(clock)) {}

  CacheAside(const CacheAside&) = delete;
  CacheAside& operator=(const CacheAside&) = delete;
  ~CacheAside() { executor_.stop(); }  // running refreshes finish while everything they use still exists

  // The cached value, or nullopt on a miss or a negative entry. Never loads.
  std::optional<V> get(std::string_view id) {
    Lookup found = lookup_id(id);
    if (found.state == Lookup::value) return std::optional<V>(value_of(found.entry));
    return std::nullopt;
  }

  // get() without a copy: over a TieredStore an in-process hit is the value the
  // tier holds (no parse, no allocation); nullptr on a miss or a negative entry.
  // Such a hit reads the tier's coarse clock once, for its TTL and its soft
  // expiry: it may be served for less than CoarseSystemClock::resolution() past either.
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
    std::string key_bytes;  // the keys back to back: one buffer, not a string per key
    std::vector<std::size_t> ends;  // where each key ends in it
    std::vector<std::size_t> missing;
    bool reachable = true;
    key_bytes.reserve(ids.size() * (key_prefix_.size() + 8));
    for (auto id : ids) {
      if (!read_key(id, key_bytes)) {  // no version to address the cache by: every id is loaded, nothing stored
        metrics_->count(Event::miss, ids.size());
        reachable = false;
        for (std::size_t i = 0; i < ids.size(); ++i) missing.push_back(i);
        break;
      }
      ends.push_back(key_bytes.size());
    }
    const std::vector<std::string_view> keys = slices(key_bytes, ends);
    if (reachable) reachable = lookup_many(keys, out, missing);
    if (missing.empty()) return out;

    std::vector<std::string_view> missing_ids;
    for (std::size_t i : missing) missing_ids.push_back(ids[i]);
    std::vector<std::string> watch_keys;  // write versions before the load (see watch_writes)
    std::optional<Seen> seen;
    typename Base::Epoch epoch;  // before the loader (see TagVersions); read with the write versions when watched
    if (reachable && watch_writes_) {
      for (std::size_t i : missing) watch_keys.push_back(keys_.write_version(keys[i]));
      reachable = (seen = read_seen(watch_keys, &epoch)).has_value();
    }
    if (reachable) reachable = read_epoch(epoch);
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::optional<V>> loaded =
        call_loader([&] { return batch_loader(std::span<const std::string_view>(missing_ids)); });
    if (loaded.size() != missing.size())
      throw std::invalid_argument("cachet: batch loader returned " + std::to_string(loaded.size()) + " values for " +
                                  std::to_string(missing.size()) + " ids");
    if (reachable) write_back(keys, missing, loaded, started, watch_keys, seen ? &*seen : nullptr, epoch.get());
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
    const std::string k = key(id);
    const detail::Encoded e = encode(k, value);
    store_.set(k, e.bytes, e.ttl);
  }

  // Removes `id`'s entry. Throws on Redis errors: a failed invalidation leaves stale data.
  bool invalidate(std::string_view id) { return store_.del(key(id)); }

  std::size_t invalidate_many(std::span<const std::string_view> ids) {
    std::vector<std::string> keys;
    keys.reserve(ids.size());
    for (auto id : ids) keys.push_back(key(id));
    return store_.del_many(key_views(keys));
  }

  // Tagged write (RedisStore): the value is stored and added to each tag's set in
  // one atomic script, so invalidate_tags can never miss it. On Redis Cluster
  // it is stamped with the tags' versions instead (docs/cluster.md). Throws on Redis errors.
  template <TagList R>
    requires RedisBacked<S>
  void set(std::string_view id, const V& value, const R& tags) {
    check_tags();
    const std::string k = key(id);
    const detail::Encoded e = encode(k, value);
    const std::string_view written = k;
    [[maybe_unused]] const auto forget = forgetting({&written, 1});
    if (!versioned_tags_) return tag_sets().set_tagged(k, e.bytes, e.ttl, tags);
    const std::vector<std::string> names = tag_names(tags);
    store_.redis().set(k, names.empty() ? e.bytes : *stamped(e.bytes, names, nullptr), e.ttl);
  }
  void set(std::string_view id, const V& value, std::initializer_list<std::string_view> tags)
    requires RedisBacked<S>
  {
    set(id, value, std::span<const std::string_view>(tags.begin(), tags.size()));
  }

  // Removes every value tagged with any of `tags` ({ns}:tag:{tag}: shared by the
  // namespace's caches). Throws on Redis errors. Over a TieredStore, returns once
  // this process's in-process tier has dropped them too. Returns how many values
  // existed; 0 on Redis Cluster, where the tags' versions are bumped instead.
  template <TagList R>
    requires RedisBacked<S>
  std::size_t invalidate_tags(const R& tags) {
    const std::size_t n = tag_sets().invalidate(tags);
    if (!versioned_tags_) settle();  // stamped entries never enter the in-process tier
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
    check_tags();
    tags_for_ = std::move(tags_for);
  }

  // Throws the Redis layer's errors if a versioned name's version was never read.
  std::string key(std::string_view id) const {
    std::string k;
    append_key(k, id);
    return k;
  }

  // After an invalidation made past the cache (invalidate_matching,
  // DependencyMap::invalidate_for, another process): over a TieredStore,
  // returns once this process's in-process tier has dropped what it deleted
  // (TieredStore::reconcile).
  void settle() {
    if constexpr (tiered) store_.reconcile();
  }

  // The key layout ({ns}:...: lock, tag, write-version keys), to inspect Redis.
  const KeyBuilder& keys() const noexcept { return keys_; }
  CacheMetrics& metrics() noexcept { return *metrics_; }
  const CircuitBreaker& breaker() const noexcept { return breaker_; }
  S& store() noexcept { return store_; }
  G& guard() noexcept { return guard_; }
  const CacheOptions& options() const noexcept { return options_; }
  // The workers of background refreshes (wait_idle() to see one finish).
  Executor& executor() noexcept { return executor_; }

 private:
  using typename Base::Entry;
  using typename Base::Lookup;
  using typename Base::Seen;
  template <class L>
  using Task = typename Base::template Task<L>;
  using Base::tiered, Base::options_, Base::store_, Base::guard_, Base::keys_, Base::metrics_, Base::breaker_,
      Base::executor_, Base::tags_for_, Base::watch_writes_, Base::key_prefix_, Base::versioned_tags_;
  using Base::lookup_id, Base::lookup, Base::lookup_many, Base::read_key, Base::append_key, Base::call_loader,
      Base::read_seen, Base::read_epoch, Base::write_back, Base::picked_early, Base::value_of, Base::shared, Base::share, Base::encode,
      Base::forgetting, Base::tag_sets, Base::check_tags, Base::stamped;

  // The pieces of `bytes` that end at `ends`.
  static std::vector<std::string_view> slices(std::string_view bytes, const std::vector<std::size_t>& ends) {
    std::vector<std::string_view> out;
    out.reserve(ends.size());
    std::size_t start = 0;
    for (std::size_t end : ends) {
      out.push_back(bytes.substr(start, end - start));
      start = end;
    }
    return out;
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
};

}  // namespace cachet
