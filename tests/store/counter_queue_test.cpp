#include <cachet/store/counter_queue.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>

TEST_CASE("RedisCounterQueue: increments are handed over as one numbered batch, again until done") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisCounterQueue counts(cachet::RedisStore(pool), "cq");
  CHECK_FALSE(counts.hand_over());
  CHECK(counts.increment("a", 2) == 2);
  CHECK(counts.increment("a", 3) == 5);
  const auto batch = counts.hand_over();
  REQUIRE(batch);
  CHECK_FALSE(batch->left_over);
  REQUIRE(batch->sums.size() == 1);
  CHECK(batch->sums[0].delta == 5);
  counts.increment("a", 1);
  CHECK(counts.pending("a") == 6);  // flushing + pending
  const auto again = counts.hand_over();  // not done: the same batch
  REQUIRE(again);
  CHECK(again->left_over);
  CHECK(again->number == batch->number);
  counts.done(batch->number);
  CHECK(counts.pending("a") == 1);
  const auto next = counts.hand_over();
  REQUIRE(next);
  CHECK(next->number > batch->number);
}
