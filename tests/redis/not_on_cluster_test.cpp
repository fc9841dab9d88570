// Cluster options given to the components that hold their own connections:
// the pub/sub ones (Subscriber, LockNotifier) take the seeds, and Tracking
// follows a cluster Pool (and refuses bare cluster options, which have no slot
// map to follow, with a ConfigError rather than silently talking to
// 127.0.0.1:6379).
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
// A seed nobody listens on: the pool tolerates it, and the subscribers keep trying it.
cachet::ConnectionOptions cluster_options() {
  cachet::ConnectionOptions options;
  options.cluster.seeds = {"127.0.0.1:" + std::to_string(cachet::detail::free_port())};
  return options;
}
}  // namespace

TEST_CASE("Subscriber and LockNotifier take cluster seeds, Tracking a cluster pool") {
  const cachet::ConnectionOptions options = cluster_options();
  CHECK_NOTHROW(cachet::Subscriber(options, {}, {}));
  CHECK_NOTHROW(cachet::LockNotifier(options, "locks"));
  CHECK_THROWS_WITH(cachet::Tracking(options), Catch::Contains("construct it from the cluster Pool"));

  cachet::Pool pool(options);
  cachet::RedisStore store(pool);
  CHECK_NOTHROW(cachet::LockNotifier(store, "locks"));
  {
    cachet::Tracking tracking(pool);  // no node answers: nothing may be kept
    CHECK(tracking.state() == cachet::TrackingState::connecting);
    CHECK_FALSE(tracking.sync(std::chrono::milliseconds(10)));
  }
}

TEST_CASE("a cluster seed that is not host:port is a ConfigError for a Subscriber") {
  cachet::ConnectionOptions options;
  options.cluster.seeds = {"no-port"};
  CHECK_THROWS_AS(cachet::Subscriber(options, {}, {}), cachet::ConfigError);
}

TEST_CASE("a cluster seed that is not host:port is a ConfigError naming it, the same for a Pool and a Subscriber") {
  cachet::ConnectionOptions options;
  options.cluster.seeds = {"127.0.0.1:1", "no-port"};
  const std::string expected = "redis cluster: seed \"no-port\" is not host:port (ClusterOptions::seeds)";
  CHECK_THROWS_WITH(cachet::Pool(options), expected);
  CHECK_THROWS_WITH(cachet::Subscriber(options, {}, {}), expected);
}

TEST_CASE("a pool given both cluster seeds and a Sentinel master is a ConfigError before it connects to either") {
  cachet::ConnectionOptions options;
  options.cluster.seeds = {"127.0.0.1:" + std::to_string(cachet::detail::free_port())};
  options.sentinel.master_name = "mymaster";
  options.sentinel.sentinels = {{"127.0.0.1", cachet::detail::free_port()}};
  CHECK_THROWS_MATCHES(cachet::Pool(options), cachet::ConfigError,
                       Catch::Matchers::Message("cachet::Pool: ConnectionOptions::cluster and ::sentinel are exclusive"));
}
