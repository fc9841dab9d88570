#pragma once
// What a cluster-wide scan (RedisStore::unlink_matching) compares before and
// after a pass over every master: each master's own view of itself from
// CLUSTER NODES (its id, role, config epoch, slots, and the slots it is
// migrating or importing). A pass over an unchanged layout with no migration
// under way saw every key; otherwise a key may have moved from a master not
// yet scanned to one already scanned, and the pass is run again.

#include <cachet/redis/connection.hpp>
#include <cachet/redis/pool.hpp>

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet::detail {

// The "myself" line of CLUSTER NODES without its timestamps and link state:
// <id> <flags> <config-epoch> <slot>... ("[slot->-id]" while migrating).
inline std::string own_layout(std::string_view nodes) {
  std::istringstream lines{std::string(nodes)};
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string id, address, flags, master, ping, pong, epoch, link, slots;
    fields >> id >> address >> flags >> master >> ping >> pong >> epoch >> link;
    if (flags.find("myself") == std::string::npos) continue;
    std::getline(fields, slots);
    return id + ' ' + flags + ' ' + epoch + slots;
  }
  return {};
}

// Every master's own layout, in the pool's order of masters.
inline std::string cluster_layout(Pool& pool) {
  std::string layout;
  pool.for_each_master([&](Connection& c) {
    layout += own_layout(c.command({"CLUSTER", "NODES"}).as_string());
    layout += '\n';
  });
  return layout;
}

// Whether a slot was migrating or importing when `layout` was taken.
inline bool migrating(std::string_view layout) { return layout.find('[') != std::string_view::npos; }

// The most slots any master of `pool` says are assigned in the cluster
// (CLUSTER INFO's cluster_slots_assigned): less than 16384 when the operator
// left some unassigned.
inline int slots_assigned(Pool& pool) {
  int most = 0;
  pool.for_each_master([&](Connection& c) {
    const std::string info(c.command({"CLUSTER", "INFO"}).as_string());
    const auto at = info.find("cluster_slots_assigned:");
    if (at != std::string::npos)
      most = std::max(most, static_cast<int>(std::clamp(std::strtol(info.c_str() + at + 23, nullptr, 10), 0L, 16384L)));
  });
  return most;
}

// Whether every node of `layout` called itself a master and together they own
// `assigned` slots: else the pool's map is behind (a master it does not know,
// or one since demoted) and a pass over it may have missed keys. Ranges are
// merged, not walked slot by slot: a hostile answer may repeat "0-16383".
inline bool masters_own_assigned_slots(std::string_view layout, int assigned) {
  std::vector<std::pair<long, long>> ranges;
  std::istringstream lines{std::string(layout)};
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string id, flags, epoch;
    fields >> id >> flags >> epoch;
    if (flags.find("master") == std::string::npos) return false;
    for (std::string range; fields >> range;) {
      if (range.front() == '[') continue;  // a migration, not an owned slot
      const auto dash = range.find('-', 1);
      const long first = std::clamp(std::strtol(range.c_str(), nullptr, 10), 0L, 16383L);
      const long last = dash == std::string::npos ? first : std::clamp(std::strtol(range.c_str() + dash + 1, nullptr, 10), 0L, 16383L);
      if (first <= last) ranges.emplace_back(first, last);
    }
  }
  std::sort(ranges.begin(), ranges.end());
  long owned = 0, next = 0;  // slots counted, and the first not yet counted
  for (const auto& [first, last] : ranges) {
    owned += std::max(0L, last + 1 - std::max(first, next));
    next = std::max(next, last + 1);
  }
  return owned >= assigned;
}

}  // namespace cachet::detail
