#pragma once
// Replaces the global operator new and delete with ones that count this
// thread's allocations (and note the largest), so a test or benchmark can
// assert that a path allocates nothing, or nothing big. Include it in exactly
// one translation unit of a program.

#include <cstddef>
#include <cstdlib>
#include <new>

namespace cachet::test {

inline thread_local std::size_t allocations = 0;
inline thread_local std::size_t largest_allocation = 0;  // bytes, since the last reset by largest_allocation_in

// Allocations made on this thread while `f` ran.
template <class F>
std::size_t allocations_in(F&& f) {
  const std::size_t before = allocations;
  f();
  return allocations - before;
}

// The largest single allocation made on this thread while `f` ran.
template <class F>
std::size_t largest_allocation_in(F&& f) {
  largest_allocation = 0;
  f();
  return largest_allocation;
}

}  // namespace cachet::test

namespace cachet::test::counting {
// Out of line, so the compiler does not pair operator new[] with free() and warn.
[[gnu::noinline]] inline void* counted_malloc(std::size_t n) {
  ++allocations;
  if (n > largest_allocation) largest_allocation = n;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] inline void counted_free(void* p) noexcept { std::free(p); }
}  // namespace cachet::test::counting

void* operator new(std::size_t n) { return cachet::test::counting::counted_malloc(n); }
void* operator new[](std::size_t n) { return cachet::test::counting::counted_malloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return cachet::test::counting::counted_malloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
void operator delete(void* p) noexcept { cachet::test::counting::counted_free(p); }
void operator delete[](void* p) noexcept { cachet::test::counting::counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { cachet::test::counting::counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { cachet::test::counting::counted_free(p); }
