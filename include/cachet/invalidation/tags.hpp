#pragma once
// Tags: invalidate every value of a group (a category, a user, a page) at once.
//
//   cachet::Tags tags(pool, cachet::KeyBuilder("shop"));
//   tags.set_tagged(key, bytes, 10min, {"category:9", "brand:4"});
//   tags.invalidate({"category:9"});          // every value tagged category:9 is gone
//
// A tag is a Redis set `{ns}:tag:{tag}` of full value keys. Writing a tagged value
// (SET ... PX + SADD to each tag set) and invalidating tags (read the sets, UNLINK
// their members and the sets) are each ONE Lua script, so they are atomic with
// respect to each other: a value tagged while its tag is invalidated is either
// deleted by that invalidation or tagged after it (and then in the new set, where
// the next invalidation finds it). The articles' SMEMBERS-then-DEL lets a value
// tagged in between survive every later invalidation of its tag. A load that
// read its data before an invalidation and writes after it is refused instead:
// the invalidation also bumps the namespace's tag epoch `{ns}:tagepoch`, which
// the load read before calling its loader and its write script checks.
//
// Tag sets stay bounded: each write checks a few random members of each tag set
// (`prune_sample`) and removes those whose keys are gone (expired or deleted), so
// in steady state a set holds about live * N / (N - 1) members for a sample of N;
// `prune(tag, budget)` sweeps a set with SSCAN for the rest. A tag set's TTL is
// raised to the TTL of each value written into it (never lowered), so it lives at
// least as long as its longest-lived member, and disappears after it.
//
// Redis Cluster: a script's keys must share one slot. With HashTag::ns a
// namespace's values and tag sets do (KeyBuilder), and everything above holds
// as on one server. Without it (versioned(): the namespace spread over the
// nodes) tags are version counters instead (invalidation/tag_versions.hpp):
// invalidate() bumps them and returns 0, and set_tagged(_many), whose bytes
// cannot carry the tags' versions, is refused (ConfigError); CacheAside::set with
// tags and tag_loaded_values stamp their entries (docs/cluster.md).
//
// Every command goes through a RedisStore (Tags sends none itself).
//
// Write tagged keys only through set_tagged: a value rewritten by a plain SET
// (or renewed by sliding expiry) with a longer TTL can outlive its tag sets, and
// with them its invalidation.

#include <cachet/invalidation/tag_versions.hpp>
#include <cachet/keys.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/store/concepts.hpp>
#include <cachet/store/invalidation.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/store/write.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

// A list of tags: std::vector<std::string>, std::span<const std::string_view>, ...
template <class R>
concept TagList = std::ranges::input_range<R> && std::convertible_to<std::ranges::range_reference_t<R>, std::string_view>;

struct TagOptions {
  std::size_t prune_sample = 3;  // members of each tag set checked (and removed if gone) per write; 0: none
};

// One tagged write of a batch; views what the caller owns.
struct TaggedEntry {
  std::string_view key;
  std::string_view value;
  std::chrono::milliseconds ttl;  // > 0
  std::vector<std::string> tags;
};

class Tags {
 public:
  // The store's pool must outlive this object. Over a TieredStore, pass its l2()
  // and reconcile() it after an invalidation (CacheAside::invalidate_tags does).
  Tags(RedisStore store, KeyBuilder keys, TagOptions options = {})
      : store_(store), keys_(std::move(keys)), options_(options) {}
  // The pool must outlive this object.
  Tags(Pool& pool, KeyBuilder keys, TagOptions options = {}) : Tags(RedisStore(pool), std::move(keys), options) {}

  // SET key value PX ttl and add `key` to each tag's set, in one atomic script.
  template <TagList R>
  void set_tagged(std::string_view key, std::string_view value, std::chrono::milliseconds ttl, const R& tags) {
    refuse_if_versioned();
    const auto tag_keys = tag_set_keys(tags);
    store_.set_tagged(key, value, ttl, tag_keys, options_.prune_sample);
  }
  void set_tagged(std::string_view key, std::string_view value, std::chrono::milliseconds ttl,
                  std::initializer_list<std::string_view> tags) {
    set_tagged(key, value, ttl, std::span<const std::string_view>(tags.begin(), tags.size()));
  }

  // set_tagged for each entry, pipelined: one round trip for the batch. Each entry
  // is its own atomic script. Refusals (OOM) are thrown as BatchWriteError after
  // every reply is read, so the connection stays usable.
  void set_tagged_many(std::span<const TaggedEntry> entries) {
    refuse_if_versioned();
    if (entries.empty()) return;
    std::vector<std::vector<std::string>> tag_keys;  // per entry: the writes view them
    std::vector<StoreWrite> writes;
    tag_keys.reserve(entries.size());
    writes.reserve(entries.size());
    for (const TaggedEntry& e : entries) {
      tag_keys.push_back(tag_set_keys(e.tags));
      writes.push_back({e.key, e.value, e.ttl, tag_keys.back(), options_.prune_sample});
    }
    store_.set_tagged_many(writes);
  }

  // Deletes every value tagged with any of `tags`, and the tag sets, and bumps
  // the namespace's tag epoch ({ns}:tagepoch: a tagged load's write checks it),
  // in one atomic script. Returns how many values existed. Throws on Redis errors. When
  // versioned(): bumps the tags' counters instead, so every entry stamped
  // before is stale for its readers, and returns 0 (nothing is counted).
  template <TagList R>
  std::size_t invalidate(const R& tags) {
    if (versioned()) {
      TagVersions(store_, keys_).invalidate(tag_names(tags));
      return 0;
    }
    InvalidationTargets targets;
    targets.tag_sets = tag_set_keys(tags);
    if (!targets.tag_sets.empty()) targets.tag_epoch = keys_.tag_epoch();  // refuses loads running meanwhile
    return store_.invalidate(targets).deleted;
  }
  std::size_t invalidate(std::initializer_list<std::string_view> tags) {
    return invalidate(std::span<const std::string_view>(tags.begin(), tags.size()));
  }

  // Removes members of `tag`'s set whose keys are gone, looking at about `budget`
  // members from `cursor` (SSCAN). Continue with the returned cursor until done().
  PruneResult prune(std::string_view tag, std::size_t budget = 1000, std::uint64_t cursor = 0) {
    return store_.prune_tag_set(keys_.tag(tag), budget, cursor);
  }

  std::string tag_key(std::string_view tag) const { return keys_.tag(tag); }
  // The full keys of the tags' sets ({ns}:tag:{tag}).
  template <TagList R>
  std::vector<std::string> tag_set_keys(const R& tags) const {
    std::vector<std::string> out;
    for (auto&& tag : tags) out.push_back(keys_.tag(std::string_view(tag)));
    return out;
  }
  // Tags are version counters (Redis Cluster, keys not under HashTag::ns).
  bool versioned() const noexcept { return tags_versioned(pool(), keys_); }
  // Raw bytes cannot carry the tags' versions: only a cache stamps its entries.
  void refuse_if_versioned() const {
    if (versioned())
      throw ConfigError("cachet: Tags::set_tagged on Redis Cluster without HashTag::ns: tags are version counters, "
                        "which CacheAside::set with tags stamps in its entries (docs/cluster.md)");
  }
  const TagOptions& options() const noexcept { return options_; }
  const KeyBuilder& keys() const noexcept { return keys_; }
  RedisStore& store() noexcept { return store_; }
  Pool& pool() const noexcept { return store_.pool(); }

 private:
  RedisStore store_;
  KeyBuilder keys_;
  TagOptions options_;
};

}  // namespace cachet
