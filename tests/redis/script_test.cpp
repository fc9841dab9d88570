#include <cachet/redis/script.hpp>
#include <cachet/redis/script_batch.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace {
const cachet::Script compare_and_delete(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua");
}  // namespace

TEST_CASE("a script runs by EVALSHA with KEYS and ARGV") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  conn.command({"SET", "lock", "token-a"});
  CHECK(compare_and_delete.run(conn, {"lock"}, {"token-b"}).as_integer() == 0);
  CHECK(conn.command({"EXISTS", "lock"}).as_integer() == 1);
  CHECK(compare_and_delete.run(conn, {"lock"}, {"token-a"}).as_integer() == 1);
  CHECK(conn.command({"EXISTS", "lock"}).as_integer() == 0);

  const std::string sha(compare_and_delete.sha(conn));
  CHECK(sha.size() == 40);
  auto exists = conn.command({"SCRIPT", "EXISTS", sha});
  CHECK(exists[0].as_integer() == 1);
  // Both runs went by EVALSHA, none by EVAL.
  CHECK(cachet::test::command_calls(conn, "evalsha") == 2);
  CHECK(cachet::test::command_calls(conn, "eval") == 0);
}

TEST_CASE("a script survives SCRIPT FLUSH and a server restart (NOSCRIPT fallback)") {
  cachet::testing::RedisServer server;
  cachet::Connection conn(server.connection_options());
  const cachet::Script echo("return ARGV[1]");
  CHECK(echo.run(conn, {}, {"one"}).as_string() == "one");

  conn.command({"SCRIPT", "FLUSH"});
  CHECK(echo.run(conn, {}, {"two"}).as_string() == "two");
  // The fallback re-cached it, so EVALSHA works directly again.
  CHECK(conn.command({"EVALSHA", echo.sha(conn), 0, "three"}).as_string() == "three");

  server.restart();
  conn.close();
  CHECK(echo.run(conn, {}, {"four"}).as_string() == "four");
}

TEST_CASE("keys and arguments from ranges, binary safe") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  const cachet::Script mset_all(R"lua(
for i, k in ipairs(KEYS) do redis.call('SET', k, ARGV[i]) end
return #KEYS
)lua");
  std::vector<std::string> keys, values;
  for (int i = 0; i < 40; ++i) {
    keys.push_back("k\r\n " + std::to_string(i));
    values.push_back(std::string("v\0", 2) + std::to_string(i));
  }
  CHECK(mset_all.run(conn, keys, values).as_integer() == 40);
  CHECK(conn.command({"GET", keys[39]}).as_string() == values[39]);
}

TEST_CASE("an error raised by a script is a ReplyError") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  const cachet::Script failing("return redis.error_reply('CACHET custom failure')");
  try {
    failing.run(conn);
    FAIL("the script's error was not reported");
  } catch (const cachet::ReplyError& e) {
    CHECK(e.code() == "CACHET");
  }
  const cachet::Script broken("this is not lua");
  CHECK_THROWS_AS(broken.run(conn), cachet::ReplyError);
}

TEST_CASE("ScriptBatch::atomically runs every script of a transaction, whichever the server knows") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  const cachet::Script incr("return redis.call('INCR', KEYS[1])");
  const cachet::Script echo("return ARGV[1]");
  std::vector<std::string_view> incr_argv{"", "", "1", "n"}, echo_argv{"", "", "0", "x"};

  SECTION("every script missing (SCRIPT FLUSH): each runs, once") {
    (void)incr.sha(conn), (void)echo.sha(conn);  // known to the process, then flushed from the server
    conn.command({"SCRIPT", "FLUSH"});
    cachet::ScriptBatch batch(conn);
    const cachet::Reply r = batch.add(incr, incr_argv).add(echo, echo_argv).atomically();
    CHECK(r[0].as_integer() == 1);
    CHECK(r[1].as_string() == "x");
    CHECK(conn.command({"GET", "n"}).as_string() == "1");
  }
  SECTION("one missing (a restarted or promoted server): no half-run transaction, each effect once") {
    (void)echo.sha(conn);
    conn.command({"SCRIPT", "FLUSH"});
    (void)incr.sha(conn);
    conn.command({"SCRIPT", "LOAD", incr.source()});  // the INCR script is on the server, the echo is not
    cachet::ScriptBatch batch(conn);
    const cachet::Reply r = batch.add(incr, incr_argv).add(echo, echo_argv).atomically();
    CHECK(r[0].as_integer() == 1);
    CHECK(r[1].as_string() == "x");
    CHECK(conn.command({"GET", "n"}).as_string() == "1");
  }
}

TEST_CASE("ScriptBatch::then's command follows every call that ran, a NOSCRIPT re-run included") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  const cachet::Script incr("return redis.call('INCR', KEYS[1])");
  std::vector<std::string_view> incr_argv{"", "", "1", "n"};
  const bool transaction = GENERATE(false, true);
  const bool flushed = GENERATE(false, true);
  (void)incr.sha(conn);  // known to the process; flushed from the server, it is re-run after NOSCRIPT
  if (flushed) conn.command({"SCRIPT", "FLUSH"});
  cachet::ScriptBatch batch(conn);
  batch.add(incr, incr_argv).then({"GET", "n"});  // answers what the script did only when sent after it
  if (transaction) CHECK(batch.atomically()[0].as_integer() == 1);
  else CHECK(batch.pipelined()[0].as_integer() == 1);
  CHECK(batch.then_reply().as_string() == "1");
  CHECK(conn.command({"PING"}).as_status() == "PONG");  // nothing left unread
}

TEST_CASE("ScriptBatch::then_reply without a then() command is a logic_error, not a crash") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  const cachet::Script incr("return redis.call('INCR', KEYS[1])");
  std::vector<std::string_view> incr_argv{"", "", "1", "n"};
  cachet::ScriptBatch batch(conn);
  batch.add(incr, incr_argv);
  CHECK_THROWS_AS(batch.then_reply(), std::logic_error);  // not run yet
  CHECK(batch.pipelined()[0].as_integer() == 1);
  CHECK_THROWS_AS(batch.then_reply(), std::logic_error);  // ran, but no then()
}
