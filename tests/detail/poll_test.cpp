#include <cachet/detail/poll.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <vector>

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using cachet::detail::poll_until;

TEST_CASE("poll_until returns at the first call that says done") {
  int calls = 0;
  CHECK(poll_until(clock_type::now() + 60s, 1ms, 50ms, [&] { return ++calls == 3; }));
  CHECK(calls == 3);
}

TEST_CASE("poll_until past its deadline calls once and returns false") {
  int calls = 0;
  CHECK_FALSE(poll_until(clock_type::now() - 1ms, 1ms, 50ms, [&] { return ++calls, false; }));
  CHECK(calls == 1);
}

TEST_CASE("poll_until pauses from pause_min doubling, and its last call starts at or after the deadline") {
  struct Call {
    clock_type::time_point start, end;
  };
  std::vector<Call> calls;
  const auto deadline = clock_type::now() + 100ms;
  CHECK_FALSE(poll_until(deadline, 1ms, 8ms, [&] {
    calls.push_back({clock_type::now(), {}});
    calls.back().end = clock_type::now();
    return false;
  }));
  REQUIRE(calls.size() >= 2);
  CHECK(calls.back().start >= deadline);  // one look after the deadline
  CHECK(calls[calls.size() - 2].start < deadline);  // and only one
  auto pause = clock_type::duration(1ms);
  for (std::size_t i = 0; i + 1 < calls.size(); ++i, pause = std::min<clock_type::duration>(pause * 2, 8ms)) {
    // At least the pause (cut at the deadline) between a call's end and the next call.
    const auto left = std::max(deadline - calls[i].end, clock_type::duration(0));
    CHECK(calls[i + 1].start - calls[i].end >= std::min(pause, left));
  }
}
