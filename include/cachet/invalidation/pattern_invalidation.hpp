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

#include <cachet/redis/pool.hpp>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace cachet {

struct PatternInvalidationOptions {
  std::size_t batch = 1000;  // SCAN COUNT: keys examined per call, the bound on each command's work
  // Called after each batch with the totals so far: keys matched, keys deleted.
  std::function<void(std::size_t matched, std::size_t deleted)> on_progress{};
};

// Deletes every key matching `pattern`; returns how many existed. Throws on Redis
// errors (what was deleted before the error stays deleted).
inline std::size_t invalidate_matching(Pool& pool, std::string_view pattern, const PatternInvalidationOptions& options = {}) {
  const long long count = static_cast<long long>(options.batch == 0 ? 1 : options.batch);
  std::size_t matched = 0, deleted = 0;
  std::string cursor = "0";
  auto lease = pool.acquire();
  do {
    const Reply page = lease->command({"SCAN", cursor, "MATCH", pattern, "COUNT", count});
    cursor = std::string(page[0].as_string());
    const ReplyView keys = page[1];
    if (keys.size() != 0) {
      std::vector<std::string_view> argv{"UNLINK"};
      argv.reserve(keys.size() + 1);
      for (ReplyView k : keys) argv.push_back(k.as_string());
      deleted += static_cast<std::size_t>(lease->command(argv).as_integer());
      matched += keys.size();
    }
    if (options.on_progress) options.on_progress(matched, deleted);
  } while (cursor != "0");
  return deleted;
}

}  // namespace cachet
