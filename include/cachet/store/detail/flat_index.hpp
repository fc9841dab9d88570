#pragma once
// A hash index from 32-bit hashes to items the caller owns: open addressing with
// linear probing, so a lookup scans a few adjacent hashes (one cache line) and
// touches an item only when its hash matches; erase shifts the cluster back
// instead of leaving tombstones. 12 bytes a slot, at most 80 % full, and never
// bigger than `max_items` needs. Not thread-safe: the owner serialises access.

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cachet::detail {

template <class T>
class FlatIndex {
 public:
  // The most items any index can hold (slots are addressed by 32-bit hashes).
  static constexpr std::size_t max_capacity = std::size_t{0xFFFF'FFFF} / 5 * 4;

  explicit FlatIndex(std::size_t max_items)
      : limit_(slots_for(max_items)), hashes_(limit_ < 16 ? limit_ : 16), items_(hashes_.size()) {
    assert(max_items <= max_capacity);
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return hashes_.size(); }

  // The item of hash `h` for which same(item) holds, or nullptr. `h` is never 0.
  template <class Same>
  T* find(std::uint32_t h, Same same) const {
    for (std::size_t i = home(h); hashes_[i] != 0; i = next(i))
      if (hashes_[i] == h && same(items_[i])) return items_[i];
    return nullptr;
  }

  // Adds an item that is not in the index yet; grows the slots if needed (may throw).
  void insert(std::uint32_t h, T* item) {
    assert(h != 0 && size_ < max_items());
    if ((size_ + 1) * 5 > capacity() * 4) grow();
    place(h, item);
    ++size_;
  }

  // Removes an item that is in the index.
  void erase(std::uint32_t h, const T* item) noexcept {
    std::size_t i = home(h);
    while (items_[i] != item) i = next(i);
    shift_back(i);
    --size_;
  }

  template <class F>
  void for_each(F f) const {
    for (T* item : items_)
      if (item) f(item);
  }

  void clear() noexcept {
    std::fill(hashes_.begin(), hashes_.end(), 0);
    std::fill(items_.begin(), items_.end(), nullptr);
    size_ = 0;
  }

 private:
  // The fewest slots that hold n items at 80 %, and at least one (so find() needs no check).
  static std::size_t slots_for(std::size_t n) noexcept {
    return n == 0 ? 1 : static_cast<std::size_t>((std::uint64_t{n} * 5 + 3) / 4);
  }
  std::size_t max_items() const noexcept { return limit_ * 4 / 5; }
  // Maps the hash onto [0, capacity) without a division (Lemire's fast range).
  std::size_t home(std::uint32_t h) const noexcept {
    return static_cast<std::size_t>((std::uint64_t{h} * hashes_.size()) >> 32);
  }
  std::size_t next(std::size_t i) const noexcept { return i + 1 == hashes_.size() ? 0 : i + 1; }

  void place(std::uint32_t h, T* item) noexcept {
    std::size_t i = home(h);
    while (hashes_[i] != 0) i = next(i);
    hashes_[i] = h;
    items_[i] = item;
  }

  // 1.25x rather than 2x keeps the table between 64 % and 80 % full: 15-19 bytes an item.
  void grow() {
    const std::size_t slots = std::min(capacity() + capacity() / 4 + 1, limit_);
    std::vector<std::uint32_t> hashes(slots, 0);
    std::vector<T*> items(slots, nullptr);
    hashes_.swap(hashes);  // allocated first: a bad_alloc leaves the index as it was
    items_.swap(items);
    for (std::size_t i = 0; i < hashes.size(); ++i)
      if (hashes[i] != 0) place(hashes[i], items[i]);
  }

  // Backward-shift deletion: moves later members of the cluster into the hole
  // unless that would put them before their home slot.
  void shift_back(std::size_t hole) noexcept {
    for (std::size_t j = next(hole); hashes_[j] != 0; j = next(j)) {
      const std::size_t h = home(hashes_[j]);
      const bool stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
      if (stays) continue;
      hashes_[hole] = hashes_[j];
      items_[hole] = items_[j];
      hole = j;
    }
    hashes_[hole] = 0;
    items_[hole] = nullptr;
  }

  std::size_t limit_;  // the most slots: max_items at 80 %
  std::vector<std::uint32_t> hashes_;  // 0 = empty slot
  std::vector<T*> items_;
  std::size_t size_ = 0;
};

}  // namespace cachet::detail
