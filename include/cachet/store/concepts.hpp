#pragma once
// What a store is: bytes under string keys, with a TTL. RedisStore, MemoryStore
// and TieredStore implement it; the policies are written against it alone.
//
// Batches are one call so that a remote store can make them one round trip.
// Failures of a remote store throw (ConnectionError, TimeoutError, ReplyError);
// the policies decide what a failure means for the caller.

#include <cachet/redis/errors.hpp>
#include <cachet/store/write.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cachet {

// A set_many of which some writes were refused (the others went through): a
// server refusal such as OOM, so a ReplyError.
class BatchWriteError : public ReplyError {
 public:
  BatchWriteError(const std::string& first_error, std::size_t failed, std::size_t total)
      : ReplyError(first_error), failed_(failed), total_(total) {}
  std::size_t failed() const noexcept { return failed_; }
  std::size_t total() const noexcept { return total_; }

 private:
  std::size_t failed_, total_;
};

// One entry of a set_many batch; views what the caller owns.
struct StoreEntry {
  std::string_view key;
  std::string_view value;
  std::chrono::milliseconds ttl;  // > 0
};

template <class S>
concept Store = requires(S& s, std::string_view key, std::string_view value, std::chrono::milliseconds ttl,
                         std::span<const std::string_view> keys, std::span<const StoreEntry> entries) {
  { s.get(key) } -> std::same_as<std::optional<std::string>>;
  { s.set(key, value, ttl) } -> std::same_as<void>;
  { s.del(key) } -> std::same_as<bool>;                     // true if the key existed
  { s.get_many(keys) } -> std::same_as<std::vector<std::optional<std::string>>>;  // in key order
  { s.set_many(entries) } -> std::same_as<void>;
  { s.del_many(keys) } -> std::same_as<std::size_t>;        // how many existed
};

// Optional: read and renew the TTL at once, for sliding expiry.
template <class S>
concept TouchingStore = Store<S> && requires(S& s, std::string_view key, std::chrono::milliseconds ttl,
                                             std::span<const std::string_view> keys) {
  { s.get_and_touch(key, ttl) } -> std::same_as<std::optional<std::string>>;
  { s.get_many_and_touch(keys, ttl) } -> std::same_as<std::vector<std::optional<std::string>>>;
};

// A value and how much longer the store keeps it.
struct StoredValue {
  std::string bytes;
  std::optional<std::chrono::milliseconds> ttl;  // nullopt: no expiry
};

// Optional: values with their remaining TTL, so that a first tier in front of
// the store never keeps one longer than the store does (TieredStore).
template <class S>
concept ExpiringStore = Store<S> && requires(S& s, std::string_view key, std::span<const std::string_view> keys) {
  { s.get_with_ttl(key) } -> std::same_as<std::optional<StoredValue>>;
  { s.get_many_with_ttl(keys) } -> std::same_as<std::vector<std::optional<StoredValue>>>;
};

// Optional: writes described by a StoreWrite (store/write.hpp), one at a time
// or as one batch. A plain write (no condition, tag or invalidation) is a set.
template <class S>
concept WritingStore = Store<S> && requires(S& s, const StoreWrite& w, std::span<const StoreWrite> writes) {
  { s.write(w) } -> std::same_as<WriteResult>;
  { s.write_many(writes) } -> std::same_as<BatchWriteResult>;
};

// A store that executes every part of a StoreWrite: lock and version checks,
// watches, tag sets and invalidations (RedisStore, a TieredStore over one). A
// policy attaches them only to such a store's writes; another refuses them
// (UnsupportedWriteError).
template <class S>
concept ConditionalStore = WritingStore<S> && requires {
  requires S::conditional_writes;
};

}  // namespace cachet
