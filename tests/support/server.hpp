#pragma once
// The test binary's own redis-server, started on first use and killed at exit.

#include <cachet/redis/connection.hpp>
#include <cachet/testing/redis_server.hpp>

#include <chrono>
#include <string>

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

// `s`'s options with a short command timeout, for tests that kill their own server.
inline ConnectionOptions quick_to_fail(const testing::RedisServer& s) {
  ConnectionOptions o = s.connection_options();
  o.command_timeout = std::chrono::milliseconds(100);
  return o;
}

// How many times the server ran `command` (lower case) since the last CONFIG RESETSTAT.
inline long long command_calls(Connection& conn, const std::string& command) {
  const std::string stats = conn.command({"INFO", "commandstats"}).as_string();
  const std::string tag = "cmdstat_" + command + ":calls=";
  const auto at = stats.find(tag);
  return at == std::string::npos ? 0 : std::stoll(stats.substr(at + tag.size()));
}

}  // namespace cachet::test
