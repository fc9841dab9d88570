#include <cachet/store/redis_store.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>

#include <chrono>
#include <string>
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
