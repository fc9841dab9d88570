#pragma once
// Tags on Redis Cluster (docs/cluster.md): a version counter per tag instead of
// a set of member keys, since a script cannot read a tag set and delete members
// that live on other nodes.
//
//   {ns}:tagv:{<tag>}  the tag's version: the tag is the hash tag, so counters spread over the nodes
//   {ns}:tagepoch      bumped first by every invalidation
//
// A tagged write reads its tags' versions (stamps()) and stores them in the
// entry (envelope::stamp); a read compares them with the counters (current())
// and treats any difference as a miss; an invalidation INCRs the epoch, then
// each tag's counter (invalidate()). A load whose tags come from the loaded
// value reads the epoch before calling the loader and again after stamps():
// if it moved, an invalidation ran during the load and the value is not stored
// (its stamps may postdate an invalidation the loaded data predates). No clock
// is involved anywhere.
//
// A missing counter is created at a random start (SET NX GET), never at 0, so a
// counter evicted and recreated does not revive entries stamped before; a read
// that finds a counter missing treats the entry as stale. Every command goes
// through a RedisStore.

#include <cachet/codec/envelope.hpp>
#include <cachet/detail/random_hex.hpp>
#include <cachet/keys.hpp>
#include <cachet/store/redis_store.hpp>

#include <charconv>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

// Whether tags are version counters: on Redis Cluster, unless HashTag::ns puts
// a namespace's values and tag sets in one slot (the one-server scripts then work).
inline bool tags_versioned(const Pool& pool, const KeyBuilder& keys) noexcept {
  return pool.cluster() && keys.options().hash_tag != HashTag::ns;
}

// A list of tags (anything whose elements convert to std::string_view) as strings.
template <class R>
std::vector<std::string> tag_names(const R& tags) {
  std::vector<std::string> names;
  for (auto&& tag : tags) names.emplace_back(std::string_view(tag));
  return names;
}

class TagVersions {
 public:
  // The store's pool and `keys` must outlive this object.
  TagVersions(RedisStore store, const KeyBuilder& keys) : store_(store), keys_(&keys) {}

  // The current version of each tag (created where missing), one pipeline per node.
  std::vector<TagStamp> stamps(std::span<const std::string> tags) {
    const std::vector<std::string> keys = counter_keys(tags);
    const std::vector<std::string> got = store_.get_or_start(views(keys), random_start());
    std::vector<TagStamp> out;
    out.reserve(tags.size());
    for (std::size_t i = 0; i < tags.size(); ++i) out.push_back({tags[i], parse(got[i]).value_or(0)});
    return out;
  }

  // Whether each stamp still equals its tag's counter (a missing or unreadable
  // counter does not), one pipeline per node. Throws the Redis layer's errors.
  std::vector<bool> matches(std::span<const TagStamp> stamps) {
    std::vector<std::string> keys;
    keys.reserve(stamps.size());
    for (const TagStamp& s : stamps) keys.push_back(keys_->tag_version(s.tag));
    const std::vector<std::optional<std::string>> now = store_.get_many(views(keys));
    std::vector<bool> out(stamps.size());
    for (std::size_t i = 0; i < stamps.size(); ++i) out[i] = now[i] && parse(*now[i]) == stamps[i].version;
    return out;
  }

  // The invalidation epoch ("" before the first invalidation).
  std::string epoch() { return store_.get(keys_->tag_epoch()).value_or(""); }

  // The epoch first, then every tag's counter: a load that saw the old epoch
  // after reading its stamps read them before these INCRs.
  void invalidate(std::span<const std::string> tags) {
    store_.incr(keys_->tag_epoch());
    const std::vector<std::string> keys = counter_keys(tags);
    store_.incr_each(views(keys));
  }

 private:
  std::vector<std::string> counter_keys(std::span<const std::string> tags) const {
    std::vector<std::string> keys;
    keys.reserve(tags.size());
    for (const std::string& t : tags) keys.push_back(keys_->tag_version(t));
    return keys;
  }
  static std::vector<std::string_view> views(const std::vector<std::string>& keys) {
    return {keys.begin(), keys.end()};
  }
  static std::optional<std::uint64_t> parse(std::string_view s) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
  }
  // 1 .. 2^48: far below INCR's limit, and unlikely to meet an old stamp.
  static std::string random_start() {
    return std::to_string(std::stoull(detail::random_bytes_hex(6), nullptr, 16) + 1);
  }

  RedisStore store_;
  const KeyBuilder* keys_;
};

}  // namespace cachet
