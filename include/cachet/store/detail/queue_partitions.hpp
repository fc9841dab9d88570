#pragma once
// The partitions of a write-behind queue (RedisWriteQueue, RedisCounterQueue).
// A stream is one key, so one slot and one node of a Redis Cluster: a queue is
// split over `n` partitions whose number is inside the hash tag, so they land
// on different nodes. An id always goes to the same partition (its CRC16, the
// same in every process), so one key's writes stay in order.
//
//   n == 1                  base                (the single-server layout)
//   n > 1                   {base:p<i>}         (each partition its own slot)
//   n > 1, base has a tag   base:p<i>           (HashTag::ns: all in the namespace's slot)
//
// A partition's other keys are its key + ":pending", ":dead", ... (one slot).
// Every process must use the same `n`: changing it strands what the old
// partitions hold until a flusher with the old count drains them.

#include <cachet/detail/hash_slot.hpp>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cachet::detail {

inline constexpr std::size_t cluster_queue_partitions = 16;  // the default on a cluster
inline constexpr std::size_t max_queue_partitions = 1024;

// The partition count: `asked`, or when 0 the default: 1 on one server, 16 on
// a cluster, but 1 there too when `base` carries a hash tag already (HashTag::ns:
// the layout it ran with on a cluster before partitions, whose queued writes
// the flushers must still find after an upgrade).
template <class Pool>
std::size_t queue_partitions(std::size_t asked, const Pool& pool, std::string_view base) {
  if (asked > max_queue_partitions)
    throw std::invalid_argument("cachet: a write-behind queue has at most " + std::to_string(max_queue_partitions) +
                                " partitions");
  if (asked > 0) return asked;
  return pool.cluster() && hash_tag(base) == base ? cluster_queue_partitions : 1;
}

// The key of partition `i` of `n` over `base` (see the layout above).
inline std::string partition_key(std::string_view base, std::size_t i, std::size_t n) {
  if (n <= 1) return std::string(base);
  const std::string suffix = ":p" + std::to_string(i);
  if (hash_tag(base) != base) return std::string(base) + suffix;  // already tagged: keep its slot
  return "{" + std::string(base) + suffix + "}";
}

// The partition of `id`: stable across processes and restarts (no per-process secret).
inline std::size_t partition_of(std::string_view id, std::size_t n) noexcept {
  return n <= 1 ? 0 : crc16(id) % n;
}

}  // namespace cachet::detail
