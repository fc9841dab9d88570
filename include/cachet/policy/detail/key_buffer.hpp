#pragma once
// A key built on the stack: the read path builds every lookup's key, and a
// std::string longer than its 15 inline bytes would cost an allocation per
// read. Keys up to `inline_capacity` bytes stay in the object; longer ones
// move to the heap. Has the members KeyBuilder's append functions use.

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace cachet::detail {

class KeyBuffer {
 public:
  static constexpr std::size_t inline_capacity = 240;

  KeyBuffer() = default;
  KeyBuffer(const KeyBuffer&) = delete;
  KeyBuffer& operator=(const KeyBuffer&) = delete;

  // Inline: it runs a few times for every key a read builds.
  KeyBuffer& append(std::string_view s) {
    if (!spilled_ && size_ + s.size() <= inline_capacity) [[likely]] {
      std::copy_n(s.data(), s.size(), inline_ + size_);
      size_ += s.size();
      return *this;
    }
    return append_to_heap(s);
  }
  KeyBuffer& operator+=(char c) { return append({&c, 1}); }
  void reserve(std::size_t) noexcept {}  // the inline bytes are there already
  void resize(std::size_t n) {  // shrinks only
    if (spilled_) heap_.resize(std::min(n, heap_.size()));
    else size_ = std::min(n, size_);
  }
  std::size_t size() const noexcept { return spilled_ ? heap_.size() : size_; }
  std::string_view view() const noexcept { return spilled_ ? std::string_view(heap_) : std::string_view(inline_, size_); }

 private:
  [[gnu::noinline]] KeyBuffer& append_to_heap(std::string_view s) {
    if (!spilled_) {
      heap_.reserve(size_ + s.size());
      heap_.assign(inline_, size_);
      spilled_ = true;
    }
    heap_.append(s);
    return *this;
  }

  char inline_[inline_capacity];
  std::size_t size_ = 0;
  bool spilled_ = false;
  std::string heap_;
};

}  // namespace cachet::detail
