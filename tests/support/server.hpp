#pragma once
// The test binary's own redis-server, started on first use and killed at exit.

#include <cachet/redis/connection.hpp>
#include <cachet/testing/redis_server.hpp>

namespace cachet::test {

inline testing::RedisServer& server() {
  static testing::RedisServer instance;
  return instance;
}

// The shared server, emptied, so a test case sees no keys of an earlier one.
inline testing::RedisServer& clean_server() {
  auto& s = server();
  s.connect().command({"FLUSHALL"});
  return s;
}

inline Connection connect(const testing::RedisServer& s) { return Connection(s.connection_options()); }

}  // namespace cachet::test
