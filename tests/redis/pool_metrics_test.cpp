// A pool's figures in the Prometheus exposition, next to the caches'.
#include <cachet/redis/pool.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>

#include <chrono>
#include <future>
#include <optional>
#include <string>

using namespace std::chrono_literals;
using cachet::test::eventually;

namespace {

// The value of the series `series` (name and labels, as written) in the global exposition.
std::optional<std::string> scraped(const std::string& series) {
  const std::string text = cachet::MetricsRegistry::global().prometheus();
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return std::nullopt;
  const auto from = at + series.size() + 2;
  return text.substr(from, text.find('\n', from) - from);
}

std::string series(const std::string& family, const std::string& pool, const std::string& state = {}) {
  return family + "{pool=\"" + pool + "\"" + (state.empty() ? "" : ",state=\"" + state + "\"") + "}";
}

}  // namespace

TEST_CASE("a pool's figures are exported and move: in use, idle, waits, wait time, timeouts, discarded") {
  auto& server = cachet::test::server();
  auto figure = [](const std::string& family, const std::string& state = {}) {
    return scraped(series(family, "held", state)).value_or("absent");
  };
  std::optional<cachet::Pool> pool(std::in_place, server.connection_options(),
                                   cachet::PoolOptions{.size = 1, .wait_timeout = 5s, .metrics_label = "held"});
  CHECK(figure("cachet_pool_connections", "in_use") == "0");
  CHECK(figure("cachet_pool_connections", "idle") == "1");  // the connection `verify` opened
  CHECK(figure("cachet_pool_waits_total") == "0");
  CHECK(figure("cachet_pool_wait_seconds_total") == "0");

  std::optional<cachet::Pool::Lease> held(pool->acquire());
  CHECK(figure("cachet_pool_connections", "in_use") == "1");
  CHECK(figure("cachet_pool_connections_created_total") == "1");

  // A second caller waits for the one connection, and gets it once it is given back.
  auto waiter = std::async(std::launch::async, [&] { return pool->acquire(60s)->command({"PING"}).is_status(); });
  REQUIRE(eventually([&] { return figure("cachet_pool_waiting") == "1"; }, 60s));
  held.reset();
  CHECK(waiter.get());
  CHECK(figure("cachet_pool_waiting") == "0");
  CHECK(figure("cachet_pool_waits_total") == "1");
  CHECK(figure("cachet_pool_wait_seconds_total") != "0");
  CHECK(figure("cachet_pool_connections", "idle") == "1");

  // With the connection held, a caller that waits too little times out.
  held.emplace(pool->acquire());
  CHECK_THROWS_AS(pool->acquire(1ms), cachet::PoolTimeoutError);
  CHECK(figure("cachet_pool_timeouts_total") == "1");
  held->discard();
  held.reset();
  CHECK(figure("cachet_pool_connections_discarded_total") == "1");
  CHECK(figure("cachet_pool_connections", "in_use") == "0");

  pool.reset();  // a pool that is gone leaves the exposition
  CHECK(figure("cachet_pool_connections", "in_use") == "absent");
}

TEST_CASE("pools with one label are one series, summed, and the default label is the server's address") {
  auto& server = cachet::test::server();
  cachet::Pool a(server.connection_options(), {.metrics_label = "shared"});
  cachet::Pool b(server.connection_options(), {.metrics_label = "shared"});
  auto la = a.acquire();
  auto lb = b.acquire();
  CHECK(scraped(series("cachet_pool_connections", "shared", "in_use")) == "2");
  CHECK(scraped(series("cachet_pool_connections_created_total", "shared")) == "2");

  cachet::Pool unnamed(server.connection_options());
  const auto& o = server.connection_options();
  const std::string address = o.path.empty() ? o.host + ":" + std::to_string(o.port) : o.path;
  CHECK(scraped(series("cachet_pool_connections", address, "idle")).has_value());
}

TEST_CASE("a pool label that is not valid UTF-8 is refused when the pool is made") {
  auto& server = cachet::test::server();
  CHECK_THROWS_AS(cachet::Pool(server.connection_options(), {.metrics_label = "bad\xC3"}), cachet::MetricsLabelError);
  CHECK(cachet::MetricsRegistry::global().prometheus().find("bad") == std::string::npos);
}
