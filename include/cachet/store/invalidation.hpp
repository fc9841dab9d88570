#pragma once
// What the store's maintenance operations beside writes take and return:
// pruning a tag set of members whose keys are gone (RedisStore::prune_tag_set)
// and deleting the keys that match a pattern (RedisStore::unlink_matching).
// Invalidation targets and their result are in write.hpp: a write carries them.

#include <cstddef>
#include <cstdint>
#include <functional>

namespace cachet {

struct PruneResult {
  std::size_t examined = 0;  // members looked at
  std::size_t removed = 0;   // members whose keys were gone
  std::uint64_t cursor = 0;  // SSCAN cursor to continue from; 0: the sweep is complete
  bool done() const noexcept { return cursor == 0; }
};

struct UnlinkMatchingOptions {
  std::size_t batch = 1000;  // SCAN COUNT: keys examined per call, the bound on each command's work
  // Called after each batch with the totals so far: keys matched, keys deleted.
  std::function<void(std::size_t matched, std::size_t deleted)> on_progress{};
};

}  // namespace cachet
