#pragma once
// What a cluster-wide scan (RedisStore::unlink_matching) compares before and
// after a pass over every master: each master's own view of itself from
// CLUSTER NODES (its id, role, config epoch, slots, and the slots it is
// migrating or importing). A pass over an unchanged layout with no migration
// under way saw every key; otherwise a key may have moved from a master not
// yet scanned to one already scanned, and the pass is run again.

#include <cachet/redis/connection.hpp>
#include <cachet/redis/pool.hpp>

#include <sstream>
#include <string>
#include <string_view>

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

}  // namespace cachet::detail
