#pragma once
// Relaxed atomic counters striped over cache lines, so that counting on the
// hit path neither locks nor makes threads share a line.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace cachet::detail {

// N counters kept in a few copies, each on its own cache lines: a thread adds
// to its own copy (threads take copies in turn), a read sums the copies. With
// one copy, two threads hitting one cache in process spent most of each hit
// moving the counters' line between their cores.
template <std::size_t N>
class StripedCounters {
 public:
  static constexpr std::size_t stripes = 4;

  void add(std::size_t i, std::uint64_t n) noexcept { stripes_[mine()].c[i].fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t load(std::size_t i) const noexcept {
    std::uint64_t total = 0;
    for (const Stripe& s : stripes_) total += s.c[i].load(std::memory_order_relaxed);
    return total;
  }

 private:
  static std::size_t mine() noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t stripe = next.fetch_add(1, std::memory_order_relaxed) % stripes;
    return stripe;
  }
  struct alignas(64) Stripe {
    std::array<std::atomic<std::uint64_t>, N> c{};
  };
  std::array<Stripe, stripes> stripes_;
};

}  // namespace cachet::detail
