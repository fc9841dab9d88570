// examples/write_behind must not terminate on a Redis error: its server stops
// answering (SIGSTOP) for a second while the viewers run, with a 100 ms command
// timeout, and the example still exits 0, having reported the views that failed.
// The example's path is CACHET_WRITE_BEHIND_EXAMPLE.

#include <cachet/testing/redis_server.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

TEST_CASE("write_behind rides out a server that stops answering mid-run") {
  cachet::testing::RedisServer server;
  const std::string command = std::string(CACHET_WRITE_BEHIND_EXAMPLE) + " --socket " + server.socket_path() +
                              " --command-timeout 100 --threads 4 --interval 20 --views " +
                              std::to_string(cachet::test::sized(200'000, 50'000)) + " 2>&1";
  FILE* out = ::popen(command.c_str(), "r");
  REQUIRE(out != nullptr);
  std::string output;
  char line[4096];
  bool stopped = false;
  while (std::fgets(line, sizeof line, out)) {
    output += line;
    if (!stopped && std::string(line).rfind("viewing:", 0) == 0) {  // the viewers are starting
      ::kill(server.pid(), SIGSTOP);
      std::this_thread::sleep_for(std::chrono::seconds(1));  // the outage, ten command timeouts long
      ::kill(server.pid(), SIGCONT);
      stopped = true;
    }
  }
  const int status = ::pclose(out);
  INFO(output);
  REQUIRE(stopped);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(output.find("views failed") != std::string::npos);  // the outage was seen, and handled
  CHECK(output.find("terminate called") == std::string::npos);
}
