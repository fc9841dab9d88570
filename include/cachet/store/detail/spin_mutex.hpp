#pragma once
// A mutex for critical sections of tens of nanoseconds: a waiter spins for a
// few microseconds before it sleeps, where std::mutex (a bare futex on glibc)
// puts it to sleep at once and so pays two system calls and a wake-up, far
// more than the section it waited for. Sleeping is C++20's atomic wait
// (a futex on Linux), so a waiter never burns a CPU for long.
//
// The three states are Drepper's ("Futexes are tricky", mutex 3): an unlock
// notifies only when someone may be asleep. Meets Lockable.

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace cachet::detail {

class SpinMutex {
 public:
  void lock() noexcept {
    for (int i = 0; i < spins; ++i) {
      if (try_lock()) return;
      relax();
    }
    while (state_.exchange(sleeping, std::memory_order_acquire) != unlocked)
      state_.wait(sleeping, std::memory_order_relaxed);
  }

  bool try_lock() noexcept {
    int expected = unlocked;
    return state_.load(std::memory_order_relaxed) == unlocked &&
           state_.compare_exchange_weak(expected, locked, std::memory_order_acquire, std::memory_order_relaxed);
  }

  void unlock() noexcept {
    if (state_.exchange(unlocked, std::memory_order_release) == sleeping) state_.notify_one();
  }

 private:
  static constexpr int unlocked = 0, locked = 1, sleeping = 2;  // sleeping: locked, and a waiter may sleep
  static constexpr int spins = 100;  // 0.4-5 µs: a pause takes 10-140 cycles, by CPU

  static void relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  std::atomic<int> state_{unlocked};
};

}  // namespace cachet::detail
