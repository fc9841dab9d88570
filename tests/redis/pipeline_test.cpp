#include <cachet/redis/pipeline.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>

#include <string>

TEST_CASE("a pipeline returns every reply in order") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  cachet::Pipeline p(conn);
  for (int i = 0; i < 1000; ++i) p.add({"SET", "k" + std::to_string(i), i});
  for (int i = 0; i < 1000; ++i) p.add({"GET", "k" + std::to_string(i)});
  REQUIRE(p.size() == 2000);
  auto replies = p.execute();
  REQUIRE(replies.size() == 2000);
  for (int i = 0; i < 1000; ++i) {
    CHECK(replies[static_cast<std::size_t>(i)].as_status() == "OK");
    CHECK(replies[static_cast<std::size_t>(1000 + i)].as_string() == std::to_string(i));
  }
  CHECK(p.size() == 0);
  CHECK(conn.pending() == 0);
}

TEST_CASE("an error reply in a pipeline does not hide the others") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  conn.command({"LPUSH", "list", "x"});
  cachet::Pipeline p(conn);
  p.add({"SET", "a", "1"}).add({"INCR", "list"}).add({"GET", "a"});
  auto r = p.execute();
  CHECK(r[0].as_status() == "OK");
  CHECK(r[1].is_error());
  CHECK(r[2].as_string() == "1");
  CHECK_FALSE(conn.broken());
}

TEST_CASE("an abandoned pipeline drops the connection instead of leaving replies to be misread") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  {
    cachet::Pipeline p(conn);
    p.add({"SET", "a", "1"}).add({"GET", "a"});
  }
  CHECK(conn.broken());
  CHECK(conn.pending() == 0);
  CHECK(conn.command({"ECHO", "mine"}).as_string() == "mine");
}

TEST_CASE("a pipeline on a dead server throws and leaves nothing pending") {
  cachet::testing::RedisServer server;
  cachet::Connection conn(server.connection_options());
  conn.command({"PING"});
  server.kill();
  cachet::Pipeline p(conn);
  p.add({"PING"}).add({"PING"});
  CHECK_THROWS_AS(p.execute(), cachet::ConnectionError);
  CHECK(p.size() == 0);
  CHECK(conn.pending() == 0);
  CHECK(conn.broken());
}
