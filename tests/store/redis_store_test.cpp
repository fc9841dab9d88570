#include <cachet/store/detail/cluster_layout.hpp>
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
#include <cachet/store/write.hpp>

using namespace std::chrono_literals;

// The keys one script or transaction touches share a hash tag ("{t}a", "{k}lock" beside "k"),
// so that every case runs on a cluster too (`redis_store_test_cluster`).

TEST_CASE("RedisStore: get, set with TTL, del") {
  auto& server = cachet::test::clean_target();
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
  auto& server = cachet::test::clean_target();
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

  if (conn.cluster()) return;  // one pipeline per node there (cluster_pool_test)
  CHECK(cachet::test::command_calls(conn, "mget") == 1);
  CHECK(cachet::test::command_calls(conn, "get") == 0);
  CHECK(cachet::test::command_calls(conn, "set") == 25);
  CHECK(cachet::test::command_calls(conn, "unlink") == 1);
}

TEST_CASE("RedisStore::invalidate deletes tag sets with their members and keys, and INCRs counters") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  for (const char* k : {"{t}a", "{t}b", "{t}plain", "{t}kept"}) conn.command({"SET", k, "v"});
  conn.command({"SADD", "{t}tag", "{t}a", "{t}b", "{t}gone"});
  conn.command({"SET", "{t}ver", "5"});

  const cachet::InvalidationTargets targets{{"{t}tag"}, {"{t}plain", "{t}missing"}, {"{t}ver", "{t}new-ver"}};
  const cachet::InvalidationResult r = store.invalidate(targets);
  CHECK(r.deleted == 3);  // a, b, plain: the gone member and the missing key do not count
  CHECK(r.versions == std::vector<std::uint64_t>{6, 1});
  CHECK(conn.command({"EXISTS", "{t}a", "{t}b", "{t}plain", "{t}tag"}).as_integer() == 0);
  CHECK(conn.command({"EXISTS", "{t}kept"}).as_integer() == 1);
  CHECK(store.invalidate(cachet::InvalidationTargets{}).deleted == 0);
}

TEST_CASE("RedisStore::incr counts from 0 and get reads the counter") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  CHECK(store.incr("c") == 1);
  CHECK(store.incr("c") == 2);
  CHECK(store.get("c") == "2");
  store.set("text", "x", 60s);
  CHECK_THROWS_AS(store.incr("text"), cachet::ReplyError);  // not an integer: the server's error
}

TEST_CASE("RedisStore::set_tagged writes the value and tags it, set_tagged_many pipelines plain tagged writes") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  const std::vector<std::string> sets{"{t}tag:x", "{t}tag:y"};
  store.set_tagged("{t}v", "bytes", 60s, sets, 3);
  CHECK(store.get("{t}v") == "bytes");
  CHECK(conn.command({"PTTL", "{t}v"}).as_integer() > 59'000);
  for (const std::string& set : sets) {
    CHECK(conn.command({"SISMEMBER", set, "{t}v"}).as_integer() == 1);
    CHECK(conn.command({"PTTL", set}).as_integer() > 59'000);  // raised to the value's
  }
  CHECK_THROWS_AS(store.set_tagged("{t}w", "bytes", 0ms, sets, 3), std::invalid_argument);
  CHECK_FALSE(store.get("{t}w"));

  const std::vector<std::string> only_x{"{t}tag:x"};
  const std::vector<cachet::StoreWrite> writes{{"{t}m1", "1", 60s, only_x, 0}, {"{t}m2", "2", 60s, sets, 0}};
  store.set_tagged_many(writes);
  CHECK(store.get("{t}m1") == "1");
  CHECK(store.get("{t}m2") == "2");
  CHECK(conn.command({"SCARD", "{t}tag:x"}).as_integer() == 3);
  CHECK(conn.command({"SCARD", "{t}tag:y"}).as_integer() == 2);

  // A lock check it would not run is refused, not ignored: nothing is written.
  const cachet::LockCheck lock{"{t}lock", "token", false, ""};
  cachet::StoreWrite locked{"{t}m3", "3", 60s, only_x, 0};
  locked.lock_check = &lock;
  CHECK_THROWS_AS(store.set_tagged_many({&locked, 1}), std::invalid_argument);
  CHECK_FALSE(store.get("{t}m3"));
}

TEST_CASE("RedisStore::prune_tag_set removes the members that are gone, within a budget, resumably") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  std::vector<std::string_view> argv{"SADD", "{p}tag"};
  std::vector<std::string> members;
  for (int i = 0; i < 40; ++i) members.push_back("{p}m" + std::to_string(i));
  argv.insert(argv.end(), members.begin(), members.end());
  conn.command(argv);
  for (int i = 0; i < 40; i += 4) conn.command({"SET", members[i], "live"});  // 10 live, 30 gone

  cachet::PruneResult total;
  std::size_t steps = 0;
  do {
    const cachet::PruneResult step = store.prune_tag_set("{p}tag", 8, total.cursor);
    CHECK(step.examined <= 8 + 10);  // SSCAN's COUNT is a hint: a page may hold a few more
    total.examined += step.examined;
    total.removed += step.removed;
    total.cursor = step.cursor;
    ++steps;
  } while (!total.done() && steps < 100);
  CHECK(total.done());
  CHECK(steps > 1);
  CHECK(total.removed == 30);
  CHECK(conn.command({"SCARD", "{p}tag"}).as_integer() == 10);
  CHECK(store.prune_tag_set("{p}none").examined == 0);
}

TEST_CASE("RedisStore::unlink_matching deletes by pattern in SCAN batches, reporting progress") {
  auto& server = cachet::test::clean_target();
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
  CHECK(conn.key_count() == 1);
  CHECK(cachet::test::command_calls(conn, "keys") == 0);
  CHECK(cachet::test::command_calls(conn, "scan") == static_cast<long long>(calls));
  CHECK(store.unlink_matching("p:*") == 0);
}

namespace {
using cachet::LockCheck;
using cachet::StoreWrite;
using cachet::VersionCheck;
using cachet::WriteResult;
}  // namespace

TEST_CASE("RedisStore::write: a plain write is a SET, a conditional one a script") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  conn.command({"CONFIG", "RESETSTAT"});
  CHECK(store.write({.key = "k", .bytes = "v", .ttl = 60s}) == WriteResult::written);
  CHECK(conn.command({"GET", "k"}).as_string() == "v");
  CHECK(cachet::test::command_calls(conn, "set") == 1);
  CHECK(cachet::test::command_calls(conn, "evalsha") == 0);
  const std::vector<std::string> sets{"{k}tag:a"};
  CHECK(store.write({.key = "k", .bytes = "w", .ttl = 60s, .tag_sets = sets}) == WriteResult::written);
  CHECK(cachet::test::command_calls(conn, "evalsha") == 1);
  CHECK(conn.command({"SISMEMBER", "{k}tag:a", "k"}).as_integer() == 1);
  CHECK(conn.command({"PTTL", "{k}tag:a"}).as_integer() > 59'000);
}

TEST_CASE("RedisStore::write with a lock check: written only while the token holds the lock") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  conn.command({"SET", "{k}lock", "mine"});
  const LockCheck theirs{"{k}lock", "theirs"}, mine{"{k}lock", "mine"}, releasing{"{k}lock", "mine", true, "released"};
  CHECK(store.write({.key = "k", .bytes = "x", .ttl = 60s, .lock_check = &theirs}) == WriteResult::lock_lost);
  CHECK(conn.command({"EXISTS", "k"}).as_integer() == 0);
  CHECK(store.write({.key = "k", .bytes = "a", .ttl = 60s, .lock_check = &mine}) == WriteResult::written);
  CHECK(conn.command({"GET", "{k}lock"}).as_string() == "mine");  // kept: no release asked
  CHECK(store.write({.key = "k", .bytes = "b", .ttl = 60s, .lock_check = &releasing}) == WriteResult::written);
  CHECK(conn.command({"GET", "k"}).as_string() == "b");
  CHECK(conn.command({"EXISTS", "{k}lock"}).as_integer() == 0);  // released with the write
}

TEST_CASE("RedisStore::write with a version check: an older version is refused") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  const std::string v5 = cachet::version_text(5), v3 = cachet::version_text(3), v7 = cachet::version_text(7);
  const VersionCheck five{"{k}wv", v5, 60s}, three{"{k}wv", v3, 60s}, deleting{"{k}wv", v7, 60s, true};
  CHECK(store.write({.key = "k", .bytes = "five", .ttl = 60s, .version_check = &five}) == WriteResult::written);
  CHECK(store.write({.key = "k", .bytes = "three", .ttl = 60s, .version_check = &three}) == WriteResult::superseded);
  CHECK(conn.command({"GET", "k"}).as_string() == "five");
  CHECK(store.write({.key = "k", .ttl = 60s, .version_check = &deleting}) == WriteResult::written);
  CHECK(conn.command({"EXISTS", "k"}).as_integer() == 0);
  CHECK(conn.command({"GET", "{k}wv"}).as_string() == v7);
  const VersionCheck bump{"{j}wv", cachet::bump_version, 60s};  // an unversioned put: never refused, moves the version
  CHECK(store.write({.key = "j", .bytes = "a", .ttl = 60s, .version_check = &bump}) == WriteResult::written);
  CHECK(store.write({.key = "j", .bytes = "b", .ttl = 60s, .version_check = &bump}) == WriteResult::written);
  CHECK(conn.command({"GET", "j"}).as_string() == "b");
}

TEST_CASE("RedisStore::write with a watch: refused once the watched key moved") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  CHECK(store.write({.key = "k", .bytes = "a", .ttl = 60s, .watch = "{k}wv"}) == WriteResult::written);  // absent, as seen
  conn.command({"SET", "{k}wv", "1"});
  CHECK(store.write({.key = "k", .bytes = "b", .ttl = 60s, .watch = "{k}wv"}) == WriteResult::superseded);
  CHECK(store.write({.key = "k", .bytes = "c", .ttl = 60s, .watch = "{k}wv", .seen = "0"}) == WriteResult::superseded);
  CHECK(store.write({.key = "k", .bytes = "d", .ttl = 60s, .watch = "{k}wv", .seen = "1"}) == WriteResult::written);
  CHECK(conn.command({"GET", "k"}).as_string() == "d");
}

TEST_CASE("RedisStore::write with an invalidation: one MULTI/EXEC, invalidating first, even after SCRIPT FLUSH") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  for (bool flushed : {false, true}) {
    conn.command({"SET", "{k}other", "x"});
    conn.command({"SET", "k", "old"});
    conn.command({"SADD", "{k}tag:t", "k", "{k}member"});
    conn.command({"SET", "{k}member", "m"});
    if (flushed) conn.command({"SCRIPT", "FLUSH"});  // a restart's NOSCRIPT, inside the transaction
    conn.command({"CONFIG", "RESETSTAT"});
    const cachet::InvalidationTargets targets{{"{k}tag:t"}, {"{k}other", "k"}, {"{k}ns:version"}};
    const std::vector<std::string> sets{"{k}tag:t"};  // the new value is tagged after the old set went
    cachet::InvalidationResult invalidated;
    CHECK(store.write({.key = "k", .bytes = "new", .ttl = 60s, .tag_sets = sets, .invalidation = &targets},
                      &invalidated) == WriteResult::written);
    CHECK(invalidated.deleted == 3);  // k and member (the tag's), other
    CHECK(invalidated.versions == std::vector<std::uint64_t>{flushed ? 2u : 1u});
    CHECK(conn.command({"GET", "k"}).as_string() == "new");
    CHECK(conn.command({"EXISTS", "{k}other", "{k}member"}).as_integer() == 0);
    CHECK(conn.command({"SMEMBERS", "{k}tag:t"}).size() == 1);
    CHECK(cachet::test::command_calls(conn, "exec") == 1);  // scripts go by EVAL: never run twice
    CHECK(cachet::test::command_calls(conn, "evalsha") == 0);
  }
}

TEST_CASE("RedisStore::write_many: one pipeline of SETs and scripts, refusals counted") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  conn.command({"SET", "{fenced}lock", "theirs"});
  conn.command({"SET", "{s}wv", "9"});
  conn.command({"SET", "{refused}not-a-set", "x"});
  const LockCheck lost{"{fenced}lock", "mine"};
  const std::vector<std::string> warm_sets{"{warm}tag"}, sets{"{tagged}tag"}, wrong{"{refused}not-a-set"};
  REQUIRE(store.write({.key = "warm", .bytes = "w", .ttl = 60s, .tag_sets = warm_sets}) == WriteResult::written);
  conn.command({"SCRIPT", "FLUSH"});  // the script, known to this process, answers NOSCRIPT: run again by EVAL
  conn.command({"CONFIG", "RESETSTAT"});
  const std::vector<StoreWrite> writes{
      {.key = "plain", .bytes = "p", .ttl = 60s},
      {.key = "tagged", .bytes = "t", .ttl = 60s, .tag_sets = sets},
      {.key = "fenced", .bytes = "f", .ttl = 60s, .lock_check = &lost},
      {.key = "s", .bytes = "s", .ttl = 60s, .watch = "{s}wv", .seen = "8"},
      {.key = "refused", .bytes = "r", .ttl = 60s, .tag_sets = wrong},
  };
  const cachet::BatchWriteResult r = store.write_many(writes);
  CHECK(r.lock_lost == 1);
  CHECK(r.superseded == 1);
  CHECK(r.failed == 1);
  CHECK(r.first_error.find("WRONGTYPE") != std::string::npos);
  CHECK(conn.command({"GET", "plain"}).as_string() == "p");
  CHECK(conn.command({"GET", "tagged"}).as_string() == "t");
  CHECK(conn.command({"SISMEMBER", "{tagged}tag", "tagged"}).as_integer() == 1);
  CHECK(conn.command({"EXISTS", "fenced"}).as_integer() + conn.command({"EXISTS", "s"}).as_integer() == 0);
  CHECK(cachet::test::command_calls(conn, "eval") == 4);  // the NOSCRIPT ones, again

  const cachet::InvalidationTargets targets{{}, {"plain"}, {}};
  const std::vector<StoreWrite> invalidating{{.key = "k", .bytes = "v", .ttl = 60s, .invalidation = &targets}};
  CHECK_THROWS_AS(store.write_many(invalidating), std::invalid_argument);
  CHECK(store.write_many({}).failed == 0);
}

TEST_CASE("RedisStore::invalidate and incr") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  auto conn = server.connect();
  conn.command({"SET", "{t}a", "1"});
  conn.command({"SADD", "{t}tag", "{t}b"});
  conn.command({"SET", "{t}b", "2"});
  const cachet::InvalidationResult r = store.invalidate({{"{t}tag"}, {"{t}a", "{t}gone"}, {"{t}c"}});
  CHECK(r.deleted == 2);
  CHECK(r.versions == std::vector<std::uint64_t>{1});
  CHECK(store.invalidate({}).deleted == 0);
  CHECK(store.incr("seq") == 1);
  CHECK(store.incr("seq") == 2);
}

TEST_CASE("a scanned cluster layout counts only masters' own slots, and survives a hostile CLUSTER NODES") {
  using cachet::detail::masters_own_assigned_slots;
  CHECK(masters_own_assigned_slots("a myself,master 1 0-8191\nb myself,master 2 8192-16383\n", 16384));
  CHECK_FALSE(masters_own_assigned_slots("a myself,master 1 0-8191\n", 16384));  // a master the pool missed
  CHECK(masters_own_assigned_slots("a myself,master 1 0-8191\n", 8192));         // the rest left unassigned
  CHECK_FALSE(masters_own_assigned_slots("a myself,slave 1 0-16383\n", 16384));  // demoted since
  CHECK_FALSE(masters_own_assigned_slots("a myself,master 1 [0->-b] 1-16383\n", 16384));  // migrating is not owned
  CHECK_FALSE(masters_own_assigned_slots("a myself,master 1 x -5 99999999999999999999 3- -\n", 16384));
  CHECK_FALSE(masters_own_assigned_slots("a myself,master 1 0-100 50-60 0-100\n", 102));  // overlaps count once
  std::string repeated = "a myself,master 1";
  for (int i = 0; i < 100'000; ++i) repeated += " 0-16383";
  CHECK(masters_own_assigned_slots(repeated, 16384));  // merged, not walked slot by slot
  CHECK(masters_own_assigned_slots("", 0));
}
