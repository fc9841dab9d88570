// Multi-key scripts and MULTI/EXEC refuse keys in several Redis Cluster slots
// before sending (detail::require_one_slot); batches span slots per node. Tag
// invalidation is no longer among them: on a cluster it bumps per-tag counters.

#include <cachet/detail/one_slot.hpp>
#include <cachet/invalidation/tags.hpp>
#include <cachet/limit/rate_limiter.hpp>
#include <cachet/store/counter_queue.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/testing/redis_cluster.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using cachet::detail::hash_slot;

namespace {
// The message of the CrossSlotError `f` throws ("" if none).
template <class F>
std::string cross_slot_message(F&& f) {
  try {
    f();
  } catch (const cachet::CrossSlotError& e) {
    return e.what();
  }
  return "";
}

cachet::InvalidationTargets plain_keys(std::vector<std::string> keys) {
  cachet::InvalidationTargets t;
  t.keys = std::move(keys);
  return t;
}

bool names(const std::string& message, std::string_view key) {
  return message.find("'" + std::string(key) + "'") != std::string::npos;
}
}  // namespace

TEST_CASE("require_one_slot: keys in one slot pass, keys in two slots throw naming both") {
  REQUIRE(hash_slot("a") != hash_slot("b"));
  const std::vector<std::string_view> together{"{user:1}:profile", "{user:1}:lock", "user:1"};
  CHECK_NOTHROW(cachet::detail::require_one_slot(together, "test"));
  CHECK_NOTHROW(cachet::detail::require_one_slot(std::vector<std::string>{}, "test"));

  const std::vector<std::string> apart{"a", "a", "b"};
  const std::string m = cross_slot_message([&] { cachet::detail::require_one_slot(apart, "cachet: a test"); });
  CHECK(names(m, "a"));
  CHECK(names(m, "b"));
  CHECK(m.find("cachet: a test") != std::string::npos);
  CHECK(m.find("hash tag") != std::string::npos);  // how to co-locate them
}

TEST_CASE("on one server, multi-key steps across slots keep working") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  REQUIRE_FALSE(pool.cluster());
  cachet::RedisStore store(pool);
  store.set("a", "1", 60s);
  store.set("b", "1", 60s);
  CHECK(store.invalidate(plain_keys({"a", "b"})).deleted == 2);
  const std::vector<std::string> sets{"tag:b"};
  store.set_tagged("a", "2", 60s, sets, 0);
  CHECK(store.get("a") == "2");
}

// Awaits the cluster router (Pool::cluster() is false until it lands).
TEST_CASE("on Redis Cluster, multi-key steps across slots are refused before sending, batches span nodes",
          "[cluster]") {
  cachet::testing::RedisCluster cluster;
  cachet::Pool pool(cluster.client_options());
  REQUIRE(pool.cluster());
  cachet::RedisStore store(pool);
  for (const char* key : {"a", "b", "{u}:a", "{u}:b"}) store.set(key, "1", 60s);

  const std::string m = cross_slot_message([&] { store.invalidate(plain_keys({"a", "b"})); });
  CHECK((names(m, "a") && names(m, "b")));
  const std::vector<std::string> sets{"tag:b"};
  CHECK_THROWS_AS(store.set_tagged("a", "2", 60s, sets, 0), cachet::CrossSlotError);
  CHECK(store.get("a") == "1");  // nothing was sent
  CHECK(store.get("b") == "1");
  // Tags across nodes: invalidation bumps each tag's counter on its node (0
  // values counted); raw bytes cannot carry the versions, so set_tagged is refused (ConfigError).
  cachet::Tags tags(pool, cachet::KeyBuilder("shop"));
  REQUIRE(tags.versioned());
  REQUIRE(hash_slot(tags.keys().tag_version("x")) != hash_slot(tags.keys().tag_version("y")));
  CHECK(tags.invalidate({"x", "y"}) == 0);
  // Created at a random start, not at 1: an evicted counter must not come back to an old version.
  const std::string x = store.get(tags.keys().tag_version("x")).value_or("");
  CHECK(x != "1");
  CHECK(std::stoull(x) > 2);
  CHECK_THROWS_AS(tags.set_tagged("a", "2", 60s, {"x"}), cachet::ConfigError);
  const std::vector<cachet::TaggedEntry> entries{{"a", "2", 60s, {"x"}}};
  CHECK_THROWS_AS(tags.set_tagged_many(entries), cachet::ConfigError);
  CHECK(store.get("a") == "1");
  CHECK(store.invalidate(plain_keys({"{u}:a", "{u}:b"})).deleted == 2);  // co-located by a hash tag

  auto hourly = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 5, .period = 1h}, {.name = "h", .one_slot = false});
  auto daily = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 3, .period = 24h}, {.name = "d", .one_slot = false});
  CHECK_THROWS_AS(cachet::allow_all({{hourly, "user:1"}, {daily, "10.0.0.1"}}), cachet::CrossSlotError);

  // Batches: one pipeline per node, the caller's order.
  const std::vector<std::string_view> keys{"b", "{u}:a", "a", "c"};
  const auto values = store.get_many(keys);
  CHECK(values == std::vector<std::optional<std::string>>{"1", std::nullopt, "1", std::nullopt});
  CHECK(store.del_many(keys) == 2);

  // A key of another type: a miss, as in one server's MGET, not an error later in decoding.
  pool.run("{u}:list", [](cachet::Connection& c) { c.command({"RPUSH", "{u}:list", "x"}); });
  store.set("a", "1", 60s);
  const std::vector<std::string_view> typed{"a", "{u}:list"};
  CHECK(store.get_many(typed) == std::vector<std::optional<std::string>>{"1", std::nullopt});
  const cachet::LentBytes lent = store.get_many_lent(typed);
  CHECK(lent[1] == std::nullopt);

  // RedisCounterQueue::pending reads in one MULTI: a queued MOVED (the pool's map
  // is stale after a slot moved) is followed, not an EXECABORT thrown.
  cachet::RedisCounterQueue counts(store, "{cq}:counts");
  CHECK(counts.increment("x", 3) == 3);
  const int cq_slot = static_cast<int>(hash_slot("{cq}:counts"));
  const int cq_from = cluster.master_of(cq_slot);
  for (int port : cluster.master_ports())
    if (port != cq_from) {
      cluster.move_slot(cq_slot, port);
      break;
    }
  CHECK(counts.pending("x") == 3);
}
