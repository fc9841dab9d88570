#pragma once
// Relaxed atomic counters striped over cache lines, so that counting on the
// hit path neither locks nor makes threads share a line.

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace cachet::detail {

// Which copy of every StripedCounters a thread adds to. The first
// `owned_stripes` live threads each own a copy, and add to it by a plain load
// and store: a locked add drains the store buffer, which cost about a sixth
// of an in-process hit. Later threads share the other copies with fetch_add.
// A thread's copy goes back when it exits, to the next thread that starts.
// (Copies are handed out per program: a StripedCounters shared by shared
// libraries built with hidden visibility would see two hand-outs.)
struct CounterStripe {
  static constexpr std::size_t owned_stripes = 8, shared_stripes = 4;
  static constexpr std::size_t stripes = owned_stripes + shared_stripes;
  static constexpr std::size_t unassigned = stripes;

  std::size_t index = unassigned;
  bool owned = false;

  // Trivially destructible, so still readable from any thread_local destructor
  // that counts something: by then it names a shared copy (see Release).
  static CounterStripe mine() noexcept {
    thread_local CounterStripe stripe;
    if (stripe.index == unassigned) [[unlikely]] stripe.assign();
    return stripe;
  }

 private:
  static std::atomic<std::uint32_t>& taken() noexcept {
    static std::atomic<std::uint32_t> bits{0};
    return bits;
  }
  static CounterStripe shared() noexcept {
    static std::atomic<std::size_t> next{0};
    return {owned_stripes + next.fetch_add(1, std::memory_order_relaxed) % shared_stripes, false};
  }

  // At thread exit: this thread adds to a shared copy from then on, and only
  // then gives its own back (release: its adds are seen by the next owner).
  struct Release {
    CounterStripe* stripe;
    ~Release() {
      const std::size_t given_back = stripe->index;
      *stripe = shared();
      taken().fetch_and(~(1u << given_back), std::memory_order_release);
    }
  };

  // acquire: a reused copy's last owner's adds are seen before this thread adds to them.
  void assign() noexcept {
    auto& bits = taken();
    std::uint32_t now = bits.load(std::memory_order_relaxed);
    while (std::countr_one(now) < static_cast<int>(owned_stripes)) {
      const int free = std::countr_one(now);
      if (bits.compare_exchange_weak(now, now | (1u << free), std::memory_order_acquire, std::memory_order_relaxed)) {
        *this = {static_cast<std::size_t>(free), true};
        thread_local Release release{this};
        return;
      }
    }
    *this = shared();
  }
};

// N counters kept in a few copies, each on its own cache lines: a thread adds
// to its own copy (see CounterStripe), a read sums the copies. With one copy,
// two threads hitting one cache in process spent most of each hit moving the
// counters' line between their cores.
template <std::size_t N>
class StripedCounters {
 public:
  static constexpr std::size_t stripes = CounterStripe::stripes;

  void add(std::size_t i, std::uint64_t n) noexcept {
    const CounterStripe s = CounterStripe::mine();
    std::atomic<std::uint64_t>& c = stripes_[s.index].c[i];
    if (s.owned) c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);  // only this thread writes it
    else c.fetch_add(n, std::memory_order_relaxed);
  }
  std::uint64_t load(std::size_t i) const noexcept {
    std::uint64_t total = 0;
    for (const Stripe& s : stripes_) total += s.c[i].load(std::memory_order_relaxed);
    return total;
  }

 private:
  struct alignas(64) Stripe {
    std::array<std::atomic<std::uint64_t>, N> c{};
  };
  std::array<Stripe, stripes> stripes_;
};

}  // namespace cachet::detail
