#include <cachet/keys.hpp>
#include <cachet/invalidation/pattern_invalidation.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("invalidate_matching removes exactly the matching keys in SCAN batches, never with KEYS") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const cachet::KeyBuilder keys("shop");
  const std::string pattern = keys.pattern("product");  // shop:product:*
  conn.command({"DEBUG", "POPULATE", 5000, "shop:product"});  // shop:product:0 ... :4999
  conn.command({"DEBUG", "POPULATE", 300, "shop:productx"});  // shares the prefix, not the name
  conn.command({"SET", "shop:category:1", "x"});
  conn.command({"CONFIG", "RESETSTAT"});

  std::vector<std::pair<std::size_t, std::size_t>> progress;
  const std::size_t deleted = cachet::invalidate_matching(
      pool, pattern, {.batch = 500, .on_progress = [&](std::size_t m, std::size_t d) { progress.emplace_back(m, d); }});

  CHECK(deleted == 5000);
  CHECK(conn.command({"DBSIZE"}).as_integer() == 301);
  CHECK(cachet::test::command_calls(conn, "keys") == 0);
  CHECK(cachet::test::command_calls(conn, "scan") > 5);
  REQUIRE(progress.size() > 5);  // reported batch by batch
  for (std::size_t i = 1; i < progress.size(); ++i) {
    CHECK(progress[i].first >= progress[i - 1].first);
    CHECK(progress[i].second >= progress[i - 1].second);
  }
  CHECK(progress.back().second == 5000);
  CHECK(cachet::invalidate_matching(pool, pattern) == 0);
}

TEST_CASE("glob metacharacters in a name match only themselves") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const cachet::KeyBuilder keys("shop");
  conn.command({"SET", keys.value("p[1]*", "1"), "x"});
  conn.command({"SET", keys.value("p1", "1"), "x"});
  conn.command({"SET", keys.value("p1x", "1"), "x"});
  CHECK(cachet::invalidate_matching(pool, keys.pattern("p[1]*")) == 1);
  CHECK(conn.command({"DBSIZE"}).as_integer() == 2);
}

TEST_CASE("1M keys removed by pattern while a second connection PINGs: no command, so no PING, waits 10 ms") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  auto admin = server.connect();
  constexpr long long total = 1'000'000;
  admin.command({"DEBUG", "POPULATE", total, "bulk"});  // server-side fill: bulk:0 ... bulk:999999
  REQUIRE(admin.command({"DBSIZE"}).as_integer() == total);
  // A PING waits for at most the command the server is running, so the server's
  // own timing of each command is the bound; the client's round trips below
  // also count this busy machine's scheduling, so they are reported, not judged.
  admin.command({"CONFIG", "SET", "slowlog-log-slower-than", "10000"});
  admin.command({"SLOWLOG", "RESET"});

  std::atomic<bool> done{false};
  std::chrono::steady_clock::duration worst{};
  long pings = 0;
  cachet::test::Thread pinger([&] {
    auto conn = cachet::test::connect(server);
    while (!done.load()) {
      const auto sent = std::chrono::steady_clock::now();
      conn.command({"PING"});
      worst = std::max(worst, std::chrono::steady_clock::now() - sent);
      ++pings;
    }
  });
  std::size_t deleted = 0;
  try {
    deleted = cachet::invalidate_matching(pool, "bulk:*");
  } catch (...) {
    done = true;
    pinger.join();
    throw;
  }
  done = true;
  pinger.join();

  const auto worst_us = std::chrono::duration_cast<std::chrono::microseconds>(worst).count();
  INFO(pings << " PINGs, the slowest " << worst_us << " us");
  CHECK(deleted == static_cast<std::size_t>(total));
  CHECK(admin.command({"DBSIZE"}).as_integer() == 0);
  CHECK(pings > 100);  // served between the batches
  const cachet::Reply slow = admin.command({"SLOWLOG", "GET", "10"});
  std::string slowest;
  for (cachet::ReplyView entry : slow)
    slowest += std::string(entry[3][0].as_string()) + " took " + std::to_string(entry[2].as_integer()) + " us; ";
  INFO(slowest);
  CHECK(slow.size() == 0);  // no command, so no PING's wait, reached 10 ms
}
