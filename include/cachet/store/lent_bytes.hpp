#pragma once
// Bytes a store read, lent from the reply that holds them instead of copied
// out: a hit then costs no allocation and no copy of its value's bytes before
// it is decoded. The views are valid while the LentBytes lives.

#include <cachet/redis/reply.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

// One value (a GET's reply) or many (an MGET's, or on Redis Cluster one GET's per key).
class LentBytes {
 public:
  LentBytes() = default;
  explicit LentBytes(Reply reply) noexcept : reply_(std::move(reply)) {}
  // (An error among `each`, RedisStore's WRONGTYPE on a cluster, reads as a miss.)
  explicit LentBytes(std::vector<Reply> each) noexcept : each_(std::move(each)) {}

  // The one value; nullopt when the key does not exist.
  std::optional<std::string_view> value() const { return reply_ ? reply_->as_optional_string() : std::nullopt; }
  // The values of a batch, in key order.
  std::size_t size() const { return reply_ ? reply_->size() : each_.size(); }
  std::optional<std::string_view> operator[](std::size_t i) const {
    if (reply_) return (*reply_)[i].as_optional_string();
    return each_[i].is_error() ? std::nullopt : each_[i].as_optional_string();  // WRONGTYPE: a miss, as in MGET
  }

 private:
  std::optional<Reply> reply_;  // nullopt: nothing read, or the values are in each_
  std::vector<Reply> each_;     // one reply per value (a batch over several nodes)
};

// A store that lends what it reads (RedisStore): get, get_and_touch and
// get_many without copying the values out.
template <class S>
concept LendingStore = requires(S& s, std::string_view key, std::span<const std::string_view> keys,
                                std::chrono::milliseconds ttl) {
  { s.get_lent(key) } -> std::same_as<LentBytes>;
  { s.get_and_touch_lent(key, ttl) } -> std::same_as<LentBytes>;
  { s.get_many_lent(keys) } -> std::same_as<LentBytes>;
};

}  // namespace cachet
