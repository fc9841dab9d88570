#pragma once
// The check every multi-key script and MULTI/EXEC makes on Redis Cluster before
// sending: one command runs on one node, so all its keys must hash to one slot.

#include <cachet/detail/hash_slot.hpp>
#include <cachet/error.hpp>

#include <iterator>
#include <string>
#include <string_view>

namespace cachet::detail {

// Throws CrossSlotError, naming the first key and the first in another slot, when
// `keys` (a range of things that view as std::string_view) span slots. `what`
// names the operation; `how` says how to co-locate them, e.g. "give them one
// LimitOf::tag"; empty: the generic advice (a shared hash tag).
template <class Keys>
void require_one_slot(const Keys& keys, std::string_view what, std::string_view how = {}) {
  const auto first = std::begin(keys);
  if (first == std::end(keys)) return;
  const std::string_view a = *first;
  for (auto it = first; it != std::end(keys); ++it) {
    const std::string_view b = *it;
    if (hash_slot(b) == hash_slot(a)) continue;
    throw CrossSlotError(std::string(what) + ": keys '" + std::string(a) + "' (slot " + std::to_string(hash_slot(a)) +
                         ") and '" + std::string(b) + "' (slot " + std::to_string(hash_slot(b)) +
                         ") are in different Redis Cluster slots, and one command runs on one node; " +
                         (how.empty() ? std::string("co-locate them with a shared hash tag (the same {...} part in "
                                                    "every key), or make separate calls")
                                      : std::string(how)));
  }
}

// require_one_slot when `pool` (a cachet::Pool) spreads keys over a cluster; on
// one server every key is on the one node, and multi-key steps that span slots
// (a tag set and its members) keep working.
template <class Pool, class Keys>
void require_one_slot_on_cluster(const Pool& pool, const Keys& keys, std::string_view what) {
  if (pool.cluster()) require_one_slot(keys, what);
}

}  // namespace cachet::detail
