#pragma once
// Error replies that mean the server cannot decide now, not that the call is
// wrong: the limiters treat them as Redis down and apply their policy.

#include <cachet/redis/errors.hpp>

#include <algorithm>
#include <iterator>
#include <string_view>

namespace cachet::detail {

// A replica after a failover (READONLY), a server loading its data (LOADING), a
// replica without its master (MASTERDOWN), a long script running (BUSY), a cluster
// down or resharding (CLUSTERDOWN, TRYAGAIN). Others (WRONGTYPE, a script's bug) are bugs.
inline bool means_unavailable(const ReplyError& e) noexcept {
  static constexpr std::string_view codes[] = {"READONLY", "LOADING", "MASTERDOWN", "BUSY", "CLUSTERDOWN", "TRYAGAIN"};
  return std::find(std::begin(codes), std::end(codes), e.code()) != std::end(codes);
}

}  // namespace cachet::detail
