#pragma once
// Versioned namespaces: invalidate every value of a name in O(1).
//
//   cachet::NamespaceVersions versions(pool, cachet::KeyBuilder("shop"), {.cache_for = 1s});
//   versions.current("product");   // N: values live at shop:product:v{N}:{id}
//   versions.bump("product");      // INCR shop:ver:product: every old key is unreachable at once,
//                                  // and simply expires with its TTL
//
// The version is cached in process for `cache_for`, so a read costs no extra
// round trip. Staleness bound: a bump made anywhere is seen by every read that
// starts at least `cache_for` after the bump completed (the cache is dated from
// when its GET was sent, not received). A bump made through this object is seen
// by this process at once. Concurrent local bumps never move the cached version
// backwards. A cache over a TieredStore whose Tracking covers the counter drops
// the cached version as soon as the counter's invalidation arrives (expire()),
// so there a bump is seen within the invalidation delay.
//
// If the counter cannot be read (Redis unreachable), the last known version is
// kept and the read retried after `cache_for`; with no known version the Redis
// error is thrown. Counters have no TTL: keep them out of eviction (a volatile-*
// maxmemory policy), since a counter that disappears starts again at 0.
//
// The counter is read (GET) and bumped (INCR) through a RedisStore.

#include <cachet/keys.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/store/redis_store.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace cachet {

struct VersionOptions {
  std::chrono::milliseconds cache_for{1000};  // the staleness bound of other processes' bumps
};

// One name's version counter and its in-process cache. Thread-safe; a read of a
// fresh cached version is two atomic loads and a clock read.
class NamespaceVersion {
 public:
  // The store's pool must outlive this object.
  NamespaceVersion(RedisStore store, std::string counter_key, VersionOptions options = {})
      : store_(store), key_(std::move(counter_key)), cache_for_(options.cache_for) {}
  NamespaceVersion(Pool& pool, std::string counter_key, VersionOptions options = {})
      : NamespaceVersion(RedisStore(pool), std::move(counter_key), options) {}
  NamespaceVersion(const NamespaceVersion&) = delete;
  NamespaceVersion& operator=(const NamespaceVersion&) = delete;

  std::uint64_t current() {
    if (clock::now().time_since_epoch().count() < fresh_until_.load(std::memory_order_acquire))
      return version_.load(std::memory_order_relaxed);
    return refresh();
  }

  // INCR: every key of the old version is unreachable from now on. Throws on Redis errors.
  std::uint64_t bump() {
    const auto v = static_cast<std::uint64_t>(store_.incr(key_));
    bumped(v);
    return v;
  }

  // Records a bump made by other means in this process (DependencyMap's script).
  void bumped(std::uint64_t v) {
    std::lock_guard lock(mutex_);
    ++local_bumps_;
    if (v > version_.load(std::memory_order_relaxed)) version_.store(v, std::memory_order_relaxed);
    known_.store(true, std::memory_order_release);
  }

  // Forgets the cached version, so the next read fetches it (client tracking
  // calls this when the counter changes). A fetch already in flight is not
  // trusted beyond its own read.
  void expire() {
    std::lock_guard lock(mutex_);
    ++expiries_;
    fresh_until_.store(0, std::memory_order_release);
  }

  // Whether a version was ever read or bumped here: if so, current() never throws.
  bool known() const noexcept { return known_.load(std::memory_order_acquire); }

  const std::string& counter_key() const noexcept { return key_; }

 private:
  using clock = std::chrono::steady_clock;

  std::uint64_t refresh() {
    const auto sent = clock::now();
    std::uint64_t bumps_before, expiries_before;
    {
      std::lock_guard lock(mutex_);
      bumps_before = local_bumps_;
      expiries_before = expiries_;
    }
    std::uint64_t fetched = 0;
    try {
      const std::optional<std::string> v = store_.get(key_);
      fetched = v ? std::stoull(*v) : 0;  // no counter yet: version 0
    } catch (const Error&) {
      std::lock_guard lock(mutex_);
      if (!known_.load(std::memory_order_relaxed)) throw;
      fresh_until_.store((sent + cache_for_).time_since_epoch().count(), std::memory_order_release);  // retry later
      return version_.load(std::memory_order_relaxed);
    }
    std::lock_guard lock(mutex_);
    // A GET sent before the one last applied answers from further back: keep the newer.
    if (sent < applied_sent_) return version_.load(std::memory_order_relaxed);
    applied_sent_ = sent;
    // A local bump that raced the GET wins unless the counter moved further; without
    // one the fetched value is taken as it is (even lower: a counter that was reset).
    if (local_bumps_ == bumps_before || fetched > version_.load(std::memory_order_relaxed))
      version_.store(fetched, std::memory_order_relaxed);
    known_.store(true, std::memory_order_release);
    // Expired while the GET was out: it may predate the change, so the next read asks again.
    if (expiries_ == expiries_before)
      fresh_until_.store((sent + cache_for_).time_since_epoch().count(), std::memory_order_release);
    return version_.load(std::memory_order_relaxed);
  }

  RedisStore store_;
  std::string key_;
  clock::duration cache_for_;
  std::atomic<std::uint64_t> version_{0};
  std::atomic<clock::rep> fresh_until_{0};  // steady-clock ticks; 0: never read
  std::mutex mutex_;                        // serialises updates, not reads
  std::uint64_t local_bumps_ = 0;
  std::uint64_t expiries_ = 0;
  clock::time_point applied_sent_{};  // when the GET whose answer is cached was sent
  std::atomic<bool> known_{false};  // written under mutex_; read by known()
};

// The versions of a namespace's names, one NamespaceVersion each, created on first use.
class NamespaceVersions {
 public:
  // The store's pool must outlive this object.
  NamespaceVersions(RedisStore store, KeyBuilder keys, VersionOptions options = {})
      : store_(store), keys_(std::move(keys)), options_(options) {}
  NamespaceVersions(Pool& pool, KeyBuilder keys, VersionOptions options = {})
      : NamespaceVersions(RedisStore(pool), std::move(keys), options) {}
  NamespaceVersions(const NamespaceVersions&) = delete;
  NamespaceVersions& operator=(const NamespaceVersions&) = delete;

  // The version object of `name`; it lives as long as this registry.
  NamespaceVersion& of(std::string_view name) {
    std::lock_guard lock(mutex_);
    auto it = names_.find(name);
    if (it == names_.end())
      it = names_.emplace(std::string(name), std::make_unique<NamespaceVersion>(store_, keys_.version(name), options_))
               .first;
    return *it->second;
  }

  std::uint64_t current(std::string_view name) { return of(name).current(); }
  std::uint64_t bump(std::string_view name) { return of(name).bump(); }

  // "{ns}:{name}:v{N}:" for the current version.
  std::string name_prefix(std::string_view name) { return keys_.name_prefix(name, current(name)); }
  std::string value_key(std::string_view name, std::string_view id) { return keys_.value(name, id, current(name)); }

  const KeyBuilder& keys() const noexcept { return keys_; }
  const VersionOptions& options() const noexcept { return options_; }

 private:
  RedisStore store_;
  KeyBuilder keys_;
  VersionOptions options_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<NamespaceVersion>, std::less<>> names_;
};

}  // namespace cachet
