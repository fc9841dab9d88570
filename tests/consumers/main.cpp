// A user's program: links cachet::cachet only, and talks to a throwaway server.
#include <cachet/cachet.hpp>
#include <cachet/testing/redis_server.hpp>

#include <iostream>

int main() {
  cachet::testing::RedisServer server;
  cachet::Pool pool(server.connection_options());
  pool.with([](cachet::Connection& c) { c.command({"SET", "greeting", "hello"}); });
  const auto value = pool.with([](cachet::Connection& c) { return std::string(c.command({"GET", "greeting"}).as_string()); });
  if (value != "hello") return 1;
  std::cout << "consumer ok (cachet " << cachet::version << ")\n";
  return 0;
}
