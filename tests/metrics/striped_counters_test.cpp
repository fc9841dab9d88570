// StripedCounters: threads that own a copy add without a locked instruction;
// the sum stays exact with more threads than owned copies, and when a copy
// passes from a thread that exited to a new one.
#include <cachet/metrics/detail/striped_counters.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using cachet::detail::CounterStripe;
using cachet::detail::StripedCounters;

namespace {

void add_from_threads(StripedCounters<3>& c, int threads, int adds) {
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i = 0; i < adds; ++i) c.add(1, 1);
    });
  for (auto& t : pool) t.join();
}

}  // namespace

TEST_CASE("counts from more threads than owned copies add up exactly", "[striped_counters]") {
  StripedCounters<3> c;
  constexpr int threads = static_cast<int>(CounterStripe::stripes) * 3;  // some own, the rest share
  add_from_threads(c, threads, 20'000);
  CHECK(c.load(1) == static_cast<std::uint64_t>(threads) * 20'000);
  CHECK(c.load(0) == 0);
  CHECK(c.load(2) == 0);
}

TEST_CASE("a copy handed from an exited thread to a new one loses nothing", "[striped_counters]") {
  StripedCounters<3> c;
  for (int round = 0; round < 20; ++round) add_from_threads(c, 2, 5'000);
  CHECK(c.load(1) == 20u * 2 * 5'000);
}

TEST_CASE("the first threads own their copies, and an exited thread's copy is taken again", "[striped_counters]") {
  std::atomic<bool> first_owned{false}, again_owned{false};
  std::atomic<std::size_t> first_index{99}, again_index{99};
  std::thread([&] {
    first_owned = CounterStripe::mine().owned;
    first_index = CounterStripe::mine().index;
  }).join();
  std::thread([&] {
    again_owned = CounterStripe::mine().owned;
    again_index = CounterStripe::mine().index;
  }).join();
  CHECK(first_owned.load());  // this binary runs few threads: copies are free
  CHECK(again_owned.load());
  CHECK(again_index.load() == first_index.load());  // the lowest free copy, given back at exit
}

namespace {
// Counts from its destructor, which runs after the thread's copy went back.
std::atomic<int> owned_at_exit{-1};
struct CountsAtExit {
  StripedCounters<3>* counters = nullptr;
  ~CountsAtExit() {
    if (!counters) return;
    counters->add(0, 1);
    owned_at_exit = CounterStripe::mine().owned ? 1 : 0;
  }
};
}  // namespace

TEST_CASE("an add from a thread_local destructor after the copy went back goes to a shared copy", "[striped_counters]") {
  StripedCounters<3> c;
  std::atomic<bool> owned_before{false}, next_owns{false};
  std::thread([&] {
    thread_local CountsAtExit at_exit;  // built before the first add: destroyed after the copy went back
    at_exit.counters = &c;
    c.add(0, 1);
    owned_before = CounterStripe::mine().owned;
  }).join();
  std::thread([&] {  // takes the copy the first thread gave back
    c.add(0, 1);
    next_owns = CounterStripe::mine().owned;
  }).join();
  CHECK(owned_before.load());
  CHECK(owned_at_exit.load() == 0);  // not the copy it gave back, which the next thread may own
  CHECK(next_owns.load());
  CHECK(c.load(0) == 3);
}
