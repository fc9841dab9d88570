#pragma once
// A thread's own handles on the values it reads most from the ValueStores of
// one value type, so that a hit on a hot key writes no memory another thread
// uses. Without them, two threads reading one key took turns on its shard's
// lock and on its shared_ptr's reference count, and each hit cost four times
// what it did in one thread.
//
// A handle is a shared_ptr of this thread's own (a "holder" owning a copy of
// the store's shared_ptr): copies of it are counted on the holder, not on the
// value's control block. It is used only while its key's stamp (moved by every
// invalidation of the key and every clear, detail/memory_shard.hpp) is the one
// it was taken under and its entry has not expired, so it is never served
// after its key was invalidated. Every 64th use goes back to the store, so
// SIEVE still sees the key as used. Values weighing over 4 KiB get no handle.
// A thread keeps at most 64 handles, those of destroyed stores included until
// their slots are reused or the thread ends: up to 256 KiB of values a thread
// beyond what the stores count.

#include <cachet/codec/envelope.hpp>
#include <cachet/detail/key_hash.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace cachet::detail {

template <class V>
class ValueFront {
 public:
  using time_point = std::chrono::system_clock::time_point;
  static constexpr std::size_t slot_count = 64;
  static constexpr std::size_t max_weight = 4096;
  static constexpr std::uint32_t uses_per_visit = 64;

  static ValueFront& mine() {
    thread_local ValueFront front;
    return front;
  }

  // The handle on `key` of `store`, if this thread has one taken under `stamp`
  // that has not expired and is not due back at the store: into `out`'s `value`
  // (counted on this thread's holder) and `meta`, written in place. Returns the
  // handle's own metadata (nullptr: none), to judge the entry by without reading
  // back what was just copied (a vector store read back in halves stalls: that
  // was a seventh of an in-process hit).
  template <class Out>
  const EntryMeta* find(std::uint64_t store, std::uint64_t hash, std::string_view key, std::uint64_t stamp,
                        time_point now, Out& out) {
    Slot& s = slot(store, hash);
    if (s.store != store || s.hash != hash || s.stamp != stamp || now >= s.expires || !same_key(s.key, key))
      return nullptr;
    if (++s.uses >= uses_per_visit) return nullptr;
    out.value = std::shared_ptr<const V>(s.holder, s.holder->get());
    out.meta = s.meta;
    return &s.meta;
  }

  // Takes a handle on `value`, read from `store` under `stamp` (taken before the read).
  void keep(std::uint64_t store, std::uint64_t hash, std::string_view key, std::uint64_t stamp, time_point expires,
            const std::shared_ptr<const V>& value, const EntryMeta& meta) {
    Slot& s = slot(store, hash);
    const bool same = s.holder && s.store == store && s.hash == hash && *s.holder == value && s.key == key;
    if (!same) {
      // Reused when no handle given out is still held, so a steady hot key allocates nothing.
      if (s.holder && s.holder.use_count() == 1) {
        // use_count() is a relaxed read: the acquire orders the last other
        // holder's reads of the old value before this thread lets it go.
        // (GCC refuses fences under -fsanitize=thread, which checks without it.)
#if !defined(__SANITIZE_THREAD__)
        std::atomic_thread_fence(std::memory_order_acquire);
#endif
        *s.holder = value;
      } else {
        s.holder = std::make_shared<std::shared_ptr<const V>>(value);
      }
      s.key.assign(key);
    }
    s.store = store;
    s.hash = hash;
    s.stamp = stamp;
    s.expires = expires;
    s.uses = 0;
    s.meta = meta;
  }

 private:
  struct Slot {
    std::uint64_t store = 0, hash = 0, stamp = 0;
    time_point expires{};
    std::uint32_t uses = 0;
    std::string key;
    std::shared_ptr<std::shared_ptr<const V>> holder;
    EntryMeta meta;
  };

  Slot& slot(std::uint64_t store, std::uint64_t hash) noexcept {
    return slots_[(hash ^ (store * 0x9E3779B97F4A7C15ull)) % slot_count];
  }

  std::array<Slot, slot_count> slots_{};
};

}  // namespace cachet::detail
