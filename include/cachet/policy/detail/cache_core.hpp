#pragma once
// The state of a CacheAside and what every path through it uses: the circuit
// breaker (attempt), keys and namespace versions, entry encoding, and the
// decoding and judging of what a read found. The base of lookup.hpp,
// write_back.hpp and load_task.hpp, which CacheAside derives from (protected).

#include <cachet/breaker.hpp>
#include <cachet/clock.hpp>
#include <cachet/codec/entry.hpp>
#include <cachet/executor.hpp>
#include <cachet/guard/concepts.hpp>
#include <cachet/invalidation/namespace_version.hpp>
#include <cachet/invalidation/tags.hpp>
#include <cachet/keys.hpp>
#include <cachet/metrics.hpp>
#include <cachet/policy/cache_options.hpp>
#include <cachet/policy/loader.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/store/concepts.hpp>
#include <cachet/store/replication.hpp>
#include <cachet/store/tiered_store.hpp>
#include <cachet/ttl.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cachet::detail {

// A fresh entry's bytes and its Redis TTL.
struct Encoded {
  std::string bytes;
  std::chrono::milliseconds ttl;
};

template <class V, Codec C, Guard G, Store S, Clock Clk>
class CacheCore {
 public:
  static constexpr bool tiered = ValueTiered<S, V>;
  // An in-process hit judged, TTL and soft expiry alike, by one read of the
  // tier's coarse wall clock, when this cache runs on the system clock.
  static constexpr bool coarse_hits = [] {
    if constexpr (tiered) return std::same_as<Clk, SystemClock> && std::same_as<typename S::clock_type, CoarseSystemClock>;
    else return false;
  }();
  // An entry in hand: over a TieredStore, shared with the in-process tier.
  using Entry = std::conditional_t<tiered, Cached<V>, typename EntryCodec<C>::Decoded>;

  struct Lookup {
    // stale: past its soft expiry, kept only for stale serving; without a guard
    // that serves it, it is reloaded like a miss.
    enum State { value, negative, stale, miss } state = miss;
    bool reachable = true;  // Redis answered (or was not needed)
    Entry entry{};
  };

  // How attempt() went: reached, failed, or skipped by the open breaker.
  enum class Reach { reached, failed, skipped };

  CacheCore(S store, CacheOptions options, C codec, G guard, Clk clock)
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
        versioned_tags_(versioned_tags_of(store_, keys_)),
        version_(options_.versions ? &options_.versions->of(options_.name) : nullptr),
        executor_(options_.background) {
    follow_version();
  }
  CacheCore(const CacheCore&) = delete;
  CacheCore& operator=(const CacheCore&) = delete;
  ~CacheCore() { MetricsRegistry::global().remove(metrics_); }  // after CacheAside stopped the executor

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
    if constexpr (is_optional<std::remove_cvref_t<R>>::value) return r ? share(std::move(*r)) : nullptr;
    else return std::make_shared<const V>(std::move(r));
  }

  // Runs a Redis operation under the circuit breaker. Errors and skips are
  // counted, and thrown only when `rethrow` is set.
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
    } catch (const ReplicationError&) {  // the master has the write; replicas lag: not an outage
      breaker_.success();
      metrics_->count(Event::redis_error);
      if (rethrow) throw;
      return Reach::failed;
    } catch (const ReplyError&) {  // the server answered: a per-key refusal, not an outage
      breaker_.success();
      metrics_->count(Event::redis_error);
      if (rethrow) throw;
      return Reach::failed;
    } catch (const CrossSlotError&) {  // a usage error (keys across slots), refused before sending
      metrics_->count(Event::redis_error);
      if (rethrow) throw;
      return Reach::failed;
    } catch (const EncodeError&) {  // bytes that cannot be written: the caller's cache write error, not an outage
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
  // attempt(), true when Redis was reached.
  template <class Op>
  bool guarded(Op&& op, bool rethrow) {
    return attempt(std::forward<Op>(op), rethrow) == Reach::reached;
  }

  // Around writes made past the store (Tags::set_tagged, write-behind's enqueue):
  // over a TieredStore, the keys leave L1 when the returned object goes.
  auto forgetting([[maybe_unused]] std::span<const std::string_view> keys) {
    if constexpr (tiered) return store_.evicting(keys);
    else return 0;
  }

  // What tagged writes view (tags_of, stamp_tags): tag-set keys, or stamped bytes.
  struct TagBuffers {
    std::vector<std::vector<std::string>> tags;  // per write: its value's tags (stamped on Redis Cluster)
    std::vector<std::vector<std::string>> sets;
    std::vector<std::string> stamped;
    std::vector<bool> tagged;  // per write: whether the cache tags its value
    std::string epoch_key;     // the tag epoch the tagged writes of a load check (one server)
  };
  // Tags each write as this cache tags its value (values[i]; nullptr: a negative entry, untagged),
  // in `keep` for the writes to view: into the {ns}:tag:{tag} sets, or on Redis Cluster stamped
  // with the tags' versions (one read for the batch), in two steps: tags_of, outside the circuit
  // breaker's call (a throwing tags callback is no outage), then stamp_tags under it. The first
  // step, no Redis: calls the tags callback (tags_for; throws what it throws) and points the
  // writes at their tag sets (tag_writes, the tags in hand); on a cluster notes the tags.
  void tags_of(std::span<StoreWrite> writes, std::span<const V* const> values, TagBuffers& keep) {
    std::vector<std::vector<std::string>> tags(writes.size());
    for (std::size_t i = 0; i < writes.size(); ++i) tags[i] = tags_for(values[i]);
    tag_writes(writes, std::move(tags), keep);
  }
  std::vector<std::string> tags_for(const V* value) const {
    return tags_for_ && value ? tags_for_(*value) : std::vector<std::string>{};
  }
  void tag_writes(std::span<StoreWrite> writes, std::vector<std::vector<std::string>> tags, TagBuffers& keep) {
    if (tags.size() != writes.size()) throw std::logic_error("cachet: tag_writes: one tag list per write");
    keep.tags = std::move(tags);
    keep.sets.assign(writes.size(), {});
    keep.tagged.assign(writes.size(), false);
    for (std::size_t i = 0; i < writes.size(); ++i) {
      keep.tagged[i] = !keep.tags[i].empty();
      if (versioned_tags_ || !keep.tagged[i]) continue;
      for (const std::string& tag : keep.tags[i]) keep.sets[i].push_back(keys_.tag(tag));
      writes[i].tag_sets = keep.sets[i];
      writes[i].prune_sample = TagOptions{}.prune_sample;  // as the cache's Tags (tag_sets())
    }
  }
  // The second step, once, after tags_of (or tag_writes) on the same writes: on a cluster the tagged
  // writes' bytes stamped with their tags' versions (a read; throws Redis errors), false when `epoch`
  // (read before a load; nullptr: none) moved: the tagged writes must not be stored (see
  // TagVersions). On one server's tag sets they carry `epoch`, which their script checks.
  bool stamp_tags(std::span<StoreWrite> writes, const std::string* epoch, TagBuffers& keep) {
    if (keep.tagged.size() != writes.size()) throw std::logic_error("cachet: stamp_tags: tags_of first");
    if (!versioned_tags_) {
      if (epoch) keep.epoch_key = keys_.tag_epoch();
      for (std::size_t i = 0; epoch && i < writes.size(); ++i)
        if (keep.tagged[i]) writes[i].tag_epoch = keep.epoch_key, writes[i].epoch_seen = *epoch;
      return true;
    }
    std::vector<std::string_view> bytes;
    std::vector<std::span<const std::string>> of;
    for (std::size_t i = 0; i < writes.size(); ++i)
      if (keep.tagged[i]) bytes.push_back(writes[i].bytes), of.push_back(keep.tags[i]);
    if (bytes.empty()) return true;
    if (!stamped_many(bytes, of, epoch, keep.stamped)) return false;
    for (std::size_t i = 0, j = 0; i < writes.size(); ++i)
      if (keep.tagged[i]) writes[i].bytes = keep.stamped[j++];
    return true;
  }
  // Tags over the store's Redis tier (a TieredStore's second tier).
  Tags tag_sets() { return Tags(store_.redis(), keys_); }

  // A hit renews a sliding value's TTL but not its tag sets', which could then
  // expire first and let the value outlive an invalidation of its tags. On
  // Redis Cluster tags are stamped in the envelope, which the plain format lacks.
  void check_tags() const {
    if (sliding_) throw std::invalid_argument("cachet: '" + options_.name + "' has sliding expiry, which tags do not support");
    if (versioned_tags_ && options_.format == Format::plain)
      throw ConfigError("cachet: '" + options_.name + "' uses the plain format, which cannot carry tags on Redis Cluster");
  }

  // On Redis Cluster: `bytes` stamped with the current versions of `tags`; nullopt
  // when `epoch` (nullptr: none) moved since (see stamp_tags). Throws Redis errors.
  std::optional<std::string> stamped(std::string_view bytes, std::span<const std::string> tags, const std::string* epoch) {
    std::vector<std::string> out;
    if (!stamped_many({&bytes, 1}, {&tags, 1}, epoch, out)) return std::nullopt;
    return std::move(out[0]);
  }
  // stamped() for several entries: one read of every tag's version (grouped per
  // node), one of the epoch. False, and `out` untouched, when the epoch moved.
  bool stamped_many(std::span<const std::string_view> bytes, std::span<const std::span<const std::string>> tags,
                    const std::string* epoch, std::vector<std::string>& out) {
    std::vector<std::string> all;
    for (const auto& t : tags) all.insert(all.end(), t.begin(), t.end());
    TagVersions versions = tag_versions();
    const std::vector<TagStamp> stamps = versions.stamps(all);
    if (epoch && versions.epoch() != *epoch) return false;  // after the stamps were read: see TagVersions
    std::size_t at = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      out.push_back(envelope::stamp(bytes[i], std::span<const TagStamp>(stamps).subspan(at, tags[i].size())));
      at += tags[i].size();
    }
    return true;
  }
  // Whether a stamped entry's tags are unchanged since it was written; a
  // malformed section or a failed read is "no": never served as fresh. The read
  // runs under the breaker (attempt), thrown as the get's own read is.
  bool stamps_current(std::string_view bytes) { return stamps_current_many({&bytes, 1})[0]; }
  // stamps_current for several entries: one read of all their counters, grouped per node.
  std::vector<bool> stamps_current_many(std::span<const std::string_view> entries) {
    std::vector<bool> out(entries.size(), false);
    if constexpr (RedisBacked<S>) {
      std::vector<TagStamp> all;
      std::vector<std::size_t> ends(entries.size(), 0);  // entry i's stamps end there; 0: malformed
      for (std::size_t i = 0; i < entries.size(); ++i) {
        try {
          const std::vector<TagStamp> s = envelope::stamps_of(envelope::decode(entries[i]).stamps);
          all.insert(all.end(), s.begin(), s.end());
          ends[i] = all.size() + 1;  // + 1: an entry with no stamps is not malformed
        } catch (const DecodeError&) {
          metrics_->count(Event::decode_error);
        }
      }
      std::vector<bool> ok;  // under the breaker, as the read it follows: a failure leaves every entry stale
      if (!all.empty() && !guarded([&] { ok = tag_versions().matches(all); }, options_.throw_redis_errors)) return out;
      for (std::size_t i = 0, at = 0; i < entries.size(); ++i) {
        if (ends[i] == 0) continue;
        out[i] = std::all_of(ok.begin() + at, ok.begin() + (ends[i] - 1), [](bool b) { return b; });
        at = ends[i] - 1;
      }
    }
    return out;
  }
  // The stamp checks of a batch's bytes (nullopt: none), all in one read: per
  // entry, 1 when it is stamped and current; empty when tags are not versioned.
  std::vector<char> batch_stamps(std::span<const std::optional<std::string_view>> batch) {
    std::vector<char> out;
    if (!versioned_tags_ || options_.format == Format::plain) return out;
    std::vector<std::string_view> stamped;
    std::vector<std::size_t> at;
    for (std::size_t j = 0; j < batch.size(); ++j) {
      if (!batch[j]) continue;
      try {
        if (!envelope::decode(*batch[j]).meta.stamped) continue;
      } catch (const DecodeError&) {
        continue;  // decode() counts it
      }
      stamped.push_back(*batch[j]);
      at.push_back(j);
    }
    out.assign(batch.size(), 0);
    const std::vector<bool> ok = stamps_current_many(stamped);
    for (std::size_t i = 0; i < at.size(); ++i) out[at[i]] = ok[i];
    return out;
  }
  TagVersions tag_versions() {
    if constexpr (RedisBacked<S>) return TagVersions(store_.redis(), keys_);
    else throw std::logic_error("cachet: tag versions need a store over Redis");
  }

  // key(id) into `out`, appended (a std::string or a KeyBuffer).
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

  // An entry made at `now` for key `k`, as a load stores it: of `*value`, or negative for
  // nullptr (nullopt when this name does not cache "does not exist"). Throws EncodeError.
  std::optional<Encoded> encode_entry(std::string_view k, const V* value, EntryMeta::time_point now,
                                      std::chrono::nanoseconds compute) const {
    if (value) {
      const Expiry e = options_.ttl.expiry(options_.name, now);
      return Encoded{entries_.encode(*value, meta(now, e, compute), k), e.ttl};
    }
    const std::chrono::milliseconds ttl = options_.ttl.negative_ttl(options_.name);
    if (ttl.count() <= 0) return std::nullopt;
    return Encoded{entries_.encode_negative(meta(now, {now + ttl, ttl}, compute)), ttl};
  }
  Encoded encode(std::string_view k, const V& value) const { return *encode_entry(k, &value, clock_.now(), {}); }
  std::optional<V> decode_value(std::string_view k, std::string_view bytes) const {
    return entries_.decode(bytes, k).value;
  }

  // Key `k`'s bytes; nullopt for nothing, or for corrupt or foreign bytes (a
  // miss, counted if `counted`). `current`: its stamps already checked (batch_stamps).
  std::optional<Entry> decode(std::string_view k, std::optional<std::string_view> bytes, bool counted = true,
                              const char* current = nullptr) {
    if (!bytes) return std::nullopt;
    try {
      auto d = entries_.decode(*bytes, k);
      if (d.meta.stamped && !(current ? *current : stamps_current(*bytes))) return std::nullopt;  // invalidated by a tag
      if constexpr (tiered) return Entry{d.value ? std::make_shared<const V>(std::move(*d.value)) : nullptr, d.meta};
      else return d;
    } catch (const DecodeError&) {
      if (counted) metrics_->count(Event::decode_error);
      return std::nullopt;
    }
  }

  // Fresh, stale (past the soft expiry) or negative, by the cache's clock (or `now`, read from it).
  Lookup judge(std::optional<Entry> e, std::optional<EntryMeta::time_point> now = std::nullopt) const {
    Lookup found;
    if (!e) return found;
    found.entry = std::move(*e);
    found.state = state_of(found.entry.meta, now);
    return found;
  }
  // An entry's state by its metadata: value, negative, or stale past its soft expiry.
  typename Lookup::State state_of(const EntryMeta& m, std::optional<EntryMeta::time_point> now = std::nullopt) const {
    const bool fresh =  // max: plain
        m.fresh_until == EntryMeta::time_point::max() || (now ? *now : clock_.now()) < m.fresh_until;
    return !fresh ? Lookup::stale : m.negative ? Lookup::negative : Lookup::value;
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
  bool versioned_tags_;  // tags are version counters stamped in entries (Tags::versioned)
  NamespaceVersion* version_;  // options_.versions' entry for `name`, or nullptr
  Tracking::Subscription version_subscription_;  // follow_version()
  std::function<std::vector<std::string>(const V&)> tags_for_;
  std::atomic<bool> watch_writes_{false};  // see WriteAccess::watch_writes; set by attaching, read by loads
  Executor executor_;  // last: stopped first, while what its jobs use still exists

 private:
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

  static bool versioned_tags_of([[maybe_unused]] S& store, [[maybe_unused]] const KeyBuilder& keys) {
    if constexpr (RedisBacked<S>) return tags_versioned(store.redis().pool(), keys);
    else return false;
  }

  // Checked before anything is registered, so a refused configuration leaves nothing behind.
  static CacheOptions validated(CacheOptions o, [[maybe_unused]] S& store) {
    if (o.name.empty()) throw std::invalid_argument("cachet: CacheOptions::name is empty");
    // On a cluster a value's lock, write version and fence share its slot, so its scripts stay in one.
    if constexpr (RedisBacked<S>)
      if (o.keys.hash_tag == HashTag::none && store.redis().pool().cluster()) o.keys.hash_tag = HashTag::entity;
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

  EntryMeta meta(EntryMeta::time_point now, const Expiry& e, std::chrono::nanoseconds compute) const {
    EntryMeta m;
    m.created_at = now;
    m.fresh_until = e.fresh_until;
    m.compute_time = std::chrono::duration_cast<std::chrono::microseconds>(compute);
    return m;
  }
};

}  // namespace cachet::detail
