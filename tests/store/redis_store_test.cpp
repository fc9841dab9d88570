#include <cachet/store/redis_store.hpp>
#include <cachet/store/write.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
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

namespace {
using cachet::LockCheck;
using cachet::StoreWrite;
using cachet::VersionCheck;
using cachet::WriteResult;
}  // namespace

TEST_CASE("RedisStore::write: a plain write is a SET, a conditional one a script") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  conn.command({"CONFIG", "RESETSTAT"});
  CHECK(store.write({.key = "k", .bytes = "v", .ttl = 60s}) == WriteResult::written);
  CHECK(conn.command({"GET", "k"}).as_string() == "v");
  CHECK(cachet::test::command_calls(conn, "set") == 1);
  CHECK(cachet::test::command_calls(conn, "evalsha") == 0);
  const std::vector<std::string> sets{"tag:a"};
  CHECK(store.write({.key = "k", .bytes = "w", .ttl = 60s, .tag_sets = sets}) == WriteResult::written);
  CHECK(cachet::test::command_calls(conn, "evalsha") == 1);
  CHECK(conn.command({"SISMEMBER", "tag:a", "k"}).as_integer() == 1);
  CHECK(conn.command({"PTTL", "tag:a"}).as_integer() > 59'000);
}

TEST_CASE("RedisStore::write with a lock check: written only while the token holds the lock") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  conn.command({"SET", "lock", "mine"});
  const LockCheck theirs{"lock", "theirs"}, mine{"lock", "mine"}, releasing{"lock", "mine", true, "released"};
  CHECK(store.write({.key = "k", .bytes = "x", .ttl = 60s, .lock_check = &theirs}) == WriteResult::lock_lost);
  CHECK(conn.command({"EXISTS", "k"}).as_integer() == 0);
  CHECK(store.write({.key = "k", .bytes = "a", .ttl = 60s, .lock_check = &mine}) == WriteResult::written);
  CHECK(conn.command({"GET", "lock"}).as_string() == "mine");  // kept: no release asked
  CHECK(store.write({.key = "k", .bytes = "b", .ttl = 60s, .lock_check = &releasing}) == WriteResult::written);
  CHECK(conn.command({"GET", "k"}).as_string() == "b");
  CHECK(conn.command({"EXISTS", "lock"}).as_integer() == 0);  // released with the write
}

TEST_CASE("RedisStore::write with a version check: an older version is refused") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  const std::string v5 = cachet::version_text(5), v3 = cachet::version_text(3), v7 = cachet::version_text(7);
  const VersionCheck five{"wv:k", v5, 60s}, three{"wv:k", v3, 60s}, deleting{"wv:k", v7, 60s, true};
  CHECK(store.write({.key = "k", .bytes = "five", .ttl = 60s, .version_check = &five}) == WriteResult::written);
  CHECK(store.write({.key = "k", .bytes = "three", .ttl = 60s, .version_check = &three}) == WriteResult::superseded);
  CHECK(conn.command({"GET", "k"}).as_string() == "five");
  CHECK(store.write({.key = "k", .ttl = 60s, .version_check = &deleting}) == WriteResult::written);
  CHECK(conn.command({"EXISTS", "k"}).as_integer() == 0);
  CHECK(conn.command({"GET", "wv:k"}).as_string() == v7);
  const VersionCheck bump{"wv:j", cachet::bump_version, 60s};  // an unversioned put: never refused, moves the version
  CHECK(store.write({.key = "j", .bytes = "a", .ttl = 60s, .version_check = &bump}) == WriteResult::written);
  CHECK(store.write({.key = "j", .bytes = "b", .ttl = 60s, .version_check = &bump}) == WriteResult::written);
  CHECK(conn.command({"GET", "j"}).as_string() == "b");
}

TEST_CASE("RedisStore::write with a watch: refused once the watched key moved") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  CHECK(store.write({.key = "k", .bytes = "a", .ttl = 60s, .watch = "wv:k"}) == WriteResult::written);  // absent, as seen
  conn.command({"SET", "wv:k", "1"});
  CHECK(store.write({.key = "k", .bytes = "b", .ttl = 60s, .watch = "wv:k"}) == WriteResult::superseded);
  CHECK(store.write({.key = "k", .bytes = "c", .ttl = 60s, .watch = "wv:k", .seen = "0"}) == WriteResult::superseded);
  CHECK(store.write({.key = "k", .bytes = "d", .ttl = 60s, .watch = "wv:k", .seen = "1"}) == WriteResult::written);
  CHECK(conn.command({"GET", "k"}).as_string() == "d");
}

TEST_CASE("RedisStore::write with an invalidation: one MULTI/EXEC, invalidating first, even after SCRIPT FLUSH") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  for (bool flushed : {false, true}) {
    conn.command({"SET", "other", "x"});
    conn.command({"SET", "k", "old"});
    conn.command({"SADD", "tag:t", "k", "member"});
    conn.command({"SET", "member", "m"});
    if (flushed) conn.command({"SCRIPT", "FLUSH"});  // a restart's NOSCRIPT, inside the transaction
    conn.command({"CONFIG", "RESETSTAT"});
    const cachet::InvalidationTargets targets{{"tag:t"}, {"other", "k"}, {"ns:version"}};
    const std::vector<std::string> sets{"tag:t"};  // the new value is tagged after the old set went
    cachet::InvalidationResult invalidated;
    CHECK(store.write({.key = "k", .bytes = "new", .ttl = 60s, .tag_sets = sets, .invalidation = &targets},
                      &invalidated) == WriteResult::written);
    CHECK(invalidated.deleted == 3);  // k and member (the tag's), other
    CHECK(invalidated.versions == std::vector<std::uint64_t>{flushed ? 2u : 1u});
    CHECK(conn.command({"GET", "k"}).as_string() == "new");
    CHECK(conn.command({"EXISTS", "other", "member"}).as_integer() == 0);
    CHECK(conn.command({"SMEMBERS", "tag:t"}).size() == 1);
    CHECK(cachet::test::command_calls(conn, "exec") == (flushed ? 2 : 1));
  }
}

TEST_CASE("RedisStore::write_many: one pipeline of SETs and scripts, refusals counted") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  conn.command({"SET", "lock", "theirs"});
  conn.command({"SET", "wv:s", "9"});
  conn.command({"SET", "not-a-set", "x"});
  const LockCheck lost{"lock", "mine"};
  const std::vector<std::string> sets{"tag:a"}, wrong{"not-a-set"};
  REQUIRE(store.write({.key = "warm", .bytes = "w", .ttl = 60s, .tag_sets = sets}) == WriteResult::written);
  conn.command({"SCRIPT", "FLUSH"});  // the script, known to this process, answers NOSCRIPT: run again by EVAL
  conn.command({"CONFIG", "RESETSTAT"});
  const std::vector<StoreWrite> writes{
      {.key = "plain", .bytes = "p", .ttl = 60s},
      {.key = "tagged", .bytes = "t", .ttl = 60s, .tag_sets = sets},
      {.key = "fenced", .bytes = "f", .ttl = 60s, .lock_check = &lost},
      {.key = "s", .bytes = "s", .ttl = 60s, .watch = "wv:s", .seen = "8"},
      {.key = "refused", .bytes = "r", .ttl = 60s, .tag_sets = wrong},
  };
  const cachet::BatchWriteResult r = store.write_many(writes);
  CHECK(r.lock_lost == 1);
  CHECK(r.superseded == 1);
  CHECK(r.failed == 1);
  CHECK(r.first_error.find("WRONGTYPE") != std::string::npos);
  CHECK(conn.command({"GET", "plain"}).as_string() == "p");
  CHECK(conn.command({"GET", "tagged"}).as_string() == "t");
  CHECK(conn.command({"SISMEMBER", "tag:a", "tagged"}).as_integer() == 1);
  CHECK(conn.command({"EXISTS", "fenced", "s"}).as_integer() == 0);
  CHECK(cachet::test::command_calls(conn, "eval") == 4);  // the NOSCRIPT ones, again

  const cachet::InvalidationTargets targets{{}, {"plain"}, {}};
  const std::vector<StoreWrite> invalidating{{.key = "k", .bytes = "v", .ttl = 60s, .invalidation = &targets}};
  CHECK_THROWS_AS(store.write_many(invalidating), std::invalid_argument);
  CHECK(store.write_many({}).failed == 0);
}

TEST_CASE("RedisStore::invalidate and incr") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  conn.command({"SET", "a", "1"});
  conn.command({"SADD", "tag:t", "b"});
  conn.command({"SET", "b", "2"});
  const cachet::InvalidationResult r = store.invalidate({{"tag:t"}, {"a", "gone"}, {"c"}});
  CHECK(r.deleted == 2);
  CHECK(r.versions == std::vector<std::uint64_t>{1});
  CHECK(store.invalidate({}).deleted == 0);
  CHECK(store.incr("seq") == 1);
  CHECK(store.incr("seq") == 2);
}
