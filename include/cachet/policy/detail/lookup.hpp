#pragma once
// A CacheAside's reads: the in-process tier first (over a TieredStore), then
// Redis under the breaker, decoded, judged and counted; one key (lookup) or a
// batch in one MGET (lookup_many), and a waiter's uncounted second look (reread).

#include <cachet/policy/detail/cache_core.hpp>
#include <cachet/policy/detail/key_buffer.hpp>
#include <cachet/store/lent_bytes.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace cachet::detail {

template <class V, Codec C, Guard G, Store S, Clock Clk>
class CacheLookup : public CacheCore<V, C, G, S, Clk> {
  using Core = CacheCore<V, C, G, S, Clk>;

 public:
  using Core::Core;
  using typename Core::Entry;
  using typename Core::Lookup;
  using typename Core::Reach;
  using Core::tiered, Core::coarse_hits, Core::options_, Core::store_, Core::guard_, Core::clock_, Core::metrics_, Core::sliding_;
  using Core::attempt, Core::judge, Core::decode, Core::value_of, Core::read_key;

  // What a read of the store gives back before it is decoded: bytes lent by
  // the reply where the store lends them, else a copy; a tiered store's ticket.
  template <class St, bool = tiered>
  struct FetchedOf {
    using type = std::conditional_t<LendingStore<St>, LentBytes, std::optional<std::string>>;
  };
  template <class St>
  struct FetchedOf<St, true> {
    using type = typename St::Fetched;
  };
  using Fetched = typename FetchedOf<S>::type;

  // The lookup of id's key, built on the stack; a miss (uncounted by lookup)
  // when a versioned name's version cannot be read.
  Lookup lookup_id(std::string_view id) {
    KeyBuffer k;
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
    Lookup found;
    if (in_process(k, found)) return found;  // counted there
    Fetched f;
    const Reach r = fetch_timed(true, [&] { f = fetch(k); });
    landed(k, found, r == Reach::reached ? &f : nullptr);
    count(found);
    return found;
  }

  // Fills `out` with the hits (in process first, then one MGET for the rest)
  // and lists the indices still missing, in order. Returns whether Redis was reached.
  bool lookup_many(std::span<const std::string_view> keys, std::vector<std::optional<V>>& out,
                   std::vector<std::size_t>& missing) {
    Tally tally;
    std::vector<std::string_view> remote;  // the keys the in-process tier did not answer
    std::vector<std::size_t> at;
    if constexpr (tiered) {
      for (std::size_t i = 0; i < keys.size(); ++i) {
        if (Lookup found; in_process(keys[i], found)) {  // counted there
          if (found.state == Lookup::value) out[i] = value_of(found.entry);
        } else {
          remote.push_back(keys[i]);
          at.push_back(i);
        }
      }
    }
    const std::span<const std::string_view> asked = tiered ? std::span<const std::string_view>(remote) : keys;
    Batch fetched;
    const Reach r = fetch_timed(!asked.empty(), [&] { fetched = fetch_many(asked); });
    if constexpr (tiered) {
      std::vector<char> current;  // the batch's stamp checks, in one read
      if (r == Reach::reached) {
        std::vector<std::optional<std::string_view>> bytes;
        for (const auto& f : fetched) bytes.emplace_back(f.bytes);
        current = Core::batch_stamps(bytes);
      }
      for (std::size_t j = 0; j < asked.size(); ++j) {
        Lookup found;
        if (r == Reach::reached) found = judge(take_at(asked[j], fetched, j, current.empty() ? nullptr : &current[j]));
        settle(at[j], found, out, missing, tally);
      }
    } else {
      const auto now = clock_.now();  // one read judges the whole batch
      std::vector<std::size_t> stamped;  // fresh entries whose tags are checked after the loop, all at once
      for (std::size_t j = 0; j < asked.size(); ++j) {
        bool tagged = false;
        const auto s = r == Reach::reached ? decode_into(asked[j], bytes_at(fetched, j), out[j], now, tagged) : Lookup::miss;
        if (tagged && s == Lookup::value) stamped.push_back(j);
        else tally.add(j, s, missing);
      }
      if (!stamped.empty()) check_stamps(fetched, stamped, out, missing, tally);
    }
    tally.count(*metrics_);
    if constexpr (tiered) std::sort(missing.begin(), missing.end());
    return r == Reach::reached;
  }

  // A waiter's second look: a fresh value (or a cached "does not exist")
  // computed after `after`. Uncounted, and any failure is just "not yet".
  template <class R>
  std::optional<R> reread(const std::string& k, EntryMeta::time_point after) {
    try {
      Lookup found = judge(decode(k, store_.get(k), false));  // the lookup counted these bytes
      if (found.entry.meta.created_at <= after) return std::nullopt;
      if (found.state == Lookup::value) return R(value_of(found.entry));
      if constexpr (is_optional<R>::value) {
        if (found.state == Lookup::negative) return R(std::nullopt);
      }
    } catch (const Error&) {
    }
    return std::nullopt;
  }

  // Whether the guard recomputes this fresh entry early (XFetch); never for plain entries.
  bool picked_early(const EntryMeta& meta) {
    if constexpr (EarlyRefreshing<G>) {
      return meta.fresh_until != EntryMeta::time_point::max() && guard_.refresh_early(meta, clock_.now());
    }
    return false;
  }

  // Counts a lookup as a hit, negative hit or miss (a stale entry is a miss).
  void count(const Lookup& found) {
    metrics_->count(found.state == Lookup::value      ? Event::hit
                    : found.state == Lookup::negative ? Event::negative_hit
                                                      : Event::miss);
  }

 private:
  // A batch's hits, negative hits and misses, counted once each.
  struct Tally {
    std::uint64_t hits = 0, negatives = 0, misses = 0;
    // Key i judged `s`: a miss or a stale entry goes to `missing`.
    void add(std::size_t i, typename Lookup::State s, std::vector<std::size_t>& missing) {
      if (s == Lookup::value) {
        ++hits;
      } else if (s == Lookup::negative) {
        ++negatives;
      } else {
        missing.push_back(i);
        ++misses;
      }
    }
    void count(CacheMetrics& m) const {
      if (hits) m.count(Event::hit, hits);
      if (negatives) m.count(Event::negative_hit, negatives);
      if (misses) m.count(Event::miss, misses);
    }
  };
  // Key i's lookup into `out`, or `missing`, and the tally.
  static void settle(std::size_t i, Lookup& found, std::vector<std::optional<V>>& out, std::vector<std::size_t>& missing,
                     Tally& tally) {
    if (found.state == Lookup::value) out[i] = value_of(found.entry);
    tally.add(i, found.state, missing);
  }

  // What fetch_many read: a tiered store's tickets; else the bytes an MGET
  // lends, or copies (a sliding read's GETEX pipeline).
  template <class St, bool = tiered>
  struct BatchOf {
    struct type {
      LentBytes lent;
      std::vector<std::optional<std::string>> copied;
    };
  };
  template <class St>
  struct BatchOf<St, true> {
    using type = std::vector<typename St::Fetched>;
  };
  using Batch = typename BatchOf<S>::type;

  // Judges `k`'s in-process entry into `found`; true when it is the answer,
  // counted then as a hit or negative hit and an l1_hit.
  bool in_process(std::string_view k, Lookup& found) {
    if constexpr (coarse_hits) {
      const auto now = CoarseSystemClock::now();  // the one clock read of an in-process hit
      // In place, judged by the tier's own copy of the metadata: copying the entry
      // through temporaries, or reading the copy back, stalled on store forwarding.
      const EntryMeta* meta = store_.cached_into(k, now, found.entry);
      found.state = meta ? Core::state_of(*meta, now) : Lookup::miss;
    } else {
      found = judge(cached(k));
    }
    if (found.state == Lookup::miss || found.state == Lookup::stale) return false;
    metrics_->count_l1(found.state == Lookup::value ? Event::hit : Event::negative_hit);
    return true;
  }

  // The read of Redis (when `needed`) under the breaker, timed unless skipped.
  template <class Op>
  Reach fetch_timed(bool needed, Op&& op) {
    const auto started = std::chrono::steady_clock::now();
    const Reach r = needed ? attempt(std::forward<Op>(op), options_.throw_redis_errors) : Reach::reached;
    if (r != Reach::skipped) metrics_->get_latency().observe(std::chrono::steady_clock::now() - started);
    return r;
  }

  // What Redis gave for `k` into `found`; nullptr: not reached (`found` kept, unreachable).
  void landed(std::string_view k, Lookup& found, Fetched* f) {
    if (f) found = judge(take(k, *f));
    else found.reachable = false;
  }

  std::optional<Entry> cached([[maybe_unused]] std::string_view k) {
    if constexpr (tiered) return store_.cached(k);
    else return std::nullopt;
  }

  // Reads the store (Redis); a tiered store hands out a ticket for fill().
  Fetched fetch(std::string_view k) {
    if constexpr (tiered) return store_.fetch(k);
    else return read(k);
  }
  // The batch's bytes, of the size asked for (else ProtocolError).
  Batch fetch_many(std::span<const std::string_view> keys) {
    Batch b;
    if constexpr (tiered) {
      b = store_.fetch_many(keys);
      if (b.size() != keys.size()) throw ProtocolError("cachet: store returned a batch of the wrong size");
    } else {
      if constexpr (LendingStore<S>) {
        if (!sliding_) return {store_.get_many_lent(keys), {}};
      }
      b.copied = read_many(keys);
      if (b.copied.size() != keys.size()) throw ProtocolError("cachet: store returned a batch of the wrong size");
    }
    return b;
  }

  // Decodes what fetch() read; a tiered store keeps it in process.
  // `current`: its stamps already checked (batch_stamps).
  std::optional<Entry> take(std::string_view k, Fetched& f, [[maybe_unused]] const char* current = nullptr) {
    if constexpr (tiered) {
      std::optional<Entry> e = decode(k, f.bytes, true, current);
      if (e && !e->meta.stamped) store_.fill(k, f, *e);  // a stamped entry is checked on every read
      return e;
    } else if constexpr (LendingStore<S>) {
      return decode(k, f.value());
    } else {
      return decode(k, f);
    }
  }
  // take() of the j-th key of a tiered batch.
  std::optional<Entry> take_at(std::string_view k, Batch& b, std::size_t j, const char* current = nullptr) {
    return take(k, b[j], current);
  }
  // The j-th key's bytes of a batch read from Redis alone.
  static std::optional<std::string_view> bytes_at(const Batch& b, std::size_t j) {
    return b.copied.empty() ? b.lent[j] : std::optional<std::string_view>(b.copied[j]);
  }

  // decode() of key `k`'s bytes straight into its result `value` (no entry in
  // between), judged at `now`; `value` is left empty unless the state is value.
  // `stamped`: whether it carries tag stamps, for check_stamps.
  typename Lookup::State decode_into(std::string_view k, std::optional<std::string_view> bytes, std::optional<V>& value,
                                     EntryMeta::time_point now, bool& stamped) {
    if (!bytes) return Lookup::miss;
    try {
      const EntryMeta meta = Core::entries_.decode_into(*bytes, value, k);
      const auto s = Core::state_of(meta, now);
      stamped = meta.stamped;
      if (s != Lookup::value) value.reset();
      return s;
    } catch (const DecodeError&) {
      metrics_->count(Event::decode_error);
      return Lookup::miss;
    }
  }

  // The fresh stamped entries of a batch checked in one read (Redis Cluster
  // tags), then tallied: a tag invalidated since makes the entry a miss.
  void check_stamps(const Batch& fetched, const std::vector<std::size_t>& stamped, std::vector<std::optional<V>>& out,
                    std::vector<std::size_t>& missing, Tally& tally) {
    std::vector<std::string_view> bytes;
    for (std::size_t j : stamped) bytes.push_back(*bytes_at(fetched, j));
    const std::vector<bool> current = Core::stamps_current_many(bytes);
    for (std::size_t i = 0; i < stamped.size(); ++i) {
      if (!current[i]) out[stamped[i]].reset();
      tally.add(stamped[i], current[i] ? Lookup::value : Lookup::miss, missing);
    }
    std::sort(missing.begin(), missing.end());  // in order, as the caller expects
  }

  // A sliding entry's TTL is renewed by the read itself (the envelope's soft
  // expiry is not moved: sliding entries are meant to have no stale window).
  Fetched read(std::string_view k) {
    if constexpr (LendingStore<S>) {
      if (sliding_) return store_.get_and_touch_lent(k, sliding_ttl());
      return store_.get_lent(k);
    } else {
      if constexpr (TouchingStore<S>) {
        if (sliding_) return store_.get_and_touch(k, sliding_ttl());
      }
      return store_.get(k);
    }
  }
  std::vector<std::optional<std::string>> read_many(std::span<const std::string_view> keys) {
    if constexpr (TouchingStore<S>) {
      if (sliding_) return store_.get_many_and_touch(keys, sliding_ttl());
    }
    return store_.get_many(keys);
  }

  std::chrono::milliseconds sliding_ttl() const { return options_.ttl.expiry(options_.name, clock_.now()).ttl; }
};

}  // namespace cachet::detail
