#include <cachet/invalidation/dependencies.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

struct Catalog {
  cachet::Pool& pool;
  cachet::KeyBuilder keys{"shop"};
  cachet::Tags tags{pool, keys};
  cachet::NamespaceVersions versions{pool, keys, {.cache_for = 1h}};
  cachet::DependencyMap deps{tags, &versions};

  explicit Catalog(cachet::Pool& p) : pool(p) {
    // A product's change invalidates its own entry, the pages tagged with it, and every
    // cached product listing (a versioned namespace).
    deps.on("product", [this](std::string_view id) {
      return cachet::Targets{.keys = {keys.value("product", id)},
                             .tags = {"product:" + std::string(id)},
                             .namespaces = {"listing"}};
    });
    deps.on("product", [this](std::string_view id) {  // a second rule adds up
      return cachet::Targets{.keys = {keys.value("price", id)}};
    });
  }
};

}  // namespace

// Tags' raw set_tagged (a ConfigError on a cluster without HashTag::ns) and one script over
// keys in different slots (a CrossSlotError there); cluster_tags_test covers a DependencyMap's tags there.
TEST_CASE("invalidate_for removes the keys, the tagged values and bumps the namespaces of an entity", "[single-server]") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  Catalog c(pool);
  conn.command({"SET", "shop:product:42", "p42"});
  conn.command({"SET", "shop:product:43", "p43"});
  conn.command({"SET", "shop:price:42", "9.99"});
  c.tags.set_tagged("shop:page:home", "html", 60s, {"product:42", "product:7"});
  c.tags.set_tagged("shop:page:about", "html", 60s, {"product:7"});
  const std::string listing_key = c.versions.value_key("listing", "all");
  REQUIRE(listing_key == "shop:listing:v0:all");
  conn.command({"SET", listing_key, "[42, 43]"});
  conn.command({"CONFIG", "RESETSTAT"});

  const cachet::InvalidationReport r = c.deps.invalidate_for("product", "42");

  CHECK(r.deleted == 3);  // product:42, price:42, page:home
  CHECK(r.tags == 1);
  CHECK(r.namespaces == 1);
  CHECK(conn.command({"EXISTS", "shop:product:42", "shop:price:42", "shop:page:home"}).as_integer() == 0);
  CHECK(conn.command({"EXISTS", "shop:product:43", "shop:page:about"}).as_integer() == 2);
  CHECK(c.versions.current("listing") == 1);  // seen at once, despite the hour of caching
  CHECK(c.versions.value_key("listing", "all") != listing_key);
  // One round trip: the script (its UNLINKs and INCR run inside it, on the server).
  CHECK(cachet::test::command_calls(conn, "evalsha") + cachet::test::command_calls(conn, "eval") == 1);
}

// One script over keys in different slots: refused on a cluster (CrossSlotError).
TEST_CASE("invalidate_for takes an integral id, as the rules see its digits", "[single-server]") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  Catalog c(pool);
  conn.command({"SET", "shop:product:42", "p42"});
  conn.command({"SET", "shop:price:-7", "1.50"});

  const std::int64_t id = 42;  // a row's key, as the README's Product has it
  CHECK(c.deps.invalidate_for("product", id).deleted == 1);
  CHECK(c.deps.invalidate_for("product", -7).deleted == 1);
  CHECK(conn.command({"EXISTS", "shop:product:42", "shop:price:-7"}).as_integer() == 0);
}

TEST_CASE("targets_for gathers every rule of an entity") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  Catalog c(pool);
  const cachet::Targets t = c.deps.targets_for("product", "7");
  CHECK(t.keys == std::vector<std::string>{"shop:product:7", "shop:price:7"});
  CHECK(t.tags == std::vector<std::string>{"product:7"});
  CHECK(t.namespaces == std::vector<std::string>{"listing"});
  CHECK(c.deps.targets_for("order", "7").keys.empty());
}

TEST_CASE("an undeclared entity, or namespaces without versions, are errors, not silent no-ops") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::Tags tags(pool, cachet::KeyBuilder("shop"));
  cachet::DependencyMap deps(tags);
  deps.on("product", [](std::string_view) { return cachet::Targets{.namespaces = {"listing"}}; });
  CHECK_THROWS_AS(deps.invalidate_for("prodcut", "42"), std::invalid_argument);
  CHECK_THROWS_AS(deps.invalidate_for("product", "42"), std::invalid_argument);
}

// Its own server, killed: the same on either target.
TEST_CASE("a failed invalidation throws", "[single-server]") {
  cachet::testing::RedisServer own;
  cachet::Pool pool(cachet::test::quick_to_fail(own));
  Catalog c(pool);
  c.deps.invalidate_for("product", "1");  // works while Redis is up
  own.kill();
  CHECK_THROWS_AS(c.deps.invalidate_for("product", "1"), cachet::ConnectionError);
}
