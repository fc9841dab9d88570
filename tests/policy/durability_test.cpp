// Replicated durability (Replication, WAIT) against a real master and replica:
// each replicated write is on the replica when it returns; with the replica
// stopped (SIGSTOP) it throws ReplicationError after about its timeout; and
// replicas = 0 sends no WAIT at all.
#include <cachet/codec/string.hpp>
#include <cachet/guard/redis_lock_guard.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/write_behind.hpp>
#include <cachet/policy/write_through.hpp>
#include <cachet/store/memory_store.hpp>
#include <cachet/store/redis_lock.hpp>
#include <cachet/store/replication.hpp>
#include <cachet/store/tiered_store.hpp>
#include <cachet/store/value_store.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using cachet::Event;
using cachet::Replication;
using cachet::ReplicationError;

namespace {

constexpr Replication one_replica{.replicas = 1, .timeout = 300ms};

// A master and its replica, on loopback TCP, the replica in sync before use.
struct ReplicatedPair {
  cachet::testing::RedisServer master{{.tcp = true, .config = {"repl-diskless-sync-delay 0"}}};
  cachet::testing::RedisServer replica{
      {.tcp = true, .config = {"replicaof 127.0.0.1 " + std::to_string(master.port())}}};
  cachet::Connection master_admin = master.connect();
  cachet::Connection replica_admin = replica.connect();

  ReplicatedPair() {
    REQUIRE(cachet::test::eventually(
        [&] {
          const std::string info = master_admin.command({"INFO", "replication"}).as_string();
          return info.find("state=online") != std::string::npos;
        },
        60s));
    wait_until_acking();
    master_admin.command({"CONFIG", "RESETSTAT"});
  }
  // Online (or resumed) is not yet acking: a first write's WAIT can still time
  // out. Wait until one is confirmed (leaves WAIT calls in the stats).
  void wait_until_acking() {
    REQUIRE(cachet::test::eventually(
        [&] {
          master_admin.command({"SET", "probe", "1"});
          return master_admin.command({"WAIT", 1, 1000}).as_integer() == 1;
        },
        60s));
    master_admin.command({"DEL", "probe"});
    REQUIRE(master_admin.command({"WAIT", 1, 10'000}).as_integer() == 1);
  }
  std::optional<std::string> on_master(const std::string& key) {
    return master_admin.command({"GET", key}).as_optional_string();
  }
  std::optional<std::string> on_replica(const std::string& key) {
    return replica_admin.command({"GET", key}).as_optional_string();
  }
  long long wait_calls() { return cachet::test::command_calls(master_admin, "wait"); }
};

// The replica SIGSTOPped (and seen stopped) until this goes: it can ack nothing.
class Stopped {
 public:
  explicit Stopped(pid_t pid) : pid_(pid) {
    ::kill(pid_, SIGSTOP);
    REQUIRE(cachet::test::eventually([&] { return state() == 'T'; }, 30s));
  }
  Stopped(const Stopped&) = delete;
  Stopped& operator=(const Stopped&) = delete;
  ~Stopped() { ::kill(pid_, SIGCONT); }

 private:
  char state() const {  // /proc/<pid>/stat: "pid (comm) S ..."
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string line;
    std::getline(in, line);
    const auto paren = line.rfind(')');
    return paren == std::string::npos || paren + 2 >= line.size() ? '?' : line[paren + 2];
  }
  pid_t pid_;
};

// Runs `op`, which must return after about one_replica's timeout (WAIT waits
// all of it) and well within a generous bound.
template <class Op>
void after_timeout(Op op) {
  const auto start = std::chrono::steady_clock::now();
  op();
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= one_replica.timeout - 20ms);
  CHECK(took < one_replica.timeout + 5s);
}

// Runs `op`, which must throw ReplicationError (0 acked of 1 wanted) after about its timeout.
template <class Op>
void throws_after_timeout(Op op) {
  after_timeout([&] {
    try {
      op();
      FAIL("no ReplicationError");
    } catch (const ReplicationError& e) {
      CHECK(e.acked() == 0);
      CHECK(e.wanted() == 1);
      CHECK(std::string(e.what()).find("only 0 of 1 replicas") != std::string::npos);
    }
  });
}

cachet::CacheOptions options(std::string label) {
  cachet::CacheOptions o;
  o.ns = "t";
  o.name = "item";
  o.metrics_label = std::move(label);
  o.keys.hash_tag = cachet::HashTag::ns;
  o.ttl = cachet::TtlPolicy({.fresh = 1min, .jitter = 0});
  return o;
}

using StringCache = cachet::CacheAside<std::string, cachet::StringCodec>;

struct NoDatabase {
  void operator()(std::span<const cachet::PendingWrite<std::string>>) const {}
};

cachet::WriteBehindOptions queue_only(Replication r) {
  cachet::WriteBehindOptions o;
  o.flusher = false;
  o.replication = r;
  return o;
}

}  // namespace

TEST_CASE("write-behind with replicas = 1: the queued write and its cache entry are on the replica when write returns") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options());
  StringCache entries(cachet::RedisStore(pool), options("dur-wb"));
  auto writes = cachet::write_behind(entries, NoDatabase{}, queue_only(one_replica));
  for (int i = 0; i < 20; ++i) writes.write(std::to_string(i), "v" + std::to_string(i));
  CHECK(pair.replica_admin.command({"XLEN", writes.stream()}).as_integer() == 20);
  CHECK(pair.on_replica(entries.key("19")) == pair.on_master(entries.key("19")));
  CHECK(pair.wait_calls() == 20);  // one WAIT per write, in the write's round trip
}

TEST_CASE("write-behind with the replica stopped: write throws ReplicationError after its timeout, the entry queued on the master") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options());
  StringCache entries(cachet::RedisStore(pool), options("dur-wb-stopped"));
  auto writes = cachet::write_behind(entries, NoDatabase{}, queue_only(one_replica));
  writes.write("1", "v1");
  {
    const Stopped stopped(pair.replica.pid());
    throws_after_timeout([&] { writes.write("2", "v2"); });
  }
  CHECK(pair.master_admin.command({"XLEN", writes.stream()}).as_integer() == 2);
  CHECK(entries.metrics().value(Event::redis_error) == 1);
  pair.wait_until_acking();               // resumed is not yet acking
  CHECK_NOTHROW(writes.write("3", "v3"));  // the replica back: waited for again
}

TEST_CASE("replicas = 0 sends no WAIT") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options());
  StringCache entries(cachet::RedisStore(pool), options("dur-off"));
  auto writes = cachet::write_behind(entries, NoDatabase{}, queue_only({}));
  pair.master_admin.command({"CONFIG", "RESETSTAT"});
  writes.write("1", "v1");
  CHECK(pair.master_admin.command({"XLEN", writes.stream()}).as_integer() == 1);
  CHECK(pair.wait_calls() == 0);
}

TEST_CASE("a replication timeout that cannot work is refused when the policy is made") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options());  // command_timeout 1 s
  StringCache entries(cachet::RedisStore(pool), options("dur-bad"));
  CHECK_THROWS_AS(cachet::write_behind(entries, NoDatabase{}, queue_only({.replicas = 1, .timeout = 0ms})),
                  std::invalid_argument);
  CHECK_THROWS_AS(cachet::write_behind(entries, NoDatabase{}, queue_only({.replicas = 1, .timeout = 1s})),
                  std::invalid_argument);
  CHECK_THROWS_AS(cachet::write_behind(entries, NoDatabase{}, queue_only({.replicas = -1})), std::invalid_argument);
}

TEST_CASE("RedisStore::write and write_many with replicas = 1: on the replica when they return, one WAIT each") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options());
  cachet::RedisStore store(pool);
  const std::vector<std::string> tags{"t:tag:a"};
  CHECK(store.write({.key = "plain", .bytes = "p", .ttl = 1min, .replication = one_replica}) ==
        cachet::WriteResult::written);
  CHECK(pair.on_replica("plain") == "p");
  CHECK(store.write({.key = "tagged", .bytes = "t", .ttl = 1min, .tag_sets = tags, .replication = one_replica}) ==
        cachet::WriteResult::written);
  CHECK(pair.on_replica("tagged") == "t");
  CHECK(pair.replica_admin.command({"SISMEMBER", "t:tag:a", "tagged"}).as_integer() == 1);
  cachet::InvalidationTargets gone;
  gone.keys = {"plain"};
  CHECK(store.write({.key = "k", .bytes = "k", .ttl = 1min, .invalidation = &gone, .replication = one_replica}) ==
        cachet::WriteResult::written);
  CHECK(pair.on_replica("k") == "k");
  CHECK(pair.on_replica("plain") == std::nullopt);
  const std::vector<cachet::StoreWrite> batch{{.key = "b1", .bytes = "1", .ttl = 1min, .replication = one_replica},
                                              {.key = "b2", .bytes = "2", .ttl = 1min, .tag_sets = tags}};
  CHECK(store.write_many(batch).failed == 0);
  CHECK(pair.on_replica("b1") == "1");
  CHECK(pair.on_replica("b2") == "2");
  CHECK(pair.wait_calls() == 4);
}

TEST_CASE("RedisStore::write with the replica stopped: ReplicationError after its timeout, the write on the master") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options());
  cachet::RedisStore store(pool);
  const std::vector<std::string> tags{"t:tag:a"};
  cachet::InvalidationTargets gone;
  gone.keys = {"x"};
  const Stopped stopped(pair.replica.pid());
  throws_after_timeout([&] { store.write({.key = "plain", .bytes = "p", .ttl = 1min, .replication = one_replica}); });
  throws_after_timeout(
      [&] { store.write({.key = "tagged", .bytes = "t", .ttl = 1min, .tag_sets = tags, .replication = one_replica}); });
  throws_after_timeout(
      [&] { store.write({.key = "k", .bytes = "k", .ttl = 1min, .invalidation = &gone, .replication = one_replica}); });
  const std::vector<cachet::StoreWrite> batch{{.key = "b1", .bytes = "1", .ttl = 1min, .replication = one_replica}};
  throws_after_timeout([&] { store.write_many(batch); });
  for (const char* key : {"plain", "tagged", "k", "b1"}) CHECK(pair.on_master(key).has_value());
  // The connection stays usable: every reply was read.
  CHECK(store.get("plain") == "p");
}

TEST_CASE("TieredStore passes a replicated write to its Redis tier") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options());
  cachet::TieredStore<cachet::ValueStore<std::string>> store(cachet::ValueStore<std::string>{}, cachet::RedisStore(pool));
  CHECK(store.write({.key = "k", .bytes = "v", .ttl = 1min, .replication = one_replica}) ==
        cachet::WriteResult::written);
  CHECK(pair.on_replica("k") == "v");
  CHECK(pair.wait_calls() == 1);
  const Stopped stopped(pair.replica.pid());
  throws_after_timeout([&] { store.write({.key = "k", .bytes = "w", .ttl = 1min, .replication = one_replica}); });
  CHECK(store.get("k") == "w");  // on the master, and out of the first tier
}

TEST_CASE("replicas = 0 sends no WAIT from the store, the lock or write-through") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options());
  cachet::RedisStore store(pool);
  const std::vector<std::string> tags{"t:tag:a"};
  store.write({.key = "plain", .bytes = "p", .ttl = 1min});
  store.write({.key = "tagged", .bytes = "t", .ttl = 1min, .tag_sets = tags});
  cachet::RedisLock lock(store, "lock");
  CHECK(lock.try_acquire());
  StringCache entries(store, options("dur-off-wt"));
  auto cache = cachet::write_through(entries, [](std::string_view, const std::string&) {});
  CHECK(cache.put("1", "v1") == cachet::WriteOutcome::cached);
  CHECK(pair.wait_calls() == 0);
}

TEST_CASE("MemoryStore refuses a replicated write") {
  cachet::MemoryStore store;
  CHECK_THROWS_AS(store.write({.key = "k", .bytes = "v", .ttl = 1min, .replication = one_replica}),
                  cachet::UnsupportedWriteError);
  CHECK(store.get("k") == std::nullopt);
}

TEST_CASE("write-through with replicas = 1: the cached value is on the replica when put returns") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options());
  StringCache entries(cachet::RedisStore(pool), options("dur-wt"));
  auto cache = cachet::write_through(entries, [](std::string_view, const std::string&) { return 7; },
                                     {.replication = one_replica});
  CHECK(cache.put("1", "v1") == cachet::WriteOutcome::cached);
  CHECK(pair.on_replica(cache.key("1")) == pair.on_master(cache.key("1")));
  CHECK(pair.on_replica(cache.key("1")).has_value());
  CHECK(pair.wait_calls() == 1);
}

TEST_CASE("write-through with the replica stopped: the database write stands, the cache write reported unreplicated") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options());
  cachet::CacheOptions o = options("dur-wt-stopped");
  o.breaker.failure_threshold = 1;  // one outage-like failure would open it
  StringCache entries(cachet::RedisStore(pool), o);
  std::vector<std::string> database, reported;
  cachet::WriteThroughOptions wo{.replication = one_replica};
  wo.on_unrepaired = [&](const cachet::UnrepairedWrite& u) {
    try {
      std::rethrow_exception(u.error);
    } catch (const ReplicationError& e) {
      reported.push_back(std::string(u.key) + ": " + std::to_string(e.acked()) + "/" + std::to_string(e.wanted()));
    } catch (...) {
      reported.push_back("another error");
    }
  };
  auto cache = cachet::write_through(
      entries, [&](std::string_view, const std::string& v) { database.push_back(v); }, wo);
  {
    const Stopped stopped(pair.replica.pid());
    cachet::WriteOutcome outcome{};
    after_timeout([&] { outcome = cache.put("1", "v1"); });  // no throw: the database has it
    CHECK(outcome == cachet::WriteOutcome::unreplicated);
  }
  CHECK(database == std::vector<std::string>{"v1"});
  CHECK(reported == std::vector<std::string>{cache.key("1") + ": 0/1"});
  CHECK(cache.get("1") == "v1");  // left as written on the master
  CHECK(entries.metrics().value(Event::cache_write_error) == 1);
  CHECK(entries.metrics().value(Event::write_unrepaired) == 1);
  pair.wait_until_acking();                                     // resumed is not yet acking
  CHECK(cache.put("1", "v2") == cachet::WriteOutcome::cached);  // the breaker stayed closed: not an outage
  CHECK(entries.metrics().value(Event::redis_skipped) == 0);
}

TEST_CASE("a replicated lock: held once the replica has it, released and ReplicationError when it does not") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options(), {.size = 1});
  cachet::RedisStore store(pool);
  cachet::RedisLock lock(store, "lock", {.replication = one_replica});
  REQUIRE(lock.try_acquire());
  CHECK(pair.on_replica("lock") == lock.token());
  CHECK(lock.release());
  CHECK(pair.wait_calls() == 1);

  cachet::RedisLock other(store, "lock", {.replication = one_replica});
  {
    const Stopped stopped(pair.replica.pid());
    throws_after_timeout([&] { lock.try_acquire(); });
    CHECK_FALSE(lock.held());
    CHECK(pair.on_master("lock") == std::nullopt);  // released, on the one pooled connection
  }
  pair.wait_until_acking();    // resumed is not yet acking
  CHECK(other.try_acquire());  // nobody holds it
}

TEST_CASE("the lock guard over a stopped replica: the lock is released and the caller loads, counted as a Redis error") {
  ReplicatedPair pair;
  cachet::Pool pool(pair.master.connection_options());
  using GuardedCache = cachet::CacheAside<std::string, cachet::StringCodec, cachet::RedisLockGuard>;
  cachet::RedisLockGuardOptions go;
  go.replication = one_replica;
  GuardedCache cache(cachet::RedisStore(pool), options("dur-guard"), {}, cachet::RedisLockGuard(pool, go));
  CHECK(cache.get_or_load("1", [](std::string_view) { return std::string("a"); }) == "a");
  CHECK(cache.metrics().value(Event::redis_error) == 0);
  const Stopped stopped(pair.replica.pid());
  int loads = 0;
  const auto start = std::chrono::steady_clock::now();
  CHECK(cache.get_or_load("2", [&](std::string_view) { return ++loads, std::string("b"); }) == "b");
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK(loads == 1);
  CHECK(cache.metrics().value(Event::redis_error) == 1);
  CHECK(pair.on_master(cache.key("2")).has_value());
  CHECK(pair.master_admin.command({"KEYS", "*lock*"}).size() == 0);
}

// WAIT refused by the server (here an ACL user without it): the write before it
// stands, and the refusal is a ReplicationError naming the server's error.
TEST_CASE("a WAIT the server refuses: the lock is released and the error surfaces, write-through keeps its value") {
  cachet::testing::RedisServer server{{.tcp = true}};
  server.connect().command({"ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-wait"});
  auto co = server.connection_options();
  co.user = "app";
  co.password = "pw";
  cachet::Pool pool(co, {.size = 1});
  cachet::RedisStore store(pool);
  const auto refused = [](const ReplicationError& e) {
    return std::string(e.what()).find("WAIT was refused (NOPERM") != std::string::npos && e.acked() == 0;
  };

  cachet::RedisLock lock(store, "lock", {.replication = one_replica});
  bool surfaced = false;
  try {
    lock.try_acquire();
  } catch (const ReplicationError& e) {
    surfaced = refused(e);
  }
  CHECK(surfaced);
  CHECK_FALSE(lock.held());
  cachet::RedisLock other(store, "lock", {.lease = 30s});
  CHECK(other.try_acquire());  // released at once, not left to the lease

  StringCache entries(store, options("dur-wt-refused"));
  bool reported = false;
  cachet::WriteThroughOptions wo{.replication = one_replica};
  wo.on_unrepaired = [&](const cachet::UnrepairedWrite& u) {
    try {
      std::rethrow_exception(u.error);
    } catch (const ReplicationError& e) {
      reported = refused(e);
    } catch (...) {
    }
  };
  auto cache = cachet::write_through(entries, [](std::string_view, const std::string&) {}, wo);
  CHECK(cache.put("1", "v1") == cachet::WriteOutcome::unreplicated);
  CHECK(reported);
  CHECK(cache.get("1") == "v1");  // the value written stays: the fallback delete did not run
}
