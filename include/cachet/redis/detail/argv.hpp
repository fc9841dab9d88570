#pragma once
// A command's arguments as pointer + length arrays (views, not copies), inline
// for short commands so the common command allocates nothing.

#include <cachet/redis/arg.hpp>

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string_view>

namespace cachet::detail {

class Argv {
 public:
  static constexpr std::size_t inline_capacity = 16;

  Argv() = default;
  Argv(const Argv&) = delete;
  Argv& operator=(const Argv&) = delete;

  explicit Argv(std::initializer_list<Arg> args) {
    reserve(args.size());
    for (const Arg& a : args) push(a.view());
  }

  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    auto ptrs = std::make_unique<const char*[]>(n);
    auto lens = std::make_unique<std::size_t[]>(n);
    for (std::size_t i = 0; i < size_; ++i) {
      ptrs[i] = ptrs_[i];
      lens[i] = lens_[i];
    }
    heap_ptrs_ = std::move(ptrs);
    heap_lens_ = std::move(lens);
    ptrs_ = heap_ptrs_.get();
    lens_ = heap_lens_.get();
    capacity_ = n;
  }

  void push(std::string_view s) {
    if (size_ == capacity_) reserve(capacity_ * 2);
    ptrs_[size_] = s.data();
    lens_[size_] = s.size();
    ++size_;
  }

  template <ArgRange R>
  void push_range(const R& range) {
    if constexpr (std::ranges::sized_range<R>) reserve(size_ + std::ranges::size(range));
    for (auto&& a : range) push(std::string_view(a));
  }

  std::string_view operator[](std::size_t i) const noexcept { return {ptrs_[i], lens_[i]}; }
  std::size_t size() const noexcept { return size_; }

 private:
  const char* inline_ptrs_[inline_capacity];
  std::size_t inline_lens_[inline_capacity];
  std::unique_ptr<const char*[]> heap_ptrs_;
  std::unique_ptr<std::size_t[]> heap_lens_;
  const char** ptrs_ = inline_ptrs_;
  std::size_t* lens_ = inline_lens_;
  std::size_t size_ = 0;
  std::size_t capacity_ = inline_capacity;
};

}  // namespace cachet::detail
