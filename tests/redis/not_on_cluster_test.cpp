// Cluster options given to the components that hold their own connections:
// the pub/sub ones (Subscriber, LockNotifier) take the seeds, Tracking follows a
// cluster Pool (and refuses bare cluster options, which have no slot map to
// follow), and the write-behind reader, not routed over a cluster yet, refuses
// with a ConfigError at construction instead of silently talking to
// 127.0.0.1:6379.
#include <cachet/redis/pool.hpp>
#include <cachet/redis/subscriber.hpp>
#include <cachet/redis/tracking.hpp>
#include <cachet/store/lock_notifier.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/store/write_queue.hpp>
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

TEST_CASE("Subscriber and LockNotifier take cluster seeds, Tracking a cluster pool, the write-behind reader refuses") {
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
  cachet::RedisWriteQueue queue(store, "{ns}:wb:{q}");
  CHECK_THROWS_AS(cachet::RedisWriteQueue::Reader(queue, "g", "c", std::chrono::milliseconds(100)),
                  cachet::ConfigError);
}

TEST_CASE("a cluster seed that is not host:port is a ConfigError for a Subscriber") {
  cachet::ConnectionOptions options;
  options.cluster.seeds = {"no-port"};
  CHECK_THROWS_AS(cachet::Subscriber(options, {}, {}), cachet::ConfigError);
}
