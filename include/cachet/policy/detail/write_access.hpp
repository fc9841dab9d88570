#pragma once
// The one door from a write policy (WriteThrough, WriteBehind and its flusher)
// into the CacheAside it attaches to, for what is not the cache's user API:
//
//   watch_writes()      switches on write-version watching (done by attaching); watching_writes() tells
//   encode(k, value)    a fresh entry of `value` for key `k` as a load would store it: bytes and Redis TTL
//   decode_value(k, bytes) the value in key `k`'s entry bytes (nullopt: negative), for the pending queue
//   guarded(op, rethrow) a Redis operation under the cache's circuit breaker
//   forgetting(keys)    over a TieredStore, evicts `keys` from L1 when the result goes
//   tags_of(w, v, k)    tags store writes as the cache tags its loaded values: the tags callback, no Redis
//   stamp_tags(w, k)    then, on Redis Cluster, stamps them with the tags' versions (a read)
//   read_epoch(e), send_current(w, e, k, n, c)  a bulk load's (warm's) tag epoch, its tagged writes refused if it moved
//   versioned_tags()    whether the cache's tags are version counters (Redis Cluster)

#include <cachet/policy/cache_aside.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet::detail {

template <class Cache>
class WriteAccess {
 public:
  using value_type = typename Cache::value_type;

  explicit WriteAccess(Cache& cache) noexcept : cache_(cache) {}

  // A load that read the old row may then not overwrite a write's newer value:
  // it notes the key's write version ({ns}:wv:{key}) first and its write is
  // refused if a write changed it. Costs a GET per load. Before sharing the cache.
  void watch_writes() const noexcept { cache_.watch_writes_.store(true, std::memory_order_relaxed); }
  bool watching_writes() const noexcept { return cache_.watch_writes_.load(std::memory_order_relaxed); }
  // Throws EncodeError.
  Encoded encode(std::string_view k, const value_type& value) const { return cache_.encode(k, value); }
  // Throws DecodeError.
  std::optional<value_type> decode_value(std::string_view k, std::string_view bytes) const {
    return cache_.decode_value(k, bytes);
  }
  // False when Redis was not reached (breaker open, or the call failed); errors
  // and skips are counted, and thrown only when `rethrow` is set.
  template <class Op>
  bool guarded(Op&& op, bool rethrow) const {
    return cache_.guarded(std::forward<Op>(op), rethrow);
  }
  // Around writes made past the store (Tags::set_tagged, write-behind's enqueue).
  auto forgetting(std::span<const std::string_view> keys) const { return cache_.forgetting(keys); }
  using TagBuffers = typename Cache::TagBuffers;
  // Into `keep`, which the writes view; nothing when the cache tags nothing.
  // tags_of calls the tags callback (throws what it throws): outside the circuit
  // breaker's call, so a throwing callback is no outage. Then once, under it,
  // stamp_tags (throws the Redis layer's errors: it reads the tags' versions).
  void tags_of(std::span<StoreWrite> writes, std::span<const value_type* const> values, TagBuffers& keep) const {
    cache_.tags_of(writes, values, keep);
  }
  void stamp_tags(std::span<StoreWrite> writes, TagBuffers& keep) const { cache_.stamp_tags(writes, nullptr, keep); }
  // For a bulk load (warm), as a CacheAside's load: the tag epoch read before it
  // (false: Redis not reached), and its writes stamped and sent as a get_many's,
  // the tagged ones dropped (`refused`) when it moved (on one server their
  // scripts refuse them: BatchWriteResult::stale_tags).
  using Epoch = typename Cache::Epoch;
  bool read_epoch(Epoch& epoch) const { return cache_.read_epoch(epoch); }
  BatchWriteResult send_current(std::span<StoreWrite> writes, const std::string* epoch, TagBuffers& keep,
                                std::size_t& refused) const {
    return cache_.send_current(writes, epoch, keep, refused);
  }
  bool versioned_tags() const noexcept { return cache_.versioned_tags_; }

 private:
  Cache& cache_;
};

}  // namespace cachet::detail
