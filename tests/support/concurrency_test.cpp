// The test threads turn an exception in a thread body (a Redis timeout, say)
// into a failure of the test that started it, instead of std::terminate.

#include <cachet/redis/errors.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>

#include <atomic>
#include <vector>

TEST_CASE("a test thread's exception is rethrown by join, in the test's thread") {
  cachet::test::Thread t([] { throw cachet::TimeoutError("GET timed out"); });
  CHECK_THROWS_AS(t.join(), cachet::TimeoutError);
}

TEST_CASE("in_threads joins every thread, then rethrows the first exception") {
  std::atomic<int> finished{0};
  CHECK_THROWS_AS(cachet::test::in_threads(4,
                                           [&](int i) {
                                             finished.fetch_add(1);
                                             if (i % 2 == 0) throw cachet::ConnectionError("lost");
                                           }),
                  cachet::ConnectionError);
  CHECK(finished.load() == 4);
}

TEST_CASE("a test thread left unjoined by a failure is joined, not terminated") {
  std::atomic<bool> ran{false};
  try {
    std::vector<cachet::test::Thread> threads;
    threads.emplace_back([] { throw cachet::Error("first"); });
    threads.emplace_back([&] { ran = true; });
    threads.front().join();  // throws: the second is joined by its destructor
    FAIL("join did not rethrow");
  } catch (const cachet::Error&) {
  }
  CHECK(ran.load());
}
