#pragma once
// Pattern invalidation, for key spaces that were neither versioned nor tagged:
// SCAN MATCH in batches and UNLINK what each batch found — never KEYS, which is
// O(N) in one command and blocks every other client meanwhile.
//
//   cachet::invalidate_matching(pool, keys.pattern("product"), {
//       .batch = 1000,
//       .on_progress = [](std::size_t matched, std::size_t deleted) { log(matched, deleted); }});
//
// Each SCAN and each UNLINK is its own short command, so other clients are served
// between them; UNLINK frees large values in a background thread. Keys created
// after the scan started may or may not be removed (SCAN's guarantee covers keys
// present for the whole scan); for an atomic cut-off use a versioned namespace.
// Build patterns with KeyBuilder::pattern, which escapes glob metacharacters.
// The SCAN loop is the store's (RedisStore::unlink_matching). Over a
// TieredStore, call its unlink_matching: its first tier is then reconciled too.

#include <cachet/redis/pool.hpp>
#include <cachet/store/invalidation.hpp>
#include <cachet/store/redis_store.hpp>

#include <cstddef>
#include <string_view>

namespace cachet {

// batch (SCAN COUNT, the bound on each command's work) and on_progress(matched, deleted).
using PatternInvalidationOptions = UnlinkMatchingOptions;

// Deletes every key matching `pattern`; returns how many existed. Throws on Redis
// errors (what was deleted before the error stays deleted).
inline std::size_t invalidate_matching(RedisStore store, std::string_view pattern,
                                       const PatternInvalidationOptions& options = {}) {
  return store.unlink_matching(pattern, options);
}
inline std::size_t invalidate_matching(Pool& pool, std::string_view pattern, const PatternInvalidationOptions& options = {}) {
  return invalidate_matching(RedisStore(pool), pattern, options);
}

}  // namespace cachet
