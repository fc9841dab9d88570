#pragma once
// What a store write is: the value and its TTL, and the conditions and side
// effects a policy or guard attaches to it (tag sets, a lock that must still be
// held, a version that must not be older, a write version that must not have
// moved, targets invalidated in the same atomic step). RedisStore executes it
// in one script; TieredStore also drops the key from its first tier; MemoryStore
// executes plain writes only (ConditionalStore, store/concepts.hpp). A write can
// also wait for replication (Replication, store/replication.hpp).

#include <cachet/store/replication.hpp>

#include <charconv>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace cachet {

struct InvalidationTargets {
  std::vector<std::string> tag_sets;  // full tag-set keys: members and set are deleted
  std::vector<std::string> keys;      // full keys, deleted
  std::vector<std::string> counters;  // version counters, INCRed
  // The namespace's tag epoch ({ns}:tagepoch), INCRed (from a random start when
  // missing) with the tag sets, so that a load's write checking it is refused;
  // empty: none.
  std::string tag_epoch = {};
  bool empty() const noexcept { return tag_sets.empty() && keys.empty() && counters.empty() && tag_epoch.empty(); }
};

struct InvalidationResult {
  std::size_t deleted = 0;               // keys that existed (tag members and plain keys)
  std::vector<std::uint64_t> versions;   // the new value of each counter, in order
};

// What became of a write: `superseded` is a newer write's doing (a newer
// version, or a put during a load); the lock's release happened all the same.
enum class WriteResult { written, lock_lost, superseded };

// The lock a fenced write checks (and, with `release`, deletes and announces).
struct LockCheck {
  std::string_view key;
  std::string_view token;
  bool release = false;
  std::string_view channel = {};  // PUBLISHed the lock key on release; empty: none
};

// The version a write carries (write-through): refused when the version recorded
// for the key is newer; recorded otherwise, for at least `ttl`.
struct VersionCheck {
  std::string_view key;      // {ns}:wv:{value key}
  std::string_view version;  // version_text(), or bump_version: a writer without versions
  std::chrono::milliseconds ttl;
  bool delete_value = false;  // record the version and UNLINK the value instead of setting it
};

// An unversioned put only changes the key's write version (INCR), so that a
// load running meanwhile is refused; it is never refused itself.
inline constexpr std::string_view bump_version = "+";

template <std::integral I>
std::string version_text(I v) {
  std::uint64_t u = 0;
  if constexpr (std::is_signed_v<I>) u = static_cast<std::uint64_t>(static_cast<std::int64_t>(v)) ^ (1ULL << 63);
  else u = static_cast<std::uint64_t>(v);
  char digits[20];
  const auto n = static_cast<std::size_t>(std::to_chars(digits, digits + sizeof digits, u).ptr - digits);
  return std::string(20 - n, '0').append(digits, n);
}

// One write of a cache value (or, with VersionCheck::delete_value, its deletion).
struct StoreWrite {
  std::string_view key;
  std::string_view bytes = {};  // none for a versioned delete
  std::chrono::milliseconds ttl;         // > 0
  std::span<const std::string> tag_sets = {};  // full tag-set keys
  std::size_t prune_sample = 0;          // members of each set checked (and removed if gone)
  // A load's write into a write-through cache: written only while `watch` (the
  // key's write version) still holds `seen` (nullopt: absent), i.e. no put
  // reached the cache since the load began. Empty `watch`: no condition.
  std::string_view watch = {};
  std::optional<std::string_view> seen = {};
  // Written only while the key holds no value (a cache warm: whatever a reader
  // or writer stored meanwhile is at least as new); superseded otherwise.
  bool only_if_absent = false;
  // A tagged load's write (one server's tag sets): written only while the tag
  // epoch key `tag_epoch` still holds `epoch_seen` (read before the load; "":
  // absent), i.e. no tag invalidation ran since; superseded otherwise. Empty
  // `tag_epoch`: no condition.
  std::string_view tag_epoch = {};
  std::string_view epoch_seen = {};
  // Attached by a guard or a write policy; nullptr: none. Each views what the caller owns.
  const LockCheck* lock_check = nullptr;              // written only while this token holds the lock
  const VersionCheck* version_check = nullptr;        // refused when a newer version was written
  const InvalidationTargets* invalidation = nullptr;  // invalidated first, in the same atomic step
  // Wait for this many replicas (WAIT, in the write's round trip); 0: none.
  // Only a RedisStore (or a TieredStore over one) waits; MemoryStore refuses it.
  Replication replication = {};

  // No condition, tag or invalidation: a SET.
  bool plain() const noexcept {
    return !lock_check && !version_check && watch.empty() && !only_if_absent && tag_sets.empty() && tag_epoch.empty() &&
           (!invalidation || invalidation->empty());
  }
};

struct BatchWriteResult {
  std::size_t superseded = 0;
  std::size_t stale_tags = 0;  // of the superseded: a tag invalidation ran since the load (StoreWrite::tag_epoch)
  std::size_t lock_lost = 0;
  std::size_t failed = 0;  // refused by the server (OOM, say)
  std::string first_error;
};

// A store that keeps no locks, versions or tag sets (MemoryStore) asked for a
// write with any of them, or to wait for replicas: the write is refused, nothing is written.
class UnsupportedWriteError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace cachet
