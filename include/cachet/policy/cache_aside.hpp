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

#include <cachet/breaker.hpp>
#include <cachet/clock.hpp>
#include <cachet/codec/entry.hpp>
#include <cachet/codec/json.hpp>
#include <cachet/detail/loader.hpp>
#include <cachet/executor.hpp>
#include <cachet/guard/concepts.hpp>
#include <cachet/guard/no_guard.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/keys.hpp>
#include <cachet/metrics.hpp>
#include <cachet/namespace_version.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/store/concepts.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/tags.hpp>
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
  std::string name;               // the value's name: key part, TTL rule, metrics prefix
  KeyOptions keys{};
  TtlPolicy ttl{};                // the central TTL table; the rule for `name` applies
  Format format = Format::envelope;
  BreakerOptions breaker{};
  bool throw_redis_errors = false;  // let Redis errors on reads reach the caller
  std::string metrics_label;      // the `cache` label of the metrics; defaults to ns:name
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
      : options_(validated(std::move(options))),
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
        executor_(options_.background) {}

  CacheAside(const CacheAside&) = delete;
  CacheAside& operator=(const CacheAside&) = delete;
  ~CacheAside() {
    executor_.stop();  // running refreshes finish while everything they use still exists
    MetricsRegistry::global().remove(metrics_);
  }

  // The cached value, or nullopt on a miss or a negative entry. Never loads.
  std::optional<V> get(std::string_view id) {
    const std::optional<std::string> k = read_key(id);
    if (!k) return std::nullopt;
    Lookup found = lookup(*k);
    if (found.state == Lookup::value) return std::move(found.entry.value);
    return std::nullopt;
  }

  // The cached value, or what `loader(id)` returns (stored for next time).
  // Returns what the loader returns: V, or std::optional<V>. Misses and stale
  // entries go through the guard. A guard that refreshes in the background
  // (stale-while-revalidate, early expiration, load timeouts) runs a copy of
  // the loader later: it must be copyable and must not refer to the caller's stack.
  template <Loader<V> L>
  auto get_or_load(std::string_view id, L&& loader) -> std::invoke_result_t<L&, std::string_view> {
    using R = std::invoke_result_t<L&, std::string_view>;
    std::optional<std::string> k = read_key(id);
    if (!k) {  // no version to address the cache by: straight to the loader, nothing stored
      metrics_->count(Event::miss);
      return call_loader([&] { return loader(id); });
    }
    Lookup found = lookup(*k);
    Why why = found.state == Lookup::stale ? Why::stale : Why::miss;
    if (found.state == Lookup::value) {
      if (!picked_early(found.entry.meta)) return R(std::move(*found.entry.value));
      why = Why::early;
    }
    if (found.state == Lookup::negative) {
      if constexpr (detail::is_optional<R>::value) return R(std::nullopt);
    }
    Task<L&> task(*this, std::move(*k), std::string(id), loader, std::move(found), why, false);
    auto next = [](auto& t) { return t.load(); };
    return guard_.run(task, next);
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
      std::optional<std::string> k = read_key(id);
      if (!k) {  // no version to address the cache by: every id is loaded, nothing stored
        metrics_->count(Event::miss, ids.size());
        reachable = false;
        for (std::size_t i = 0; i < ids.size(); ++i) missing.push_back(i);
        break;
      }
      keys.push_back(std::move(*k));
    }
    if (reachable) reachable = lookup_many(keys, out, missing);
    if (missing.empty()) return out;

    std::vector<std::string_view> missing_ids;
    for (std::size_t i : missing) missing_ids.push_back(ids[i]);
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::optional<V>> loaded =
        call_loader([&] { return batch_loader(std::span<const std::string_view>(missing_ids)); });
    if (loaded.size() != missing.size())
      throw std::invalid_argument("cachet: batch loader returned " + std::to_string(loaded.size()) + " values for " +
                                  std::to_string(missing.size()) + " ids");
    if (reachable) write_back(keys, missing, loaded, started);
    for (std::size_t j = 0; j < missing.size(); ++j) out[missing[j]] = std::move(loaded[j]);
    return out;
  }

  // Stores `value` for `id` (a write-through, say). Redis errors are thrown: the
  // caller asked for this write and must know it did not happen.
  void set(std::string_view id, const V& value) {
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
    requires std::same_as<S, RedisStore>
  void set(std::string_view id, const V& value, const R& tags) {
    refuse_tags_if_sliding();
    const Encoded e = encode(value);
    tag_sets().set_tagged(key(id), e.bytes, e.ttl, tags);
  }
  void set(std::string_view id, const V& value, std::initializer_list<std::string_view> tags)
    requires std::same_as<S, RedisStore>
  {
    set(id, value, std::span<const std::string_view>(tags.begin(), tags.size()));
  }

  // Removes every value tagged with any of `tags` ({ns}:tag:{tag}: shared by the
  // namespace's caches). Throws on Redis errors.
  template <TagList R>
    requires std::same_as<S, RedisStore>
  std::size_t invalidate_tags(const R& tags) {
    return tag_sets().invalidate(tags);
  }
  std::size_t invalidate_tags(std::initializer_list<std::string_view> tags)
    requires std::same_as<S, RedisStore>
  {
    return tag_sets().invalidate(tags);
  }

  // Tags every value this cache loads (get_or_load, get_many) with `tags_for(value)`,
  // in the same script as its write. Set it before the cache is shared.
  void tag_loaded_values(std::function<std::vector<std::string>(const V&)> tags_for)
    requires std::same_as<S, RedisStore>
  {
    refuse_tags_if_sliding();
    tags_for_ = std::move(tags_for);
  }

  // Throws the Redis layer's errors if a versioned name's version was never read.
  std::string key(std::string_view id) const {
    if (!version_) return keys_.value_in(key_prefix_, id);
    return keys_.value_in(keys_.name_prefix(options_.name, version_->current()), id);
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
  std::optional<V> decode(std::string_view bytes) const { return entries_.decode(bytes).value; }

  // Runs a Redis operation under the cache's circuit breaker. Returns false when
  // Redis was not reached (breaker open, or the call failed); errors are counted,
  // and thrown only when `rethrow` is set.
  template <class Op>
  bool guarded(Op&& op, bool rethrow) {
    if (!breaker_.allow()) {
      if (rethrow) throw ConnectionError("cachet: circuit breaker open, redis skipped");
      return false;
    }
    try {
      op();
      breaker_.success();
      return true;
    } catch (const ReplyError&) {  // the server answered: a per-key refusal, not an outage
      breaker_.success();
      metrics_->count(Event::redis_error);
      if (rethrow) throw;
      return false;
    } catch (const Error&) {  // connection, timeout, pool exhausted
      breaker_.failure();
      metrics_->count(Event::redis_error);
      if (rethrow) throw;
      return false;
    } catch (...) {
      breaker_.failure();
      throw;
    }
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
  struct Lookup {
    // stale: past its soft expiry, kept only for stale serving; without a guard
    // that serves it, it is reloaded like a miss.
    enum State { value, negative, stale, miss, unreachable } state = miss;
    typename EntryCodec<C>::Decoded entry{};
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

    result_type load() { return cache_->load(key_, id_, loader_, reachable(), fence_); }
    const std::string& key() const noexcept { return key_; }
    std::string lock_key() const { return cache_->keys_.lock(key_); }
    Why why() const noexcept { return why_; }
    const V* current() const noexcept {
      return why_ != Why::miss && found_.entry.value ? &*found_.entry.value : nullptr;
    }
    std::chrono::nanoseconds age() const { return now() - found_.entry.meta.created_at; }
    bool reachable() const noexcept { return found_.state != Lookup::unreachable; }
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
    void fence(Fence* f) noexcept { fence_ = f; }
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
    Fence* fence_ = nullptr;  // the lock guard's conditional write, while it holds the lock
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
      Lookup found = decode_entry(store_.get(k));
      if (found.entry.meta.created_at <= after) return std::nullopt;
      if (found.state == Lookup::value) return R(std::move(*found.entry.value));
      if constexpr (detail::is_optional<R>::value) {
        if (found.state == Lookup::negative) return R(std::nullopt);
      }
    } catch (const Error&) {
    }
    return std::nullopt;
  }

  // Checked before anything is registered, so a refused configuration leaves nothing behind.
  static CacheOptions validated(CacheOptions o) {
    if (o.name.empty()) throw std::invalid_argument("cachet: CacheOptions::name is empty");
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

  static std::vector<std::string_view> views(const std::vector<std::string>& keys) {
    return std::vector<std::string_view>(keys.begin(), keys.end());
  }

  EntryMeta meta(EntryMeta::time_point now, const Expiry& e, std::chrono::nanoseconds compute) const {
    EntryMeta m;
    m.created_at = now;
    m.fresh_until = e.fresh_until;
    m.compute_time = std::chrono::duration_cast<std::chrono::microseconds>(compute);
    return m;
  }

  Lookup lookup(const std::string& k) {
    const auto started = std::chrono::steady_clock::now();
    std::optional<std::string> bytes;
    Lookup found;
    if (guarded([&] { bytes = read(k); }, options_.throw_redis_errors)) {
      found = classify(bytes);
    } else {
      found.state = Lookup::unreachable;
      metrics_->count(Event::miss);
    }
    metrics_->get_latency().observe(std::chrono::steady_clock::now() - started);
    return found;
  }

  // A sliding entry's TTL is renewed by the read itself (the envelope's soft
  // expiry is not moved: sliding entries are meant to have no stale window).
  std::optional<std::string> read(const std::string& k) {
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

  // Decodes what the store returned and counts it as a hit, negative hit or
  // miss (a stale entry counts as a miss).
  Lookup classify(const std::optional<std::string>& bytes) {
    Lookup found = decode_entry(bytes);
    metrics_->count(found.state == Lookup::value      ? Event::hit
                    : found.state == Lookup::negative ? Event::negative_hit
                                                      : Event::miss);
    return found;
  }

  Lookup decode_entry(const std::optional<std::string>& bytes) {
    Lookup found;
    if (bytes) {
      try {
        found.entry = entries_.decode(*bytes);
        const bool fresh = found.entry.meta.fresh_until == EntryMeta::time_point::max() ||  // plain format
                           clock_.now() < found.entry.meta.fresh_until;
        found.state = !fresh ? Lookup::stale : found.entry.meta.negative ? Lookup::negative : Lookup::value;
      } catch (const DecodeError&) {
        metrics_->count(Event::decode_error);  // corrupt or foreign bytes: a miss
      }
    }
    return found;
  }

  // Fills `out` with the hits of one MGET and lists the indices still missing.
  // Returns whether Redis was reached.
  bool lookup_many(const std::vector<std::string>& keys, std::vector<std::optional<V>>& out,
                   std::vector<std::size_t>& missing) {
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::optional<std::string>> bytes;
    const bool reached = guarded(
        [&] {
          bytes = read_many(views(keys));
          if (bytes.size() != keys.size()) throw ProtocolError("cachet: store returned a batch of the wrong size");
        },
        options_.throw_redis_errors);
    metrics_->get_latency().observe(std::chrono::steady_clock::now() - started);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      Lookup found = reached ? classify(bytes[i]) : Lookup{Lookup::unreachable, {}};
      if (!reached) metrics_->count(Event::miss);
      if (found.state == Lookup::value) out[i] = std::move(found.entry.value);
      else if (found.state != Lookup::negative) missing.push_back(i);
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
  auto load(const std::string& k, std::string_view id, L& loader, bool write, Fence* fence)
      -> std::invoke_result_t<L&, std::string_view> {
    const auto started = std::chrono::steady_clock::now();
    auto result = call_loader([&] { return loader(id); });
    if (write) {
      if constexpr (detail::is_optional<decltype(result)>::value) store_entry(k, result ? &*result : nullptr, started, fence);
      else store_entry(k, &result, started, fence);
    }
    return result;
  }

  // Writes a loaded value (or, for nullptr, a negative entry when enabled),
  // through the lock's fence when there is one. Failures are counted, never
  // thrown at the reader.
  void store_entry(const std::string& k, const V* value, std::chrono::steady_clock::time_point started, Fence* fence) {
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
    bool refused = false;
    const bool reached = guarded([&] { refused = !store_value(k, bytes, ttl, value, fence); }, false);
    if (!reached) metrics_->count(Event::cache_write_error);
    if (refused) metrics_->count(Event::fenced_out);
  }

  // One pipelined write of everything a batch load found (and negative entries).
  void write_back(const std::vector<std::string>& keys, const std::vector<std::size_t>& missing,
                  const std::vector<std::optional<V>>& loaded, std::chrono::steady_clock::time_point started) {
    const auto now = clock_.now();
    const auto compute = (std::chrono::steady_clock::now() - started) / std::max<std::size_t>(loaded.size(), 1);
    const auto negative_ttl = options_.ttl.negative_ttl(options_.name);
    std::vector<std::string> bytes;
    std::vector<StoreEntry> entries;
    std::vector<const V*> values;  // per entry; nullptr for a negative one
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
        }
      } catch (const EncodeError&) {
        metrics_->count(Event::cache_write_error);
      }
    }
    if (entries.empty()) return;
    std::size_t refused = 0;
    const bool reached = guarded(
        [&] {
          try {
            store_values(entries, values);
          } catch (const BatchWriteError& e) {  // the server answered; some writes were refused
            refused = e.failed();
            metrics_->count(Event::redis_error);
          }
        },
        false);
    metrics_->count(Event::cache_write_error, reached ? refused : entries.size());
  }

  Tags tag_sets() { return Tags(store_.pool(), keys_); }

  // key(id) for a read, or nullopt while a versioned name's version cannot be
  // read (Redis down since this process started): the read then bypasses Redis.
  std::optional<std::string> read_key(std::string_view id) {
    if (!version_ || version_->known()) return key(id);
    std::optional<std::string> k;
    guarded([&] { k = key(id); }, options_.throw_redis_errors);
    return k;
  }

  // A hit renews a sliding value's TTL but not its tag sets', which could then
  // expire first and let the value outlive an invalidation of its tags.
  void refuse_tags_if_sliding() const {
    if (sliding_) throw std::invalid_argument("cachet: '" + options_.name + "' has sliding expiry, which tags do not support");
  }

  // A loaded value's write (value nullptr: a negative entry): through the lock's
  // fence when there is one, tagged when `tags_for_` is set, in one script either
  // way. false: the fence refused it (the lock was lost), nothing written.
  bool store_value(const std::string& k, std::string_view bytes, std::chrono::milliseconds ttl, const V* value,
                   Fence* fence) {
    if constexpr (std::same_as<S, RedisStore>) {
      if (tags_for_ && value) {
        Tags tags = tag_sets();
        const std::vector<std::string> names = tags_for_(*value);
        if (!fence) {
          tags.set_tagged(k, bytes, ttl, names);
          return true;
        }
        const std::vector<std::string> sets = tags.tag_set_keys(names);
        return fence->write({k, bytes, ttl, sets, tags.options().prune_sample});
      }
    }
    if (fence) return fence->write({k, bytes, ttl});
    store_.set(k, bytes, ttl);
    return true;
  }

  void store_values(std::span<const StoreEntry> entries, const std::vector<const V*>& values) {
    if constexpr (std::same_as<S, RedisStore>) {
      if (tags_for_) {
        std::vector<TaggedEntry> tagged;
        tagged.reserve(entries.size());
        for (std::size_t i = 0; i < entries.size(); ++i)
          tagged.push_back({entries[i].key, entries[i].value, entries[i].ttl,
                            values[i] ? tags_for_(*values[i]) : std::vector<std::string>{}});
        return tag_sets().set_tagged_many(tagged);
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
  std::function<std::vector<std::string>(const V&)> tags_for_;
  Executor executor_;  // last: stopped first, while what its jobs use still exists
};

// The common stack: cache-aside over Redis behind the stampede guard.
//   cachet::GuardedCache<Product> products(cachet::RedisStore(pool), {.ns = "shop", .name = "product"}, {},
//                                          cachet::stampede_guard(pool));
template <class V, Codec C = JsonCodec<V>>
using GuardedCache = CacheAside<V, C, StampedeGuard>;

}  // namespace cachet
