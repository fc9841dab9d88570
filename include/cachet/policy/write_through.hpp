#pragma once
// Write-through: the database first, then the cache.
//
//   auto products_cache = cachet::make_cache<Product>(pool, {.ns = "shop", .name = "product"});
//   auto save = [&](std::string_view id, const Product& p) { return db.update(id, p); };  // the row's new version
//   auto products = cachet::write_through(products_cache, save);
//   products.put("42", product);                                  // db.update, then the cache
//   Product p = products_cache.get_or_load("42", load_product);  // reads are the cache's
//
// The policy attaches to a cache the caller owns, which must outlive it; attach
// before the cache is shared (attaching switches on its write-version watching).
//
// - The writer runs first. If it throws, the cache is untouched and the
//   exception reaches the caller. The cache's tags callback (tag_loaded_values)
//   runs before it: if that throws, nothing is written and it reaches the caller.
// - Then the cache is set (or the key deleted: WriteThroughOptions::on_write).
//   If that fails, the key is deleted; if the delete fails too (Redis down), the
//   failure is counted (write_unrepaired) and reported to `on_unrepaired`, and
//   the key's TTL bounds how long the old value can be served.
// - Replication (WriteThroughOptions::replication): the cache write waits for
//   replicas; too few in time: counted and reported as above, returned as
//   WriteOutcome::unreplicated, the key left as written (docs/durability.md).
// - Versions: a writer that returns an integer (a row version, an updated-at,
//   or next_version() drawn inside its transaction) makes the cache write
//   conditional. One script refuses to replace a newer version with an older
//   one, so two writers racing on a key never leave the older value cached. The
//   last version is kept in {ns}:wv:{key} for the value's TTL + version_margin.
//   A writer that returns nothing: of two racing writers the last to reach
//   Redis wins.
// - Invalidation: invalidate_after_write(f) names what else a write makes stale
//   (other keys, tags, versioned namespaces: a DependencyMap's targets_for, say);
//   it is invalidated in the same atomic step as the cache write (MULTI/EXEC of
//   the write script and the invalidation script), and by the fallback delete
//   if that step fails. A value the cache tags (tag_loaded_values) is tagged by
//   the write's script, so invalidate_tags finds written values as well as loaded ones.
//
// - Loads overlapping a put: every put changes the key's write version
//   ({ns}:wv:{key}; an unversioned put INCRs it), and a load notes it before
//   calling the loader; the load's write is refused (stale_write_refused) if it
//   changed. So a read that loaded the old row cannot overwrite a put's newer
//   value, cache-aside's own race. The reader still gets what it loaded.
//
// Redis Cluster: the write touches the value key, its version key, its tag sets
// and the invalidation's keys, which must share a slot: use HashTag::ns. Without
// it the cache's tags are version counters: the written value is stamped, and
// the invalidation's tags are bumped just before the write's atomic step
// (TagVersions), apart from it; its keys and namespaces must still share a slot.

#include <cachet/invalidation/dependencies.hpp>
#include <cachet/policy/detail/write_policy.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/store/concepts.hpp>
#include <cachet/store/replication.hpp>
#include <cachet/store/write.hpp>

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
#include <vector>

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
  unreplicated,  // cached on the master, but fewer replicas than asked confirmed it (Replication)
};

// Reported when a written key could be neither updated nor deleted (nor, with
// invalidate_after_write, its targets invalidated).
struct UnrepairedWrite {
  std::string_view id;
  std::string_view key;
  // The delete's error (null when the circuit breaker skipped Redis), or the
  // ReplicationError of a write only the master confirmed (WriteOutcome::unreplicated).
  std::exception_ptr error;
};

struct WriteThroughOptions {
  CacheUpdate on_write = CacheUpdate::set;
  // How much longer than the value the version of a versioned write is kept:
  // a write delayed past the value's expiry by less than this is still refused.
  std::chrono::milliseconds version_margin{std::chrono::minutes(1)};
  std::function<void(const UnrepairedWrite&)> on_unrepaired{};
  // The cache write waits for this many replicas (WAIT, in its round trip); when
  // fewer confirm it, put() returns unreplicated and reports it to on_unrepaired
  // (the database has the value all the same). 0: no wait. See docs/durability.md.
  Replication replication{};
};

template <detail::AttachableCache Cache, class W>
  requires Writer<W, typename Cache::value_type>
class WriteThrough : public detail::WritePolicy<Cache, W> {
  using Base = detail::WritePolicy<Cache, W>;
  using Base::cache_, Base::access_, Base::writer_;
  using V = typename Cache::value_type;

 public:
  using Invalidation = std::function<Targets(std::string_view id, const V& value)>;
  static constexpr bool versioned = !std::is_void_v<std::invoke_result_t<W&, std::string_view, const V&>>;

  // Attaches to `cache`, which must outlive the policy. Over a TieredStore a put
  // drops the key from this process's in-process tier (and, with tracking,
  // from every process's).
  WriteThrough(Cache& cache, W writer, WriteThroughOptions write = {})
      : Base(cache, std::move(writer)), write_(std::move(write)) {
    check_replication(write_.replication, cache_.store().redis().pool().connection_options());
  }

  // Writes `value` to the database, then updates the cache. The writer's
  // exception reaches the caller with the cache untouched; cache failures do not
  // throw (the database has the value): they are counted and reported.
  // Throws, before the writer runs (nothing written anywhere): what the cache's
  // tags callback throws, and std::invalid_argument when the invalidation names
  // namespaces and the cache has no CacheOptions::versions.
  WriteOutcome put(std::string_view id, const V& value) {
    cache_.metrics().count(Event::write);
    std::optional<ResolvedTargets> targets;
    if (after_write_)
      targets.emplace(after_write_(id, value), cache_.keys(), cache_.options().versions, access_.versioned_tags());
    Tagged tagged;
    tag(value, tagged);  // the tags callback: its throw is no outage, so outside the breaker (and before the database)
    const std::optional<std::string> row_version = call_writer(id, value);
    return update_cache(id, value, row_version, targets && !targets->empty() ? &*targets : nullptr, tagged);
  }

  // What a write of `id` makes stale besides its own key: keys (full), tags and
  // versioned namespaces (their names; needs CacheOptions::versions), invalidated
  // in the cache write's atomic step. Set it before the cache is shared.
  void invalidate_after_write(Invalidation f) { after_write_ = std::move(f); }

  // A version drawn from Redis (INCR on {ns}:wseq:{name}), for writers whose rows
  // have none. Draw it inside the database transaction, after the row is locked,
  // so that versions follow the order in which writes commit.
  std::uint64_t next_version() { return cache_.store().incr(cache_.keys().write_sequence(cache_.options().name)); }

  // The cache's reads, for convenience.
  std::optional<V> get(std::string_view id) { return cache_.get(id); }
  template <Loader<V> L>
  auto get_or_load(std::string_view id, L&& loader) -> std::invoke_result_t<L&, std::string_view> {
    return cache_.get_or_load(id, std::forward<L>(loader));
  }
  bool invalidate(std::string_view id) { return cache_.invalidate(id); }

  const WriteThroughOptions& write_options() const noexcept { return write_; }

 private:
  using TagBuffers = typename detail::WriteAccess<Cache>::TagBuffers;
  // The cache write as the cache tags the value (on_write set): its tag sets, or
  // on Redis Cluster the tags write() stamps its bytes with.
  struct Tagged {
    StoreWrite w{};
    TagBuffers keep;  // w views it
  };
  // The tags callback's step (no Redis); write() fills in the rest of `t.w`.
  void tag(const V& value, Tagged& t) {
    const V* values[] = {write_.on_write == CacheUpdate::set ? &value : nullptr};
    access_.tags_of({&t.w, 1}, values, t.keep);
  }

  std::optional<std::string> call_writer(std::string_view id, const V& value) {
    try {
      if constexpr (versioned) return version_text(writer_(id, value));
      else writer_(id, value);
    } catch (...) {
      cache_.metrics().count(Event::write_error);
      throw;
    }
    return std::nullopt;
  }

  // The store's writes take the key out of an in-process tier (TieredStore),
  // and what the targets' invalidation deleted.
  WriteOutcome update_cache(std::string_view id, const V& value, const std::optional<std::string>& row_version,
                            const ResolvedTargets* targets, Tagged& tagged) {
    const std::string k = cache_.key(id);
    const bool set = write_.on_write == CacheUpdate::set;
    std::exception_ptr error;
    std::optional<detail::Encoded> e;
    if (set) {
      try {
        e = access_.encode(k, value);
      } catch (const EncodeError&) {
        error = std::current_exception();
      }
    }
    bool newer = false;
    if ((e || !set) && reach(error, [&] { newer = !write(k, e ? &*e : nullptr, tagged, row_version, targets); }))
      return outcome(newer, set ? WriteOutcome::cached : WriteOutcome::deleted);
    cache_.metrics().count(Event::cache_write_error);
    // The master has the new value: deleting it would help no replica that lags.
    if (unreplicated(error)) return report(id, k, error, WriteOutcome::unreplicated);
    if (reach(error, [&] { remove(k, targets); })) return WriteOutcome::deleted;
    return report(id, k, error, WriteOutcome::unrepaired);
  }

  WriteOutcome report(std::string_view id, const std::string& k, std::exception_ptr error, WriteOutcome outcome) {
    cache_.metrics().count(Event::write_unrepaired);
    if (write_.on_unrepaired) write_.on_unrepaired(UnrepairedWrite{id, k, error});
    return outcome;
  }

  static bool unreplicated(const std::exception_ptr& error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const ReplicationError&) {
      return true;
    } catch (...) {
    }
    return false;
  }

  // The cache write: `e` set (tagged as tag() found, stamped here on Redis
  // Cluster), or (null) the key deleted, conditional on `version`, with the
  // targets' invalidation in the same atomic step (the store's). false when a
  // newer version is cached.
  bool write(const std::string& k, const detail::Encoded* e, Tagged& tagged,
             const std::optional<std::string>& row_version, const ResolvedTargets* targets) {
    const auto ttl = e ? e->ttl : cache_.options().ttl.expiry(cache_.options().name, std::chrono::system_clock::now()).ttl;
    const std::string version_key = cache_.keys().write_version(k);
    // Unversioned puts bump the write version too: loads running meanwhile watch it.
    const VersionCheck check{version_key, row_version ? std::string_view(*row_version) : bump_version,
                             ttl + write_.version_margin, !e};
    if (targets) bump_tags(*targets);  // first, as the script's invalidation precedes the write
    StoreWrite& w = tagged.w;
    w.key = k;
    w.bytes = e ? std::string_view(e->bytes) : std::string_view{};
    w.ttl = ttl;
    access_.stamp_tags({&w, 1}, tagged.keep);  // a read of the tags' versions, once
    w.version_check = &check;
    w.invalidation = targets && !targets->script.empty() ? &targets->script : nullptr;
    w.replication = write_.replication;
    InvalidationResult invalidated;
    const WriteResult r = cache_.store().write(w, &invalidated);
    if (targets) targets->bumped(invalidated);
    return r == WriteResult::written;
  }

  // The fallback: the key deleted (a plain UNLINK: Redis refusing writes, OOM,
  // refuses scripts but not deletes), with the targets in one invalidation.
  void remove(const std::string& k, const ResolvedTargets* targets) {
    if (!targets) {
      cache_.store().del(k);
      return;
    }
    bump_tags(*targets);
    InvalidationTargets all = targets->script;
    all.keys.push_back(k);
    targets->bumped(cache_.store().invalidate(all));
  }

  // Versioned tags (Redis Cluster) are bumped apart from the script (TagVersions).
  void bump_tags(const ResolvedTargets& targets) {
    if (!targets.tags.empty()) TagVersions(cache_.store().redis(), cache_.keys()).invalidate(targets.tags);
  }

  WriteOutcome outcome(bool newer, WriteOutcome done) {
    if (!newer) return done;
    cache_.metrics().count(Event::stale_write_refused);
    return WriteOutcome::newer_cached;
  }

  // Runs `op` under the cache's breaker, keeping its error for the report.
  template <class Op>
  bool reach(std::exception_ptr& error, Op&& op) {
    return access_.guarded(
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

  WriteThroughOptions write_;
  Invalidation after_write_;
};

// Attaches write-through to `cache` (which must outlive the result):
//   auto products = cachet::write_through(products_cache, save, {.on_write = cachet::CacheUpdate::del});
template <class Cache, class W>
auto write_through(Cache& cache, W&& writer, WriteThroughOptions options = {}) {
  static_assert(detail::AttachableCache<Cache>,
                "cachet::write_through attaches to a CacheAside over Redis (RedisStore, or a TieredStore over it)");
  static_assert(Writer<std::decay_t<W>, typename Cache::value_type>,
                "cachet::write_through: the writer is called as writer(std::string_view id, const V& value) and "
                "returns void or an integer version");
  return WriteThrough<Cache, std::decay_t<W>>(cache, std::forward<W>(writer), std::move(options));
}

}  // namespace cachet
