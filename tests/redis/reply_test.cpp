#include <cachet/redis/connection.hpp>
#include <cachet/redis/reply.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>

#include <string>
#include <type_traits>
#include <vector>

TEST_CASE("typed accessors read what the server sent") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);

  auto status = conn.command({"SET", "s", "text"});
  CHECK(status.type() == cachet::ReplyType::status);
  CHECK(status.as_status() == "OK");

  auto str = conn.command({"GET", "s"});
  CHECK(str.is_string());
  CHECK(str.as_string() == "text");
  CHECK(str.as_optional_string() == std::optional<std::string_view>("text"));

  auto nil = conn.command({"GET", "missing"});
  CHECK(nil.is_nil());
  CHECK_FALSE(nil.as_optional_string().has_value());

  auto integer = conn.command({"INCRBY", "n", 41});
  CHECK(integer.as_integer() == 41);

  conn.command({"RPUSH", "l", "a", "b", "c"});
  auto array = conn.command({"LRANGE", "l", 0, -1});
  REQUIRE(array.size() == 3);
  std::vector<std::string> items;
  for (cachet::ReplyView e : array) items.emplace_back(e.as_string());
  CHECK(items == std::vector<std::string>{"a", "b", "c"});

  auto empty = conn.command({"LRANGE", "nothing", 0, -1});
  CHECK(empty.size() == 0);
  CHECK(empty.begin() == empty.end());
}

TEST_CASE("accessing a reply as the wrong type throws ReplyTypeError") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  auto integer = conn.command({"INCR", "n"});
  CHECK_THROWS_AS(integer.as_string(), cachet::ReplyTypeError);
  CHECK_THROWS_AS(integer.as_status(), cachet::ReplyTypeError);
  CHECK_THROWS_AS(integer.size(), cachet::ReplyTypeError);
  CHECK_THROWS_AS(integer.error_message(), cachet::ReplyTypeError);
  CHECK_THROWS_WITH(integer.as_string(), "redis reply: expected string, got integer");

  auto nil = conn.command({"GET", "missing"});
  CHECK_THROWS_AS(nil.as_string(), cachet::ReplyTypeError);
  CHECK_THROWS_AS(nil.as_integer(), cachet::ReplyTypeError);

  auto array = conn.command({"LRANGE", "nothing", 0, -1});
  CHECK_THROWS_AS(array[0], cachet::ReplyTypeError);
}

TEST_CASE("an error reply read through an accessor throws the server's ReplyError") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  conn.command({"LPUSH", "list", "x"});
  conn.append({"GET", "list"});
  auto err = conn.read_reply();  // pipelined replies are returned, not thrown
  REQUIRE(err.is_error());
  CHECK(err.error_message().substr(0, 9) == "WRONGTYPE");
  CHECK_THROWS_AS(err.as_string(), cachet::ReplyError);
  CHECK_THROWS_AS(err.throw_if_error(), cachet::ReplyError);
}

TEST_CASE("a moved reply keeps its data") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  conn.command({"SET", "k", "value"});
  std::vector<cachet::Reply> kept;
  for (int i = 0; i < 50; ++i) kept.push_back(conn.command({"GET", "k"}));  // reallocations move them
  for (const auto& r : kept) CHECK(r.as_string() == "value");
}

TEST_CASE("string accessors on a temporary reply return owning copies") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  conn.command({"SET", "k", "kept"});
  auto owned = conn.command({"GET", "k"}).as_string();  // the Reply is gone after this line
  static_assert(std::is_same_v<decltype(owned), std::string>);
  auto maybe = conn.command({"GET", "k"}).as_optional_string();
  static_assert(std::is_same_v<decltype(maybe), std::optional<std::string>>);
  conn.command({"PING"});  // reuse the memory the temporaries held
  CHECK(owned == "kept");
  CHECK(maybe == std::optional<std::string>("kept"));

  const cachet::Reply named = conn.command({"GET", "k"});
  static_assert(std::is_same_v<decltype(named.as_string()), std::string_view>);  // no copy for a named one
  CHECK(named.as_string() == "kept");
}
