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
// tagged in between survive every later invalidation of its tag.
//
// Tag sets stay bounded: each write checks a few random members of each tag set
// (`prune_sample`) and removes those whose keys are gone (expired or deleted), so
// in steady state a set holds about live * N / (N - 1) members for a sample of N;
// `prune(tag, budget)` sweeps a set with SSCAN for the rest. A tag set's TTL is
// raised to the TTL of each value written into it (never lowered), so it lives at
// least as long as its longest-lived member, and disappears after it.
//
// Redis Cluster: a script's keys must share one slot. Use HashTag::ns so a
// namespace's values and tag sets do (KeyBuilder). Value keys and tag sets are
// passed in KEYS; only the members that pruning and invalidation read out of a
// set are not (the script learns them from the set), which works because they
// live in the set's slot.
//
// Write tagged keys only through set_tagged: a value rewritten by a plain SET
// (or renewed by sliding expiry) with a longer TTL can outlive its tag sets, and
// with them its invalidation.

#include <cachet/store/detail/invalidation_script.hpp>
#include <cachet/store/detail/value_write.hpp>
#include <cachet/keys.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/script.hpp>
#include <cachet/store/concepts.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <ranges>
#include <span>
#include <stdexcept>
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

struct PruneResult {
  std::size_t examined = 0;  // members looked at
  std::size_t removed = 0;   // members whose keys were gone
  std::uint64_t cursor = 0;  // SSCAN cursor to continue from; 0: the sweep is complete
  bool done() const noexcept { return cursor == 0; }
};

class Tags {
 public:
  // The pool must outlive this object.
  Tags(Pool& pool, KeyBuilder keys, TagOptions options = {})
      : pool_(&pool), keys_(std::move(keys)), options_(options) {}

  // SET key value PX ttl and add `key` to each tag's set, in one atomic script.
  template <TagList R>
  void set_tagged(std::string_view key, std::string_view value, std::chrono::milliseconds ttl, const R& tags) {
    const auto tag_keys = tag_set_keys(tags);
    auto lease = pool_->acquire();
    run_set_tagged(*lease, key, value, ttl, tag_keys);
  }
  void set_tagged(std::string_view key, std::string_view value, std::chrono::milliseconds ttl,
                  std::initializer_list<std::string_view> tags) {
    set_tagged(key, value, ttl, std::span<const std::string_view>(tags.begin(), tags.size()));
  }

  // set_tagged for each entry, pipelined: one round trip for the batch. Each entry
  // is its own atomic script. Refusals (OOM) are thrown as BatchWriteError after
  // every reply is read, so the connection stays usable.
  void set_tagged_many(std::span<const TaggedEntry> entries) {
    if (entries.empty()) return;
    std::vector<std::vector<std::string>> tag_keys;  // per entry: the writes view them
    std::vector<StoreWrite> writes;
    tag_keys.reserve(entries.size());
    writes.reserve(entries.size());
    for (const TaggedEntry& e : entries) {
      tag_keys.push_back(tag_set_keys(e.tags));
      writes.push_back(write_of(e.key, e.value, e.ttl, tag_keys.back()));
    }
    auto lease = pool_->acquire();
    const BatchWriteResult r = detail::run_value_writes(*lease, writes);
    if (r.failed != 0) throw BatchWriteError(r.first_error, r.failed, entries.size());
  }

  // Deletes every value tagged with any of `tags`, and the tag sets, in one atomic
  // script. Returns how many values existed. Throws on Redis errors.
  template <TagList R>
  std::size_t invalidate(const R& tags) {
    InvalidationTargets targets;
    targets.tag_sets = tag_set_keys(tags);
    auto lease = pool_->acquire();
    return detail::run_invalidation(*lease, targets).deleted;
  }
  std::size_t invalidate(std::initializer_list<std::string_view> tags) {
    return invalidate(std::span<const std::string_view>(tags.begin(), tags.size()));
  }

  // Removes members of `tag`'s set whose keys are gone, looking at about `budget`
  // members from `cursor` (SSCAN). Continue with the returned cursor until done().
  PruneResult prune(std::string_view tag, std::size_t budget = 1000, std::uint64_t cursor = 0) {
    const std::string set = keys_.tag(tag);
    budget = std::max<std::size_t>(budget, 1);
    PruneResult result;
    result.cursor = cursor;
    auto lease = pool_->acquire();
    do {
      const std::size_t count = std::min<std::size_t>(budget - result.examined, 1000);
      const Reply page = lease->command({"SSCAN", set, std::to_string(result.cursor), "COUNT", count});
      result.cursor = std::stoull(std::string(page[0].as_string()));
      std::vector<std::string_view> keys{set};
      for (ReplyView member : page[1]) keys.push_back(member.as_string());
      result.examined += keys.size() - 1;
      if (keys.size() > 1)
        result.removed += static_cast<std::size_t>(prune_script().run(*lease, keys, std::span<std::string_view>{}).as_integer());
    } while (result.cursor != 0 && result.examined < budget);
    return result;
  }

  std::string tag_key(std::string_view tag) const { return keys_.tag(tag); }
  // The full keys of the tags' sets ({ns}:tag:{tag}).
  template <TagList R>
  std::vector<std::string> tag_set_keys(const R& tags) const {
    std::vector<std::string> out;
    for (auto&& tag : tags) out.push_back(keys_.tag(std::string_view(tag)));
    return out;
  }
  const TagOptions& options() const noexcept { return options_; }
  const KeyBuilder& keys() const noexcept { return keys_; }
  Pool& pool() const noexcept { return *pool_; }

 private:
  StoreWrite write_of(std::string_view key, std::string_view value, std::chrono::milliseconds ttl,
                              const std::vector<std::string>& tag_keys) const {
    return {key, value, ttl, tag_keys, options_.prune_sample};
  }

  void run_set_tagged(Connection& conn, std::string_view key, std::string_view value, std::chrono::milliseconds ttl,
                      const std::vector<std::string>& tag_keys) const {
    detail::ValueWriteCall(write_of(key, value, ttl, tag_keys)).run(conn);
  }

  static const Script& prune_script() {
    // KEYS[1] a tag set, KEYS[2..] members to check: checked and removed in one step,
    // so a member re-tagged between the SSCAN and this script is never dropped.
    static const Script script(R"lua(
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then removed = removed + redis.call('SREM', KEYS[1], KEYS[i]) end
end
return removed
)lua");
    return script;
  }

  Pool* pool_;
  KeyBuilder keys_;
  TagOptions options_;
};

}  // namespace cachet
