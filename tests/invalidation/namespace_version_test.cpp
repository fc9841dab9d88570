#include <cachet/invalidation/namespace_version.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/errors.hpp>
#include <support/server.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("a namespace starts at version 0, and a bump here is seen here at once") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::NamespaceVersions versions(pool, cachet::KeyBuilder("shop"), {.cache_for = 1h});
  CHECK(versions.current("product") == 0);
  CHECK(versions.bump("product") == 1);
  CHECK(versions.current("product") == 1);  // despite the hour of caching
  CHECK(versions.name_prefix("product") == "shop:product:v1:");
  CHECK(versions.value_key("product", "42") == "shop:product:v1:42");
  CHECK(server.connect().command({"GET", "shop:ver:product"}).as_string() == "1");
  CHECK(versions.current("category") == 0);  // names are independent
}

TEST_CASE("the version is cached for cache_for: reads within it cost no round trip") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  cachet::NamespaceVersions versions(pool, cachet::KeyBuilder("shop"), {.cache_for = 1h});
  REQUIRE(versions.current("product") == 0);
  conn.command({"CONFIG", "RESETSTAT"});
  conn.command({"INCR", "shop:ver:product"});  // another process's bump
  int stale = 0;
  for (int i = 0; i < 1000; ++i) stale += versions.current("product") == 0;
  CHECK(stale == 1000);
  CHECK(cachet::test::command_calls(conn, "get") == 0);
}

TEST_CASE("past cache_for the version is read again") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  cachet::NamespaceVersions versions(pool, cachet::KeyBuilder("shop"), {.cache_for = 20ms});
  REQUIRE(versions.current("product") == 0);
  conn.command({"SET", "shop:ver:product", 7});
  std::this_thread::sleep_for(30ms);  // lets the cached version age past cache_for (not a timing assertion)
  CHECK(versions.current("product") == 7);
  conn.command({"SET", "shop:ver:product", 2});  // a counter reset (deleted, evicted) is followed too
  std::this_thread::sleep_for(30ms);
  CHECK(versions.current("product") == 2);
}

TEST_CASE("concurrent local bumps never move the cached version backwards") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options(), {.size = 8});
  cachet::NamespaceVersions versions(pool, cachet::KeyBuilder("shop"), {.cache_for = 1h});
  std::atomic<int> invisible{0};
  std::vector<cachet::test::Thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        const auto mine = versions.bump("product");
        if (versions.current("product") < mine) ++invisible;  // Catch2 assertions are not thread-safe
      }
    });
  for (auto& t : threads) t.join();
  CHECK(invisible == 0);
  CHECK(versions.current("product") == 1600);
}

// Forks while this process's Pool runs a thread on a cluster (its slot-map refresher): the child
// may not start threads under ThreadSanitizer. Exec'ing the bumping process would lift it.
TEST_CASE("a bump in another process is seen here within cache_for", "[single-server]") {
  auto& server = cachet::test::clean_target();
  constexpr auto cache_for = 200ms;
  cachet::Pool pool(server.connection_options());
  cachet::NamespaceVersions versions(pool, cachet::KeyBuilder("shop"), {.cache_for = cache_for});
  REQUIRE(versions.current("product") == 0);  // cached here

  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {  // the other process bumps through its own NamespaceVersions
    int code = 0;
    try {
      cachet::Pool child_pool(server.connection_options(), {.size = 1});
      cachet::NamespaceVersions child(child_pool, cachet::KeyBuilder("shop"));
      if (child.bump("product") != 1) code = 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bumping process: %s\n", e.what());
      code = 3;
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  const auto bumped = std::chrono::steady_clock::now();  // the bump completed before this

  // Every read that starts cache_for after the bump must see it; earlier ones may not.
  std::size_t stale_reads = 0;
  for (;;) {
    const auto started = std::chrono::steady_clock::now();
    const auto v = versions.current("product");
    if (started >= bumped + cache_for) {
      CHECK(v == 1);
      break;
    }
    if (v == 0) ++stale_reads;
    std::this_thread::sleep_for(1ms);
  }
  INFO(stale_reads << " reads within the bound still saw version 0");
  CHECK(versions.current("product") == 1);
}

// Its own server, killed: the same on either target.
TEST_CASE("Redis unreachable: the last known version is kept, an unknown one is an error", "[single-server]") {
  cachet::testing::RedisServer own;
  cachet::Pool pool(cachet::test::quick_to_fail(own));
  cachet::NamespaceVersions versions(pool, cachet::KeyBuilder("shop"), {.cache_for = 10ms});
  REQUIRE(versions.bump("product") == 1);
  own.kill();
  std::this_thread::sleep_for(20ms);  // past cache_for: the next read goes to Redis, which is gone
  CHECK(versions.current("product") == 1);
  CHECK_THROWS_AS(versions.current("category"), cachet::ConnectionError);
  CHECK_THROWS_AS(versions.bump("product"), cachet::ConnectionError);  // a bump that failed is never silent
}
