#pragma once
// Write-through: the database first, then the cache.
//
//   auto save = [&](std::string_view id, const Product& p) { return db.update(id, p); };  // the row's new version
//   cachet::WriteThrough<Product, decltype(save)> products(pool, {.ns = "shop", .name = "product"}, save);
//   products.put("42", product);                          // db.update, then the cache
//   Product p = products.get_or_load("42", load_product);  // reads are CacheAside's
//
// - The writer runs first. If it throws, the cache is untouched and the
//   exception reaches the caller.
// - Then the cache is set (or the key deleted: WriteThroughOptions::on_write).
//   If that fails, the key is deleted; if the delete fails too (Redis down), the
//   failure is counted (write_unrepaired) and reported to `on_unrepaired`, and
//   the key's TTL bounds how long the old value can be served.
// - Versions: a writer that returns an integer (a row version, an updated-at,
//   or next_version() drawn inside its transaction) makes the cache write
//   conditional. One script refuses to replace a newer version with an older
//   one, so two writers racing on a key never leave the older value cached. The
//   last version is kept in {ns}:wv:{key} for the value's TTL + version_margin.
// - A writer that returns nothing: the cache write is a plain SET (or UNLINK),
//   and of two racing writers the last to reach Redis wins.
//
// A read that misses, loads the old row and writes it back after a concurrent
// put has set the new one leaves the old value until its TTL: cache-aside's
// own race, which versions do not cover (loads carry none).

#include <cachet/detail/versioned_write.hpp>
#include <cachet/policy/cache_aside.hpp>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace cachet {

// A write-through writer: writes the value to the database and returns nothing,
// or the version it wrote (any integer type; larger is newer).
template <class W, class V>
concept Writer = std::invocable<W&, std::string_view, const V&> &&
                 (std::is_void_v<std::invoke_result_t<W&, std::string_view, const V&>> ||
                  (std::integral<std::invoke_result_t<W&, std::string_view, const V&>> &&
                   !std::same_as<std::invoke_result_t<W&, std::string_view, const V&>, bool>));

// What a write does to the cache once the database has the value.
enum class CacheUpdate { set, del };

// How a put left the cache.
enum class WriteOutcome {
  cached,        // the new value is cached
  deleted,       // the key was deleted (CacheUpdate::del, or the set failed and the delete worked)
  newer_cached,  // a newer version was already cached and stays
  unrepaired,    // neither set nor deleted: the old value may be served until its TTL
};

// Reported when a written key could be neither updated nor deleted.
struct UnrepairedWrite {
  std::string_view id;
  std::string_view key;
  std::exception_ptr error;  // the delete's error (null when the circuit breaker skipped Redis)
};

struct WriteThroughOptions {
  CacheUpdate on_write = CacheUpdate::set;
  // How much longer than the value the version of a versioned write is kept:
  // a write delayed past the value's expiry by less than this is still refused.
  std::chrono::milliseconds version_margin{std::chrono::minutes(1)};
  std::function<void(const UnrepairedWrite&)> on_unrepaired;
};

template <class V, class W, Codec C = JsonCodec<V>, Guard G = NoGuard, Clock Clk = SystemClock>
  requires Writer<W, V> && CodecFor<C, V>
class WriteThrough {
 public:
  using value_type = V;
  using Cache = CacheAside<V, C, G, RedisStore, Clk>;
  static constexpr bool versioned = !std::is_void_v<std::invoke_result_t<W&, std::string_view, const V&>>;

  // The pool must outlive the cache.
  WriteThrough(Pool& pool, CacheOptions options, W writer, WriteThroughOptions write = {}, C codec = {}, G guard = {},
               Clk clock = {})
      : cache_(RedisStore(pool), std::move(options), std::move(codec), std::move(guard), std::move(clock)),
        writer_(std::move(writer)),
        write_(std::move(write)) {}

  // Writes `value` to the database, then updates the cache. The writer's
  // exception reaches the caller with the cache untouched; cache failures do not
  // throw (the database has the value): they are counted and reported.
  WriteOutcome put(std::string_view id, const V& value) {
    cache_.metrics().count(Event::write);
    const std::optional<std::string> version = call_writer(id, value);
    return update_cache(id, value, version);
  }

  // A version drawn from Redis (INCR on {ns}:wseq:{name}), for writers whose rows
  // have none. Draw it inside the database transaction, after the row is locked,
  // so that versions follow the order in which writes commit.
  std::uint64_t next_version() {
    auto lease = cache_.store().pool().acquire();
    return static_cast<std::uint64_t>(lease->command({"INCR", cache_.keys().write_sequence(cache_.options().name)}).as_integer());
  }

  std::optional<V> get(std::string_view id) { return cache_.get(id); }
  template <Loader<V> L>
  auto get_or_load(std::string_view id, L&& loader) -> std::invoke_result_t<L&, std::string_view> {
    return cache_.get_or_load(id, std::forward<L>(loader));
  }
  bool invalidate(std::string_view id) { return cache_.invalidate(id); }

  Cache& cache() noexcept { return cache_; }
  std::string key(std::string_view id) const { return cache_.key(id); }
  const WriteThroughOptions& write_options() const noexcept { return write_; }

 private:
  std::optional<std::string> call_writer(std::string_view id, const V& value) {
    try {
      if constexpr (versioned) return detail::version_text(writer_(id, value));
      else writer_(id, value);
    } catch (...) {
      cache_.metrics().count(Event::write_error);
      throw;
    }
    return std::nullopt;
  }

  WriteOutcome update_cache(std::string_view id, const V& value, const std::optional<std::string>& version) {
    const std::string k = cache_.key(id);
    std::exception_ptr error;
    bool newer = false;
    if (write_.on_write == CacheUpdate::set) {
      std::optional<typename Cache::Encoded> e;
      try {
        e = cache_.encode(value);
      } catch (const EncodeError&) {
        error = std::current_exception();
      }
      if (e && reach(error, [&] { newer = !write(k, &*e, version); })) return outcome(newer, WriteOutcome::cached);
      cache_.metrics().count(Event::cache_write_error);
    } else if (reach(error, [&] { newer = !write(k, nullptr, version); })) {
      return outcome(newer, WriteOutcome::deleted);
    }
    // A plain UNLINK: Redis refusing writes (OOM) refuses scripts but not deletes.
    if (reach(error, [&] { cache_.store().del(k); })) return WriteOutcome::deleted;
    cache_.metrics().count(Event::write_unrepaired);
    if (write_.on_unrepaired) write_.on_unrepaired(UnrepairedWrite{id, k, error});
    return WriteOutcome::unrepaired;
  }

  // The cache write: `e` set, or (null) the key deleted; false when a newer version is cached.
  bool write(const std::string& k, const typename Cache::Encoded* e, const std::optional<std::string>& version) {
    if (!version) {
      if (e) cache_.store().set(k, e->bytes, e->ttl);
      else cache_.store().del(k);
      return true;
    }
    const auto ttl = e ? e->ttl : cache_.options().ttl.expiry(cache_.options().name, std::chrono::system_clock::now()).ttl;
    auto lease = cache_.store().pool().acquire();
    return detail::write_if_newer(*lease, k, cache_.keys().write_version(k), *version,
                                  e ? std::optional<std::string_view>(e->bytes) : std::nullopt, ttl,
                                  ttl + write_.version_margin);
  }

  WriteOutcome outcome(bool newer, WriteOutcome done) {
    if (!newer) return done;
    cache_.metrics().count(Event::stale_write_refused);
    return WriteOutcome::newer_cached;
  }

  // Runs `op` under the cache's breaker, keeping its error for the report.
  template <class Op>
  bool reach(std::exception_ptr& error, Op&& op) {
    return cache_.guarded(
        [&] {
          try {
            op();
          } catch (...) {
            error = std::current_exception();
            throw;
          }
        },
        false);
  }

  Cache cache_;
  W writer_;
  WriteThroughOptions write_;
};

}  // namespace cachet
