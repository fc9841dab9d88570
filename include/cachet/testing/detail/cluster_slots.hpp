#pragma once
// RedisCluster's reading of CLUSTER SLOTS: the ranges by port, sorted, so that
// two nodes' answers compare equal when they agree on the map.

#include <cachet/redis/reply.hpp>

#include <algorithm>
#include <vector>

namespace cachet::detail {

struct SlotRange {
  int first = 0;
  int last = 0;
  int master = 0;             // its port
  std::vector<int> replicas;  // their ports, ascending
  bool operator==(const SlotRange&) const = default;
};

// A CLUSTER SLOTS reply's ranges, by first slot.
inline std::vector<SlotRange> parse_slot_ranges(const Reply& reply) {
  std::vector<SlotRange> ranges;
  for (std::size_t i = 0; i < reply.size(); ++i) {
    const auto r = reply[i];
    SlotRange range{static_cast<int>(r[0].as_integer()), static_cast<int>(r[1].as_integer()),
                    static_cast<int>(r[2][1].as_integer()), {}};
    for (std::size_t j = 3; j < r.size(); ++j) range.replicas.push_back(static_cast<int>(r[j][1].as_integer()));
    std::sort(range.replicas.begin(), range.replicas.end());
    ranges.push_back(std::move(range));
  }
  std::sort(ranges.begin(), ranges.end(), [](const SlotRange& a, const SlotRange& b) { return a.first < b.first; });
  return ranges;
}

// Whether `ranges` (by first slot) serve all 16384 slots.
inline bool covers_all_slots(const std::vector<SlotRange>& ranges) {
  int next = 0;
  for (const auto& r : ranges) {
    if (r.first != next) return false;
    next = r.last + 1;
  }
  return next == 16384;
}

}  // namespace cachet::detail
