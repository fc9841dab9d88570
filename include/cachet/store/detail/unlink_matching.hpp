#pragma once
// RedisStore::unlink_matching: every key matching a pattern, SCANned in batches
// and UNLINKed page by page (never KEYS). On a cluster every master is scanned
// and each key UNLINKed on its own; a pass during which the cluster's layout
// changed (a slot moved, a master failed over) or a slot was migrating is run
// again, as keys may have moved from a master not yet scanned to one already
// scanned; a pass whose masters are not all masters or do not own every
// assigned slot (CLUSTER INFO) waits for a refresh of the pool's map first,
// which was behind a failover.

#include <cachet/error.hpp>
#include <cachet/redis/pipeline.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/redirect.hpp>
#include <cachet/store/detail/cluster_layout.hpp>
#include <cachet/store/invalidation.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace cachet::detail {

class MatchingUnlinker {
 public:
  MatchingUnlinker(Pool& pool, const UnlinkMatchingOptions& options) : pool_(pool), options_(options) {}

  // How many of the matching keys existed.
  std::size_t run(std::string_view pattern) {
    if (!pool_.cluster()) {
      pass(pattern);
      return deleted_;
    }
    for (int n = 1;; ++n) {
      if (stable_pass(pattern, n == max_passes)) return deleted_;
      if (n == max_passes)
        throw Error("cachet: unlink_matching: the cluster's layout changed, or the pool's map of it was behind, "
                    "during each of " + std::to_string(max_passes) + " passes (what was deleted stays deleted)");
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50 << n, 1000)));
    }
  }

 private:
  static constexpr int max_passes = 10;

  // One pass over every master; false when it must run again: the layout
  // changed, a slot was migrating, or a master could not be reached (failing
  // over: the router asked for a refresh of its map; rethrown on the last
  // pass). Not even begun when the pool's masters are not all masters or do
  // not own every assigned slot: its map is behind, and is refreshed first.
  bool stable_pass(std::string_view pattern, bool last) {
    try {
      const std::string before = cluster_layout(pool_);
      if (!masters_own_assigned_slots(before, slots_assigned(pool_))) {
        pool_.await_cluster_map(std::chrono::seconds(5));
        return false;
      }
      pass(pattern);
      const std::string after = cluster_layout(pool_);
      return before == after && !migrating(after);
    } catch (const ConnectionError&) {
      if (last) throw;
      return false;
    }
  }

  // SCAN every master once, UNLINKing each page; keys redirected meanwhile are deleted through run().
  void pass(std::string_view pattern) {
    const long long count = static_cast<long long>(options_.batch == 0 ? 1 : options_.batch);
    std::vector<std::string> moved;  // keys whose slot left the node mid-scan
    pool_.for_each_master([&](Connection& c) {
      std::string cursor = "0";
      do {
        const Reply page = c.command({"SCAN", cursor, "MATCH", pattern, "COUNT", count});
        cursor = std::string(page[0].as_string());
        if (const ReplyView keys = page[1]; keys.size() != 0) {
          deleted_ += unlink_page(c, keys, moved);
          matched_ += keys.size();
        }
        if (options_.on_progress) options_.on_progress(matched_, deleted_);
      } while (cursor != "0");
    });
    for (const std::string& key : moved)
      deleted_ += pool_.run(key, [&](Connection& c) { return c.command({"UNLINK", key}).as_integer() == 1; }) ? 1 : 0;
  }

  // One SCAN page's keys, UNLINKed: at once on one server; on a cluster one
  // UNLINK per key (a page may span slots), a redirected one left in `moved`.
  std::size_t unlink_page(Connection& c, ReplyView keys, std::vector<std::string>& moved) {
    if (!pool_.cluster()) {
      std::vector<std::string_view> argv{"UNLINK"};
      argv.reserve(keys.size() + 1);
      for (ReplyView k : keys) argv.push_back(k.as_string());
      return static_cast<std::size_t>(c.command(argv).as_integer());
    }
    Pipeline p(c);
    for (ReplyView k : keys) p.add({"UNLINK", k.as_string()});
    std::size_t deleted = 0, i = 0;
    p.execute([&](Reply&& r) {
      const ReplyView key = keys[i++];
      if (redirected(r)) moved.emplace_back(key.as_string());
      else deleted += static_cast<std::size_t>(r.as_integer());
    });
    return deleted;
  }

  Pool& pool_;
  const UnlinkMatchingOptions& options_;
  std::size_t matched_ = 0, deleted_ = 0;
};

}  // namespace cachet::detail
