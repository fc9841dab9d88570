// Components that open their own connection to ConnectionOptions::host/port are
// not routed over a cluster yet: given cluster options they refuse with a
// ConfigError at construction instead of silently talking to 127.0.0.1:6379.
#include <cachet/redis/pool.hpp>
#include <cachet/redis/subscriber.hpp>
#include <cachet/redis/tracking.hpp>
#include <cachet/store/lock_notifier.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/testing/detail/free_port.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

namespace {
// A seed nobody listens on: the pool tolerates it, and nothing here connects.
cachet::ConnectionOptions cluster_options() {
  cachet::ConnectionOptions options;
  options.cluster.seeds = {"127.0.0.1:" + std::to_string(cachet::detail::free_port())};
  return options;
}
}  // namespace

TEST_CASE("Subscriber, Tracking and LockNotifier refuse cluster options") {
  const cachet::ConnectionOptions options = cluster_options();
  CHECK_THROWS_AS(cachet::Subscriber(options, {}, {}), cachet::ConfigError);
  CHECK_THROWS_AS(cachet::Tracking(options), cachet::ConfigError);
  CHECK_THROWS_AS(cachet::LockNotifier(options, "locks"), cachet::ConfigError);
  CHECK_THROWS_WITH(cachet::Tracking(options), Catch::Contains("does not run on Redis Cluster yet"));

  cachet::Pool pool(options);
  cachet::RedisStore store(pool);
  CHECK_THROWS_AS(cachet::LockNotifier(store, "locks"), cachet::ConfigError);
}
