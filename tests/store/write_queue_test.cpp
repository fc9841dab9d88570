#include <cachet/store/write_queue.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

cachet::QueuedWrite write_of(std::string_view id, std::string_view key, std::string_view bytes) {
  return {id, key, bytes, 60s, "wv", 120s};
}

}  // namespace

TEST_CASE("RedisWriteQueue: enqueue sets the entry and queues it, and pending, length, last id and backlog read it back") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisWriteQueue queue(cachet::RedisStore(pool), "wq");
  CHECK_FALSE(queue.last_id());  // no stream yet
  const auto first = queue.enqueue(write_of("1", "k1", "a"), 0, false);
  REQUIRE(first);
  CHECK_FALSE(first->over_bound);
  const auto second = queue.enqueue(write_of("1", "k1", "b"), 0, false);
  REQUIRE(second);
  CHECK(second->entry > first->entry);
  CHECK(server.connect().command({"GET", "k1"}).as_string() == "b");
  CHECK(queue.pending("1") == "b");  // the id's latest write
  CHECK_FALSE(queue.pending("2"));
  CHECK(queue.length() == 2);
  CHECK(queue.last_id() == second->entry);
  CHECK(queue.holds_up_to(first->entry));
  const cachet::QueueBacklog backlog = queue.backlog();
  CHECK(backlog.length == 2);
  CHECK(backlog.oldest == first->entry);
  CHECK_FALSE(queue.enqueue(write_of("2", "k2", "c"), 2, false));  // at the bound: nothing written
  CHECK(server.connect().command({"EXISTS", "k2"}).as_integer() == 0);
  const auto grown = queue.enqueue(write_of("2", "k2", "c"), 2, true);
  REQUIRE(grown);
  CHECK(grown->over_bound);
}

TEST_CASE("RedisWriteQueue::Reader reads, settles, and joins its group again after Redis lost it") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisWriteQueue queue(cachet::RedisStore(pool), "wq");
  auto reader = queue.reader("g", "c1", 1s);
  CHECK(reader.read_new(10, 1ms).empty());  // creates the group (and the stream)
  const auto queued = queue.enqueue(write_of("1", "k1", "a"), 0, false);
  REQUIRE(queued);
  std::vector<cachet::StreamEntry> read = reader.read_new(10, 1ms);
  REQUIRE(read.size() == 1);
  CHECK(read[0].entry == queued->entry);
  CHECK(read[0].id == "1");
  CHECK(read[0].cache_key == "k1");
  CHECK(read[0].bytes == "a");
  CHECK(reader.read_own("0", 10).size() == 1);  // delivered, not acknowledged
  const std::vector<std::string> entries{queued->entry.str()};
  const cachet::SettledWrite head{"1", entries[0], "k1"};
  reader.settle(cachet::Settle::written, {}, entries, {&head, 1});
  CHECK(queue.length() == 0);
  CHECK_FALSE(queue.pending("1"));
  CHECK(reader.read_own("0", 10).empty());

  server.connect().command({"FLUSHALL"});  // the group is gone: NOGROUP once, then joined again
  CHECK_THROWS_AS(reader.read_new(10, 1ms), cachet::ReplyError);
  CHECK(reader.read_new(10, 1ms).empty());
  REQUIRE(queue.enqueue(write_of("2", "k2", "b"), 0, false));
  CHECK(reader.read_new(10, 1ms).size() == 1);
}
