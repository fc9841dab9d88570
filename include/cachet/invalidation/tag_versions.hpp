#pragma once
// Tags on Redis Cluster (docs/cluster.md): a version counter per tag instead of
// a set of member keys, since a script cannot read a tag set and delete members
// that live on other nodes.
//
//   {ns}:tagv:{<tag>}  the tag's version: the tag is the hash tag, so counters spread over the nodes
//   {ns}:tagepoch      bumped first by every invalidation
//
// A tagged write reads its tags' versions (stamps()) and stores them in the
// entry (envelope::stamp), each tag in its key form (KeyBuilder::safe_id: long
// tags hashed); a read compares them with the counters (matches()) and treats
// any difference as a miss; an invalidation bumps the epoch, then each tag's
// counter (invalidate()). A load whose tags come from the loaded value reads
// the epoch before calling the loader and again after stamps(): if it moved,
// an invalidation (of any tag of the namespace) ran during the load and the
// value is not stored (its stamps may postdate an invalidation the loaded data
// predates). No clock is involved anywhere.
//
// A missing counter or epoch is created at a random start, never at 0 or 1:
// by a read (a script: GET, else SET) and by a bump (a script: SET if missing,
// then INCR), so one evicted and recreated does not come back to a version an
// old entry was stamped with; a read that finds a counter missing treats the
// entry as stale. Every command goes through a RedisStore.

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

// Views of `keys`, for the stores' batch calls.
inline std::vector<std::string_view> key_views(std::span<const std::string> keys) {
  return std::vector<std::string_view>(keys.begin(), keys.end());
}

class TagVersions {
 public:
  // The store's pool and `keys` must outlive this object.
  TagVersions(RedisStore store, const KeyBuilder& keys) : store_(store), keys_(&keys) {}

  // The current version of each tag (created where missing, in a second round
  // trip), one pipeline per node. Stamps name tags by their key form.
  std::vector<TagStamp> stamps(std::span<const std::string> tags) {
    std::vector<std::string> safe, keys;
    for (const std::string& t : tags) {
      safe.push_back(keys_->safe_id(t));
      keys.push_back(keys_->tag_version_of_safe(safe.back()));
    }
    const std::vector<std::optional<std::string>> now = store_.get_many(key_views(keys));
    std::vector<std::string_view> missing;
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (!now[i] || !parse(*now[i])) missing.push_back(keys[i]);
    std::vector<std::string> created;  // in `missing` order
    if (!missing.empty()) created = store_.get_or_start(missing, detail::random_counter_start());
    std::vector<TagStamp> out;
    out.reserve(tags.size());
    for (std::size_t i = 0, m = 0; i < tags.size(); ++i) {
      const std::string_view v = now[i] && parse(*now[i]) ? std::string_view(*now[i]) : created[m++];
      out.push_back({std::move(safe[i]), parse(v).value_or(0)});
    }
    return out;
  }

  // Whether each stamp still equals its tag's counter (a missing or unreadable
  // counter does not), one pipeline per node. Throws the Redis layer's errors.
  std::vector<bool> matches(std::span<const TagStamp> stamps) {
    std::vector<std::string> keys;
    keys.reserve(stamps.size());
    for (const TagStamp& s : stamps) keys.push_back(keys_->tag_version_of_safe(s.tag));
    const std::vector<std::optional<std::string>> now = store_.get_many(key_views(keys));
    std::vector<bool> out(stamps.size());
    for (std::size_t i = 0; i < stamps.size(); ++i) out[i] = now[i] && parse(*now[i]) == stamps[i].version;
    return out;
  }

  // The invalidation epoch ("" before the first invalidation).
  std::string epoch() { return store_.get(keys_->tag_epoch()).value_or(""); }
  // The epoch first, then every tag's counter: a load that saw the old epoch
  // after reading its stamps read them before these bumps. No tags: nothing.
  void invalidate(std::span<const std::string> tags) {
    if (tags.empty()) return;
    const std::string start = detail::random_counter_start();
    const std::string epoch_key = keys_->tag_epoch();
    const std::string_view epoch = epoch_key;
    store_.incr_each_from({&epoch, 1}, start);
    std::vector<std::string> keys;
    keys.reserve(tags.size());
    for (const std::string& t : tags) keys.push_back(keys_->tag_version(t));
    store_.incr_each_from(key_views(keys), start);
  }

 private:
  static std::optional<std::uint64_t> parse(std::string_view s) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
  }

  RedisStore store_;
  const KeyBuilder* keys_;
};

}  // namespace cachet
