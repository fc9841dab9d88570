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

TEST_CASE("RedisCounterQueue: a left-over batch keeps its number whatever the partition count of the flusher") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisCounterQueue two(cachet::RedisStore(pool), "cqp", 2), four(cachet::RedisStore(pool), "cqp", 4);
  std::string id;  // in partition 0 of both (the same keys: {cqp:p0})
  for (int i = 0; id.empty(); ++i)
    if (cachet::detail::partition_of("id" + std::to_string(i), 4) == 0) id = "id" + std::to_string(i);
  REQUIRE(cachet::detail::partition_of(id, 2) == 0);
  two.increment(id, 3);
  const auto batch = two.hand_over(0);  // a flush that fails: left over
  REQUIRE(batch);
  const auto again = four.hand_over(0);
  REQUIRE(again);
  CHECK(again->left_over);
  CHECK(again->number == batch->number);
  CHECK(batch->number % cachet::detail::max_queue_partitions == 0);
  four.done(again->number);
  CHECK(two.pending(id) == 0);
}

// Its number evicted (allkeys-*) or deleted by hand, a left-over batch could be
// counted twice under a new one: the hand-over says so instead.
TEST_CASE("RedisCounterQueue: a left-over batch whose number is gone is a clear error, not a new number") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  auto admin = server.connect();
  cachet::RedisCounterQueue counts(cachet::RedisStore(pool), "cqe");
  counts.increment("a", 2);
  REQUIRE(counts.hand_over());  // a flush that fails: left over
  REQUIRE(admin.command({"DEL", "cqe:batch"}).as_integer() == 1);  // one partition: the key unchanged
  CHECK_THROWS_WITH(counts.hand_over(), Catch::Contains("have no batch number"));
  CHECK(counts.pending("a") == 2);  // the counts are still there
}
