#pragma once
// A CacheAside's reads: the in-process tier first (over a TieredStore), then
// Redis under the breaker, decoded, judged and counted; one key (lookup) or a
// batch in one MGET (lookup_many), and a waiter's uncounted second look (reread).

#include <cachet/policy/detail/cache_core.hpp>
#include <cachet/policy/detail/key_buffer.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
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
    if (!in_process(k, found)) {
      Fetched f;
      const Reach r = fetch_timed(true, [&] { f = fetch(k); });
      landed(k, found, r == Reach::reached ? &f : nullptr);
    }
    count(found);
    return found;
  }

  // Fills `out` with the hits (in process first, then one MGET for the rest)
  // and lists the indices still missing. Returns whether Redis was reached.
  bool lookup_many(const std::vector<std::string>& keys, std::vector<std::optional<V>>& out,
                   std::vector<std::size_t>& missing) {
    std::vector<Lookup> found(keys.size());
    std::vector<std::string_view> remote;  // the keys the in-process tier did not answer
    std::vector<std::size_t> at;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (in_process(keys[i], found[i])) continue;
      remote.push_back(keys[i]);
      at.push_back(i);
    }
    std::vector<Fetched> fetched;
    const Reach r = fetch_timed(!remote.empty(), [&] {
      fetched = fetch_many(remote);
      if (fetched.size() != remote.size()) throw ProtocolError("cachet: store returned a batch of the wrong size");
    });
    for (std::size_t j = 0; j < remote.size(); ++j)
      landed(remote[j], found[at[j]], r == Reach::reached ? &fetched[j] : nullptr);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      count(found[i]);
      if (found[i].state == Lookup::value) out[i] = value_of(found[i].entry);
      else if (found[i].state != Lookup::negative) missing.push_back(i);
    }
    return r == Reach::reached;
  }

  // A waiter's second look: a fresh value (or a cached "does not exist")
  // computed after `after`. Uncounted, and any failure is just "not yet".
  template <class R>
  std::optional<R> reread(const std::string& k, EntryMeta::time_point after) {
    try {
      Lookup found = judge(decode(store_.get(k), false));  // the lookup counted these bytes
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
  // Judges `k`'s in-process entry into `found`; true (an l1_hit) when it is the answer.
  bool in_process(std::string_view k, Lookup& found) {
    if constexpr (coarse_hits) {
      const auto now = CoarseSystemClock::now();  // the one clock read of an in-process hit
      found = judge(store_.cached(k, now), now);
    } else {
      found = judge(cached(k));
    }
    if (found.state == Lookup::miss || found.state == Lookup::stale) return false;
    metrics_->count(Event::l1_hit);
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
};

}  // namespace cachet::detail
