#include <cachet/store/redis_store.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("RedisStore: get, set with TTL, del") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  CHECK_FALSE(store.get("k").has_value());
  store.set("k", std::string("v\0al", 4), 60s);
  CHECK(store.get("k") == std::string("v\0al", 4));
  auto conn = server.connect();
  const auto pttl = conn.command({"PTTL", "k"}).as_integer();
  CHECK(pttl > 59'000);
  CHECK(pttl <= 60'000);
  CHECK(store.del("k"));
  CHECK_FALSE(store.del("k"));
}

TEST_CASE("RedisStore batches are one command or one pipeline") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  conn.command({"CONFIG", "RESETSTAT"});

  std::vector<std::string> keys, values;
  for (int i = 0; i < 50; ++i) keys.push_back("k" + std::to_string(i)), values.push_back("v" + std::to_string(i));
  std::vector<cachet::StoreEntry> entries;
  for (std::size_t i = 0; i < keys.size(); i += 2) entries.push_back({keys[i], values[i], 30s});
  store.set_many(entries);

  std::vector<std::string_view> views(keys.begin(), keys.end());
  const auto got = store.get_many(views);
  REQUIRE(got.size() == 50);
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i].has_value() == (i % 2 == 0));
  CHECK(*got[10] == "v10");
  CHECK(store.del_many(views) == 25);
  CHECK(store.get_many({}).empty());

  CHECK(cachet::test::command_calls(conn, "mget") == 1);
  CHECK(cachet::test::command_calls(conn, "get") == 0);
  CHECK(cachet::test::command_calls(conn, "set") == 25);
  CHECK(cachet::test::command_calls(conn, "unlink") == 1);
}

TEST_CASE("RedisStore::invalidate deletes tag sets with their members and keys, and INCRs counters") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  for (const char* k : {"a", "b", "plain", "kept"}) conn.command({"SET", k, "v"});
  conn.command({"SADD", "tag:t", "a", "b", "gone"});
  conn.command({"SET", "ver", "5"});

  const cachet::InvalidationTargets targets{{"tag:t"}, {"plain", "missing"}, {"ver", "new-ver"}};
  const cachet::InvalidationResult r = store.invalidate(targets);
  CHECK(r.deleted == 3);  // a, b, plain: the gone member and the missing key do not count
  CHECK(r.versions == std::vector<std::uint64_t>{6, 1});
  CHECK(conn.command({"EXISTS", "a", "b", "plain", "tag:t"}).as_integer() == 0);
  CHECK(conn.command({"EXISTS", "kept"}).as_integer() == 1);
  CHECK(store.invalidate(cachet::InvalidationTargets{}).deleted == 0);
}

TEST_CASE("RedisStore::incr counts from 0 and get reads the counter") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  CHECK(store.incr("c") == 1);
  CHECK(store.incr("c") == 2);
  CHECK(store.get("c") == "2");
  store.set("text", "x", 60s);
  CHECK_THROWS_AS(store.incr("text"), cachet::ReplyError);  // not an integer: the server's error
}

TEST_CASE("RedisStore::set_tagged writes the value and tags it, set_tagged_many pipelines plain tagged writes") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  const std::vector<std::string> sets{"tag:x", "tag:y"};
  store.set_tagged("v", "bytes", 60s, sets, 3);
  CHECK(store.get("v") == "bytes");
  CHECK(conn.command({"PTTL", "v"}).as_integer() > 59'000);
  for (const std::string& set : sets) {
    CHECK(conn.command({"SISMEMBER", set, "v"}).as_integer() == 1);
    CHECK(conn.command({"PTTL", set}).as_integer() > 59'000);  // raised to the value's
  }
  CHECK_THROWS_AS(store.set_tagged("w", "bytes", 0ms, sets, 3), std::invalid_argument);
  CHECK_FALSE(store.get("w"));

  const std::vector<std::string> only_x{"tag:x"};
  const std::vector<cachet::StoreWrite> writes{{"m1", "1", 60s, only_x, 0}, {"m2", "2", 60s, sets, 0}};
  store.set_tagged_many(writes);
  CHECK(store.get("m1") == "1");
  CHECK(store.get("m2") == "2");
  CHECK(conn.command({"SCARD", "tag:x"}).as_integer() == 3);
  CHECK(conn.command({"SCARD", "tag:y"}).as_integer() == 2);

  // A lock check it would not run is refused, not ignored: nothing is written.
  const cachet::LockCheck lock{"lock", "token", false, ""};
  cachet::StoreWrite locked{"m3", "3", 60s, only_x, 0};
  locked.lock_check = &lock;
  CHECK_THROWS_AS(store.set_tagged_many({&locked, 1}), std::invalid_argument);
  CHECK_FALSE(store.get("m3"));
}

TEST_CASE("RedisStore::prune_tag_set removes the members that are gone, within a budget, resumably") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  std::vector<std::string_view> argv{"SADD", "tag:p"};
  std::vector<std::string> members;
  for (int i = 0; i < 40; ++i) members.push_back("m" + std::to_string(i));
  argv.insert(argv.end(), members.begin(), members.end());
  conn.command(argv);
  for (int i = 0; i < 40; i += 4) conn.command({"SET", members[i], "live"});  // 10 live, 30 gone

  cachet::PruneResult total;
  std::size_t steps = 0;
  do {
    const cachet::PruneResult step = store.prune_tag_set("tag:p", 8, total.cursor);
    CHECK(step.examined <= 8 + 10);  // SSCAN's COUNT is a hint: a page may hold a few more
    total.examined += step.examined;
    total.removed += step.removed;
    total.cursor = step.cursor;
    ++steps;
  } while (!total.done() && steps < 100);
  CHECK(total.done());
  CHECK(steps > 1);
  CHECK(total.removed == 30);
  CHECK(conn.command({"SCARD", "tag:p"}).as_integer() == 10);
  CHECK(store.prune_tag_set("tag:none").examined == 0);
}

TEST_CASE("RedisStore::unlink_matching deletes by pattern in SCAN batches, reporting progress") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  for (int i = 0; i < 25; ++i) conn.command({"SET", "p:" + std::to_string(i), "v"});
  conn.command({"SET", "q:1", "v"});
  conn.command({"CONFIG", "RESETSTAT"});
  std::size_t calls = 0, last_deleted = 0;
  const std::size_t n = store.unlink_matching("p:*", {.batch = 10, .on_progress = [&](std::size_t, std::size_t deleted) {
                                                         ++calls;
                                                         last_deleted = deleted;
                                                       }});
  CHECK(n == 25);
  CHECK(last_deleted == 25);
  CHECK(calls > 1);
  CHECK(conn.command({"DBSIZE"}).as_integer() == 1);
  CHECK(cachet::test::command_calls(conn, "keys") == 0);
  CHECK(cachet::test::command_calls(conn, "scan") == static_cast<long long>(calls));
  CHECK(store.unlink_matching("p:*") == 0);
}
