// Write-through against a real redis-server and an SQLite file as the database.
#include <cachet/codec/string.hpp>
#include <cachet/guard/stack.hpp>
#include <cachet/invalidation/namespace_version.hpp>
#include <cachet/policy/write_through.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>
#include <support/sqlite_db.hpp>

#include <atomic>
#include <barrier>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <mutex>
#include <random>
#include <semaphore>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using cachet::Event;
using cachet::WriteOutcome;
using cachet::test::TestDb;

namespace {

constexpr int race_rounds = cachet::test::sized(10'000, 2'000);

cachet::CacheOptions options(std::string label) {
  cachet::CacheOptions o;
  o.ns = "t";
  o.name = "item";
  o.metrics_label = std::move(label);
  o.ttl = cachet::TtlPolicy({.fresh = 1min, .jitter = 0});
  return o;
}

// Writes the row and returns its new version.
struct RowWriter {
  std::string path;
  std::shared_ptr<TestDb> db = std::make_shared<TestDb>(path);
  std::int64_t operator()(std::string_view id, const std::string& value) const { return db->update(id, value); }
};

using StringCache = cachet::CacheAside<std::string, cachet::StringCodec>;
template <class W>
using Cache = cachet::WriteThrough<StringCache, W>;

// A fresh database beside the Redis of the test (its own server, or the shared target).
template <class Redis>
std::string db_path(const Redis& server) {
  return TestDb::fresh(server.directory() + "/write_through.sqlite");
}

}  // namespace

TEST_CASE("a writer that throws: the cache is untouched and the error reaches the caller") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  StringCache entries(cachet::RedisStore(pool), options("wt-throw"));
  auto cache = cachet::write_through(entries, RowWriter{path});
  REQUIRE(cache.put("1", "v1") == WriteOutcome::cached);
  CHECK(cache.get("1") == "v1");

  CHECK_THROWS_AS(cache.put("1", "poison"), sqlite::Error);  // the table's CHECK refuses it
  CHECK(cache.get("1") == "v1");
  CHECK(TestDb(path).value("1") == "v1");
  CHECK(cache.cache().metrics().value(Event::write) == 2);
  CHECK(cache.cache().metrics().value(Event::write_error) == 1);
}

// The callback runs before the writer: a put it refuses reaches neither the
// database nor Redis, and the breaker's one allowed failure is not spent on it.
TEST_CASE("a tags callback that throws reaches the caller as its own error before the database, and is no outage") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  auto o = options("wt-tags-throw");
  o.breaker = {.failure_threshold = 1, .open_for = std::chrono::hours(1)};  // one failure would open it for the test
  StringCache entries(cachet::RedisStore(pool), o);
  auto cache = cachet::write_through(entries, RowWriter{path});
  entries.tag_loaded_values([](const std::string& v) {
    if (v == "bad") throw std::domain_error("no tags for bad");
    return std::vector<std::string>{"t"};
  });
  REQUIRE(cache.put("1", "good") == WriteOutcome::cached);
  const std::string version_key = entries.keys().write_version(cache.key("1"));
  auto conn = server.connect();
  const auto version = [&] { return conn.command({"GET", version_key}).as_string(); };
  const std::string before = version();

  CHECK_THROWS_MATCHES(cache.put("1", "bad"), std::domain_error, Catch::Message("no tags for bad"));
  CHECK(TestDb(path).value("1") == "good");  // the writer never ran
  CHECK(cache.get("1") == "good");
  CHECK(version() == before);  // nor did the cache write
  CHECK(entries.breaker().state() == cachet::BreakerState::closed);
  for (Event e : {Event::redis_error, Event::redis_skipped, Event::write_error, Event::cache_write_error,
                  Event::write_unrepaired})
    CHECK(entries.metrics().value(e) == 0);

  REQUIRE(cache.put("1", "better") == WriteOutcome::cached);  // Redis still reached, the value tagged
  CHECK(TestDb(path).value("1") == "better");
  entries.invalidate_tags({"t"});  // a set's member, or on a cluster its stamp is behind the tag's version
  CHECK_FALSE(cache.get("1"));
}

// Its own server, killed or configured: the same on either target.
TEST_CASE("Redis killed: the database is written, the failure reported, and the key is absent afterwards", "[single-server]") {
  cachet::testing::RedisServer server;
  cachet::Pool pool(cachet::test::quick_to_fail(server));
  const std::string path = db_path(server);
  std::vector<std::string> reported;
  cachet::WriteThroughOptions wo;
  wo.on_unrepaired = [&](const cachet::UnrepairedWrite& u) { reported.emplace_back(u.key); };
  StringCache entries(cachet::RedisStore(pool), options("wt-killed"));
  auto cache = cachet::write_through(entries, RowWriter{path}, wo);
  REQUIRE(cache.put("1", "v1") == WriteOutcome::cached);

  server.kill();
  CHECK(cache.put("1", "v2") == WriteOutcome::unrepaired);  // the caller's write succeeded: no throw
  CHECK(TestDb(path).value("1") == "v2");
  CHECK(reported == std::vector<std::string>{cache.key("1")});
  CHECK(cache.cache().metrics().value(Event::write_unrepaired) == 1);
  CHECK(cache.cache().metrics().value(Event::cache_write_error) == 1);

  server.restart();
  CHECK(server.connect().command({"EXISTS", cache.key("1")}).as_integer() == 0);
  CHECK(cachet::test::eventually([&] {  // once the breaker lets reads through again
    return cache.get_or_load("1", [&](std::string_view id) { return *TestDb(path).value(id); }) == "v2" &&
           cache.get("1") == "v2";
  }));
}

// Its own server, killed or configured: the same on either target.
TEST_CASE("Redis refusing the write (OOM): the old value and what the write invalidates are deleted, not left stale", "[single-server]") {
  cachet::testing::RedisServer server({.config = {"maxmemory 2mb", "maxmemory-policy noeviction"}});
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  StringCache entries(cachet::RedisStore(pool), options("wt-oom"));
  auto cache = cachet::write_through(entries, RowWriter{path});
  const std::string related = cache.key("related");
  cache.invalidate_after_write([&](std::string_view, const std::string&) { return cachet::Targets{.keys = {related}}; });
  REQUIRE(cache.put("1", "v1") == WriteOutcome::cached);
  auto conn = server.connect();
  conn.command({"SET", related, "x"});
  for (int i = 0;; ++i) {
    try {
      conn.command({"SET", "filler:" + std::to_string(i), std::string(10'000, 'f')});
    } catch (const cachet::ReplyError& e) {
      REQUIRE(e.code() == "OOM");
      break;
    }
  }
  CHECK(cache.put("1", std::string(50'000, 'x')) == WriteOutcome::deleted);
  CHECK(conn.command({"EXISTS", cache.key("1")}).as_integer() == 0);
  CHECK(conn.command({"EXISTS", related}).as_integer() == 0);  // the fallback delete invalidates too
  CHECK(TestDb(path).value("1")->size() == 50'000);
  CHECK(cache.cache().metrics().value(Event::cache_write_error) == 1);
  CHECK(cache.cache().metrics().value(Event::write_unrepaired) == 0);
}

namespace {

// Two threads write one key per round; after each round the cache must hold
// what the database holds. Each round is forced to the race: the writer that
// commits first (the older row) waits after its commit until the other's put
// has returned, so the older cache write always reaches Redis last.
class OlderLast {
 public:
  // Runs `commit` (the database write, returning its version) under a lock,
  // so the first to commit is the first here; the first then waits.
  template <class Commit>
  auto commit(Commit commit) {
    bool first = false;
    auto version = [&] {
      std::lock_guard lock(mutex_);
      first = !claimed_;
      claimed_ = true;
      if (first) older_ = std::this_thread::get_id();
      return commit();
    }();
    if (first && !newer_cached_.try_acquire_for(60s)) ++stuck_;  // generous: a stuck peer fails the test, not hangs it
    return version;
  }
  // The thread's put has returned: the newer writer lets the older one go on.
  void put_returned() {
    std::lock_guard lock(mutex_);
    if (claimed_ && older_ != std::this_thread::get_id()) newer_cached_.release();
  }
  // Between rounds, when neither writer is inside put().
  void next_round() noexcept { claimed_ = false; }
  int stuck() const { return stuck_; }

 private:
  std::mutex mutex_;
  bool claimed_ = false;
  std::thread::id older_;
  std::binary_semaphore newer_cached_{0};
  std::atomic<int> stuck_{0};
};

// Returns how many cache writes were refused as older; `make_writer(path, next, order)`.
template <class MakeWriter>
long race(int rounds, MakeWriter make_writer) {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  OlderLast order;
  using W = decltype(make_writer(path, std::declval<std::function<std::uint64_t()>>(), order));
  std::unique_ptr<StringCache> entries[2];
  std::unique_ptr<Cache<W>> caches[2];
  for (int t = 0; t < 2; ++t) {
    auto next = [&caches, t] { return caches[t]->next_version(); };
    entries[t] = std::make_unique<StringCache>(cachet::RedisStore(pool), options("wt-race-" + std::to_string(t)));
    caches[t] = std::make_unique<Cache<W>>(*entries[t], make_writer(path, next, order));
  }
  TestDb check(path);
  std::atomic<long> refused{0}, wrong{0};
  auto between_rounds = [&order]() noexcept { order.next_round(); };
  std::barrier sync(2, between_rounds);
  std::vector<cachet::test::Thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < rounds; ++round) {
        const std::string id = std::to_string(round % 16);
        sync.arrive_and_wait();
        refused += caches[t]->put(id, "t" + std::to_string(t) + "-r" + std::to_string(round)) ==
                   WriteOutcome::newer_cached;
        order.put_returned();
        sync.arrive_and_wait();
        if (t == 0 && caches[0]->get(id) != check.value(id)) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(order.stuck() == 0);
  CHECK(wrong == 0);
  return refused;
}

}  // namespace

TEST_CASE("two racing writers with row versions: the cache ends with the newer version every round") {
  const long refused = race(race_rounds, [](const std::string& path, std::function<std::uint64_t()>, OlderLast& order) {
    return [db = std::make_shared<TestDb>(path), &order](std::string_view id, const std::string& v) {
      return order.commit([&] { return db->update(id, v); });
    };
  });
  CHECK(refused == race_rounds);  // every round raced, and the script refused the older write each time
}

TEST_CASE("two racing writers with versions from next_version() drawn inside the transaction") {
  const long refused = race(race_rounds, [](const std::string& path, std::function<std::uint64_t()> next, OlderLast& order) {
    return [db = std::make_shared<TestDb>(path), next, &order](std::string_view id, const std::string& v) {
      return order.commit([&] {
        std::uint64_t version = 0;
        db->transaction([&] {
          version = next();  // under the database's write lock: versions follow commit order
          db->set(id, v, static_cast<std::int64_t>(version));
        });
        return version;
      });
    };
  });
  CHECK(refused == race_rounds);
}

TEST_CASE("CacheUpdate::del deletes the key, and an older write after it is refused") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  std::int64_t next_version = 10;
  auto writer = [&](std::string_view, const std::string&) { return next_version; };
  cachet::WriteThroughOptions wo;
  wo.on_write = cachet::CacheUpdate::del;
  StringCache deleting_cache(cachet::RedisStore(pool), options("wt-del"));
  auto deleting = cachet::write_through(deleting_cache, writer, wo);
  StringCache setting_cache(cachet::RedisStore(pool), options("wt-set"));
  auto setting = cachet::write_through(setting_cache, writer);
  REQUIRE(setting.put("1", "v10") == WriteOutcome::cached);
  next_version = 11;
  CHECK(deleting.put("1", "v11") == WriteOutcome::deleted);
  CHECK_FALSE(setting.get("1"));
  next_version = 10;  // a writer that committed before, arriving late
  CHECK(setting.put("1", "v10") == WriteOutcome::newer_cached);
  CHECK_FALSE(setting.get("1"));
  CHECK(setting.cache().metrics().value(Event::stale_write_refused) == 1);
  auto conn = server.connect();
  const auto ttl = conn.command({"PTTL", setting.cache().keys().write_version(setting.key("1"))}).as_integer();
  CHECK(ttl > 60'000);  // the value's minute plus the margin's
  CHECK(ttl <= 120'000);
}

TEST_CASE("an unversioned writer: the last cache write wins, and each put bumps the write version loads watch") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  auto writer = [db = std::make_shared<TestDb>(path)](std::string_view id, const std::string& v) { db->set(id, v, 0); };
  StringCache entries(cachet::RedisStore(pool), options("wt-plain"));
  auto cache = cachet::write_through(entries, writer);
  auto conn = server.connect();
  const std::string version_key = cache.cache().keys().write_version(cache.key("1"));
  auto version = [&] { return std::stoll(std::string(conn.command({"GET", version_key}).as_string())); };
  CHECK(cache.put("1", "a") == WriteOutcome::cached);
  const long long first = version();  // started from the server's clock in microseconds
  CHECK(first > 1'700'000'000'000'000);
  CHECK(cache.put("1", "b") == WriteOutcome::cached);
  CHECK(cache.get("1") == "b");
  CHECK(version() == first + 1);
  conn.command({"DEL", version_key});  // expired, say: it never starts again below what a load may have seen
  CHECK(cache.put("1", "c") == WriteOutcome::cached);
  CHECK(version() > first + 1);
  CHECK(cachet::version_text(std::int64_t{-1}) < cachet::version_text(std::int64_t{0}));
  CHECK(cachet::version_text(std::uint64_t{9}) < cachet::version_text(std::uint64_t{10}));
}

namespace {

// A namespace on one slot, as the write's one atomic step needs on a cluster.
cachet::CacheOptions slot_options(std::string name, std::string label) {
  cachet::CacheOptions o = options(std::move(label));
  o.name = std::move(name);
  o.keys.hash_tag = cachet::HashTag::ns;
  return o;
}

}  // namespace

TEST_CASE("invalidate_after_write: keys, tags and versioned namespaces go in the same step as the cache write") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  cachet::NamespaceVersions versions(pool, cachet::KeyBuilder("t", {.hash_tag = cachet::HashTag::ns}));
  auto list_options = slot_options("list", "wt-inv-list");
  list_options.versions = &versions;
  cachet::CacheAside<std::string, cachet::StringCodec> lists(cachet::RedisStore(pool), list_options);
  cachet::CacheAside<std::string, cachet::StringCodec> categories(cachet::RedisStore(pool),
                                                                  slot_options("category", "wt-inv-cat"));
  lists.set("page:1", "products 1..20");
  categories.set("9", "chairs", {"category:9"});
  auto item_options = slot_options("item", "wt-inv");
  item_options.versions = &versions;
  StringCache items_cache(cachet::RedisStore(pool), item_options);
  auto items = cachet::write_through(items_cache, RowWriter{path});
  const std::string related = items.key("related");
  auto conn = server.connect();
  conn.command({"SET", related, "x"});
  items.cache().tag_loaded_values([](const std::string& v) { return std::vector<std::string>{"brand:" + v.substr(0, 1)}; });
  items.invalidate_after_write([&](std::string_view, const std::string&) {
    return cachet::Targets{.keys = {related}, .tags = {"category:9"}, .namespaces = {"list"}};
  });
  // Loaded here, as they would be on a server that ran them before (the process
  // learnt their SHAs from an earlier test's server: NOSCRIPT would cost a retry).
  for (const cachet::Script* script : {&cachet::detail::value_write_script(), &cachet::detail::invalidation_script()})
    conn.command({"SCRIPT", "LOAD", script->source()});
  conn.command({"CONFIG", "RESETSTAT"});

  REQUIRE(items.put("1", "a1") == WriteOutcome::cached);
  CHECK(cachet::test::command_calls(conn, "exec") == 1);  // one atomic step
  CHECK(conn.command({"EXISTS", related}).as_integer() == 0);
  CHECK_FALSE(categories.get("9"));
  CHECK_FALSE(lists.get("page:1"));  // its namespace moved on, and this process knows at once
  CHECK(items.get("1") == "a1");
  CHECK(items.cache().invalidate_tags({"brand:a"}) == 1);  // the written value was tagged by its write
  CHECK_FALSE(items.get("1"));
}

TEST_CASE("invalidate_after_write naming the written key and its own tag keeps the new value cached") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  StringCache items_cache(cachet::RedisStore(pool), slot_options("item", "wt-inv-self"));
  auto items = cachet::write_through(items_cache, RowWriter{db_path(server)});
  items.cache().tag_loaded_values([](const std::string&) { return std::vector<std::string>{"item:1"}; });
  items.invalidate_after_write([&](std::string_view id, const std::string&) {  // as a DependencyMap names an entity
    return cachet::Targets{.keys = {items.key(id)}, .tags = {"item:" + std::string(id)}};
  });
  REQUIRE(items.put("1", "a") == WriteOutcome::cached);
  REQUIRE(items.put("1", "b") == WriteOutcome::cached);
  CHECK(items.get("1") == "b");  // the old value went, the new one stays
  CHECK(items.cache().invalidate_tags({"item:1"}) == 1);  // and is a member of its tag again
}

TEST_CASE("the write and its invalidation survive a server that lost its scripts") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  StringCache items_cache(cachet::RedisStore(pool), slot_options("item", "wt-inv-noscript"));
  auto items = cachet::write_through(items_cache, RowWriter{db_path(server)});
  const std::string related = items.key("related");
  items.invalidate_after_write([&](std::string_view, const std::string&) { return cachet::Targets{.keys = {related}}; });
  REQUIRE(items.put("1", "a") == WriteOutcome::cached);
  auto conn = server.connect();
  conn.command({"SCRIPT", "FLUSH"});
  conn.command({"SET", related, "x"});
  CHECK(items.put("1", "b") == WriteOutcome::cached);  // NOSCRIPT inside EXEC: loaded and run again
  CHECK(items.get("1") == "b");
  CHECK(conn.command({"EXISTS", related}).as_integer() == 0);
}

TEST_CASE("invalidate_after_write naming namespaces without CacheOptions::versions is refused before the database") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  StringCache items_cache(cachet::RedisStore(pool), slot_options("item", "wt-inv-refused"));
  auto items = cachet::write_through(items_cache, RowWriter{path});
  items.invalidate_after_write([](std::string_view, const std::string&) { return cachet::Targets{.namespaces = {"list"}}; });
  CHECK_THROWS_AS(items.put("1", "a"), std::invalid_argument);
  CHECK_FALSE(TestDb(path).value("1"));
}

// Its own server, killed or configured: the same on either target.
TEST_CASE("Redis killed: the invalidation that could not be made is reported with the key", "[single-server]") {
  cachet::testing::RedisServer server;
  cachet::Pool pool(cachet::test::quick_to_fail(server));
  const std::string path = db_path(server);
  int reported = 0;
  cachet::WriteThroughOptions wo;
  wo.on_unrepaired = [&](const cachet::UnrepairedWrite&) { ++reported; };
  StringCache items_cache(cachet::RedisStore(pool), slot_options("item", "wt-inv-killed"));
  auto items = cachet::write_through(items_cache, RowWriter{path}, wo);
  items.invalidate_after_write([](std::string_view, const std::string&) { return cachet::Targets{.tags = {"t"}}; });
  REQUIRE(items.put("1", "a") == WriteOutcome::cached);
  server.kill();
  CHECK(items.put("1", "b") == WriteOutcome::unrepaired);
  CHECK(reported == 1);
  CHECK(TestDb(path).value("1") == "b");
}

namespace {

// A loader that reads the row, then waits for `go` before returning what it read:
// a put can land between the read and the load's cache write.
struct HeldLoad {
  std::promise<void> read, go;
  std::shared_future<void> released = go.get_future().share();
};

// The guard under test: the stampede guard over `pool`'s lock, or one that needs no pool.
template <class G>
G make_guard(cachet::Pool& pool) {
  if constexpr (std::is_same_v<G, cachet::StampedeGuard>) return cachet::stampede_guard(pool);
  else return G{};
}

}  // namespace

TEMPLATE_TEST_CASE("a load that read the old row cannot overwrite a put made while it ran", "", cachet::NoGuard,
                   cachet::StampedeGuard) {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  TestType guard = make_guard<TestType>(pool);
  cachet::CacheAside<std::string, cachet::StringCodec, TestType> entries(cachet::RedisStore(pool), options("wt-overtaken"),
                                                                         {}, std::move(guard));
  auto cache = cachet::write_through(entries, RowWriter{path});
  TestDb db(path);
  db.update("1", "old");
  HeldLoad held;
  auto load = std::async(std::launch::async, [&] {
    return cache.get_or_load("1", [&](std::string_view id) {
      std::string row = *TestDb(path).value(id);
      held.read.set_value();
      held.released.wait();
      return row;
    });
  });
  held.read.get_future().wait();
  REQUIRE(cache.put("1", "new") == WriteOutcome::cached);
  held.go.set_value();
  CHECK(load.get() == "old");  // its caller gets what it read...
  CHECK(cache.get("1") == "new");  // ...but the put's value stays cached
  CHECK(cache.cache().metrics().value(Event::stale_write_refused) == 1);
  auto conn = server.connect();
  CHECK(conn.command({"EXISTS", cachet::KeyBuilder("t").lock(cache.key("1"))}).as_integer() == 0);  // released
}

TEST_CASE("a batch load that read old rows cannot overwrite puts made while it ran") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  StringCache entries(cachet::RedisStore(pool), options("wt-overtaken-batch"));
  auto cache = cachet::write_through(entries, RowWriter{path});
  TestDb db(path);
  db.update("1", "old1");
  db.update("2", "old2");
  HeldLoad held;
  const std::vector<std::string_view> ids{"1", "2"};
  auto load = std::async(std::launch::async, [&] {
    return cache.cache().get_many(ids, [&](std::span<const std::string_view> missing) {
      std::vector<std::optional<std::string>> rows;
      for (auto id : missing) rows.push_back(TestDb(path).value(id));
      held.read.set_value();
      held.released.wait();
      return rows;
    });
  });
  held.read.get_future().wait();
  REQUIRE(cache.put("2", "new2") == WriteOutcome::cached);
  held.go.set_value();
  CHECK(load.get()[1] == "old2");
  CHECK(cache.get("1") == "old1");  // not overtaken: cached
  CHECK(cache.get("2") == "new2");
  CHECK(cache.cache().metrics().value(Event::stale_write_refused) == 1);
}

TEMPLATE_TEST_CASE("a caller that comes after a put does not share a load begun before it", "", cachet::SingleFlight,
                   cachet::StampedeGuard) {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  const std::string path = db_path(server);
  TestType guard = make_guard<TestType>(pool);
  cachet::WriteThroughOptions wo;
  wo.on_write = cachet::CacheUpdate::del;  // the put leaves the key absent: the next caller misses
  cachet::CacheAside<std::string, cachet::StringCodec, TestType> entries(cachet::RedisStore(pool), options("wt-no-late-share"),
                                                                         {}, std::move(guard));
  auto cache = cachet::write_through(entries, RowWriter{path}, wo);
  TestDb(path).update("1", "old");
  HeldLoad held;
  auto row = [&](std::string_view id) { return *TestDb(path).value(id); };
  auto first = std::async(std::launch::async, [&] {
    return cache.get_or_load("1", [&](std::string_view id) {
      std::string r = row(id);
      held.read.set_value();
      held.released.wait();
      return r;
    });
  });
  held.read.get_future().wait();
  REQUIRE(cache.put("1", "new") == WriteOutcome::deleted);
  // Sharing the held load would return "old" once it is let go. Single-flight
  // alone: the late caller loads at once. With the Redis lock it waits for the
  // held load's release, then finds its write refused and loads under the lock.
  constexpr bool locked = std::is_same_v<TestType, cachet::StampedeGuard>;
  auto late = std::async(std::launch::async, [&] { return cache.get_or_load("1", row); });
  const bool own_load = late.wait_for(locked ? 200ms : 5s) == std::future_status::ready;
  held.go.set_value();
  CHECK(own_load != locked);
  CHECK(late.get() == "new");
  CHECK(first.get() == "old");  // the caller that overlapped the put may see either
  CHECK(cache.get("1") == "new");
}
