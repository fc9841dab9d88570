// Redis Sentinel against a real group (cachet::testing::SentinelGroup): discovery,
// dead, malformed and stale sentinels, the role check (HELLO), ACL users,
// READONLY from a demoted master, and failovers (SENTINEL FAILOVER and a
// SIGKILLed master) under read and write-behind load.
#include <cachet/codec/string.hpp>
#include <cachet/policy/make.hpp>
#include <cachet/policy/write_behind.hpp>
#include <cachet/redis/detail/sentinel_resolver.hpp>
#include <cachet/redis/sentinel.hpp>
#include <cachet/redis/tracking.hpp>
#include <cachet/store/lock_notifier.hpp>
#include <cachet/testing/sentinel_group.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/fake_peer.hpp>
#include <support/policy_fixtures.hpp>
#include <support/sqlite_db.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using cachet::testing::SentinelGroup;
using clock_type = std::chrono::steady_clock;

namespace {

using cachet::test::FakePeer;


constexpr auto generous = 30s;  // a loaded 2-core CI machine: deadlines, not sleeps

// The TCP port of the server this connection reached.
int server_port(cachet::Connection& conn) {
  const std::string info(conn.command({"INFO", "server"}).as_string());
  const auto at = info.find("tcp_port:");
  return std::stoi(info.substr(at + 9));
}

std::string role_of(cachet::Connection& conn) { return std::string(conn.command({"ROLE"})[0].as_string()); }

// cachet::test::eventually for an action: retried until it returns without a cachet::Error.
template <class F>
bool eventually(F&& f, std::chrono::milliseconds within = generous) {
  return cachet::test::eventually([&] {
    try {
      f();
      return true;
    } catch (const cachet::Error&) {
      return false;
    }
  }, within);
}

// The group's options with `port` asked first.
cachet::ConnectionOptions with_first_sentinel(const SentinelGroup& group, int port) {
  cachet::ConnectionOptions o = group.connection_options();
  o.sentinel.sentinels.insert(o.sentinel.sentinels.begin(), cachet::SentinelAddress{"127.0.0.1", port});
  return o;
}

// On every data server: an ACL user `app` that may not run @dangerous commands.
void add_app_user(const SentinelGroup& group) {
  for (const auto& s : group.servers())
    s->connect().command({"ACL", "SETUSER", "app", "on", ">app-pass", "~*", "&*", "+@all", "-@dangerous"});
}

}  // namespace

TEST_CASE("the handshake's first error wins over the role: a wrong data password is a ConfigError, not 'not a master'") {
  SentinelGroup group;
  add_app_user(group);
  // ROLE is refused to the default user too (as to an app user): a role check
  // through ROLE would fail first; HELLO is allowed.
  for (const auto& s : group.servers()) s->connect().command({"ACL", "SETUSER", "default", "-role"});
  cachet::ConnectionOptions wrong = group.connection_options();
  wrong.user = "app";
  wrong.password = "not-the-password";
  try {
    cachet::Pool pool(wrong);
    FAIL("a pool with a wrong password");
  } catch (const cachet::ConfigError& e) {
    const std::string what = e.what();
    CHECK(what.find("not a master") == std::string::npos);
    CHECK(what.find("not-the-password") == std::string::npos);
  }
}

TEST_CASE("an ACL user without @dangerous (ROLE is @dangerous) connects through Sentinel") {
  SentinelGroup group;
  add_app_user(group);
  cachet::ConnectionOptions app = group.connection_options();
  app.user = "app";
  app.password = "app-pass";
  cachet::Pool pool(app);
  pool.with([](cachet::Connection& c) { c.command({"SET", "acl-k", "v"}); });
  CHECK(group.server_at(group.master_port()).connect().command({"GET", "acl-k"}).as_string() == "v");
}

TEST_CASE("every sentinel dead: a new connection still reaches the master known before, within a bound") {
  SentinelGroup group;
  cachet::ConnectionOptions options = group.connection_options();
  options.connect_timeout = 2s;
  options.sentinel.rediscover_interval = 0ms;  // every resolve after invalidate() asks
  cachet::Connection first(options);  // resolved once
  for (std::size_t i = 0; i < 3; ++i) group.kill_sentinel(i);
  cachet::detail::SentinelResolver::get(options.sentinel)->invalidate(0);  // as a failed command does
  const auto start = clock_type::now();
  cachet::Connection again(options);  // one round that finds nobody, then the known master
  cachet::Pool pool(options);
  const auto took = clock_type::now() - start;
  CHECK(server_port(again) == server_port(first));
  CHECK(pool.with([](cachet::Connection& c) { return server_port(c); }) == server_port(first));
  CHECK(took < 3 * options.connect_timeout);  // refused connects: one short round, no throw
}

TEST_CASE("while one thread asks a slow sentinel, the others connect to the known master at once") {
  SentinelGroup group;
  // Accepts, reads, never answers: each question to it lasts connect_timeout.
  FakePeer silent("", FakePeer::every_read);
  cachet::ConnectionOptions options = group.connection_options();
  options.sentinel.sentinels.push_back({"127.0.0.1", silent.port()});  // asked last
  options.connect_timeout = 3s;
  options.sentinel.rediscover_interval = 0ms;
  cachet::Connection first(options);  // resolved once
  const int master = server_port(first);
  for (std::size_t i = 0; i < 3; ++i) group.kill_sentinel(i);
  cachet::detail::SentinelResolver::get(options.sentinel)->invalidate(0);
  // A round now lasts connect_timeout (the silent one). Held under a lock, the
  // four connects would queue: 4 rounds, 12 s for the last.
  std::atomic<int> reached{0};
  std::atomic<long> slowest_ms{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      const auto start = clock_type::now();
      try {
        cachet::Connection c(options);
        if (server_port(c) == master) ++reached;
      } catch (const std::exception&) {
      }
      const long ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start).count();
      for (long seen = slowest_ms; ms > seen && !slowest_ms.compare_exchange_weak(seen, ms);) {
      }
    });
  for (auto& t : threads) t.join();
  CHECK(reached == 4);
  CHECK(slowest_ms < 2 * 3000);  // one round (3 s), not one per thread
}

TEST_CASE("a sentinel answering garbage (integers, nil) is skipped, never a crash") {
  SentinelGroup group;
  for (const std::string garbage : {"*2\r\n:1\r\n:2\r\n", "*2\r\n$-1\r\n$-1\r\n", "*2\r\n$9\r\n127.0.0.1\r\n$6\r\n999999\r\n",
                                    "*2\r\n*0\r\n$4\r\n6380\r\n"}) {
    FakePeer fake(garbage, FakePeer::every_read);
    cachet::ConnectionOptions options = with_first_sentinel(group, fake.port());
    cachet::Connection conn(options);
    CHECK(server_port(conn) == group.master_port());
    cachet::ConnectionOptions replicas = with_first_sentinel(group, fake.port());
    replicas.sentinel.role = cachet::SentinelRole::replica;
    // Its own resolver, which has not yet learnt to ask the fake last: the replica list is parsed from garbage first.
    replicas.sentinel.rediscover_interval += std::chrono::milliseconds(1);
    cachet::Connection replica(replicas);
    CHECK(role_of(replica) == "slave");
  }
}

TEST_CASE("a sentinel that names a replica as master is asked last once the role check refuses it") {
  SentinelGroup group;
  const int replica = group.servers()[1]->port() == group.master_port() ? group.servers()[2]->port()
                                                                         : group.servers()[1]->port();
  const std::string port = std::to_string(replica);
  FakePeer stale(fmt::format("*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{}\r\n", port.size(), port),
                 FakePeer::every_read);
  cachet::ConnectionOptions options = with_first_sentinel(group, stale.port());
  options.sentinel.rediscover_interval = 0ms;
  auto resolver = cachet::detail::SentinelResolver::get(options.sentinel);  // kept between the connections
  CHECK_THROWS_WITH(cachet::Connection(options), Catch::Contains("is not a master"));
  // The next round asks the real sentinels first; the stale one would name the replica again.
  cachet::Connection conn(options);
  CHECK(server_port(conn) == group.master_port());
}

TEST_CASE("one resolver per distinct options: another sentinel password or interval is its own resolver") {
  SentinelGroup group;
  cachet::SentinelOptions a = group.connection_options().sentinel;
  cachet::SentinelOptions b = a;
  b.password = "other";
  cachet::SentinelOptions c = a;
  c.rediscover_interval = 5s;
  auto ra = cachet::detail::SentinelResolver::get(a);
  CHECK(cachet::detail::SentinelResolver::get(a) == ra);
  CHECK(cachet::detail::SentinelResolver::get(b) != ra);
  CHECK(cachet::detail::SentinelResolver::get(c) != ra);
  CHECK(cachet::detail::SentinelResolver::get(b)->options().password == "other");
}

TEST_CASE("discovery: a pool reaches the master the sentinels name, replica reads are opt-in and never fill L1") {
  SentinelGroup group;
  cachet::ConnectionOptions options = group.connection_options();
  options.password = "";  // the data servers have none
  cachet::Pool pool(options);
  CHECK(pool.options().metrics_label == "sentinel:" + group.master_name());
  pool.with([](cachet::Connection& c) { c.command({"SET", "k", "v"}); });
  CHECK(pool.with([](cachet::Connection& c) { return server_port(c); }) == group.master_port());

  cachet::Pool replicas(group.connection_options(cachet::SentinelRole::replica));
  replicas.with([&](cachet::Connection& c) {
    CHECK(role_of(c) == "slave");
    CHECK(server_port(c) != group.master_port());
  });
  CHECK_THROWS_AS(cachet::Tracking(group.connection_options(cachet::SentinelRole::replica)), cachet::ConfigError);
  using Tier = cachet::TieredStore<cachet::ValueStore<std::string>>;
  CHECK_THROWS_AS(Tier(cachet::ValueStore<std::string>({.max_entries = 10}), cachet::RedisStore(replicas)),
                  cachet::ConfigError);
}

TEST_CASE("a dead first sentinel is skipped, and a sentinel password never shows in an error") {
  SentinelGroup group;
  group.kill_sentinel(0);
  cachet::Connection conn(group.connection_options());
  CHECK(server_port(conn) == group.master_port());

  cachet::ConnectionOptions wrong = group.connection_options();
  wrong.sentinel.master_name = "no-such-master";  // a fresh resolver: every sentinel is asked
  wrong.sentinel.password = "sentinel-secret-42";
  try {
    cachet::Connection never(wrong);
    FAIL("connected without a master");
  } catch (const cachet::ConnectionError& e) {
    const std::string what = e.what();
    CHECK(what.find("no-such-master") != std::string::npos);
    CHECK(what.find("sentinel-secret-42") == std::string::npos);
  }
}

TEST_CASE("Role check: a stale answer naming a replica fails that attempt and rediscovers the master") {
  SentinelGroup group;
  const cachet::ConnectionOptions options = group.connection_options();
  auto resolver = cachet::detail::SentinelResolver::get(options.sentinel);
  const int replica = group.servers()[1]->port();
  resolver->switched("127.0.0.1", replica);  // as if a sentinel had answered late
  try {
    cachet::Connection conn(options);
    FAIL("connected to a replica");
  } catch (const cachet::ConnectionError& e) {
    CHECK(std::string(e.what()).find("is not a master") != std::string::npos);
  }
  std::optional<cachet::Connection> conn;
  REQUIRE(eventually([&] { conn.emplace(options); }));
  CHECK(server_port(*conn) == group.master_port());
  CHECK(role_of(*conn) == "master");
}

TEST_CASE("READONLY from a demoted master: a typed error, the connection closes, and the next one reaches the new master") {
  SentinelGroup group;
  cachet::Connection conn(group.connection_options());  // no pool: no +switch-master watch, so READONLY is what tells
  const int old_master = server_port(conn);
  const int replica = group.servers()[1]->port() == old_master ? group.servers()[2]->port() : group.servers()[1]->port();
  // Demote the master by hand (a sentinel's own demotion also kills its clients).
  group.server_at(old_master).connect().command({"REPLICAOF", "127.0.0.1", replica});
  CHECK_THROWS_AS(conn.command({"SET", "k", "v"}), cachet::ReadOnlyError);
  CHECK(conn.broken());
  // Until the sentinels fail over (asked, rather than waiting for them to notice),
  // the role check refuses the demoted master they still name.
  CHECK_THROWS_AS(conn.command({"SET", "k", "v"}), cachet::ConnectionError);
  group.failover();
  REQUIRE(eventually([&] { conn.command({"SET", "k", "v"}); }));
  CHECK(conn.options().port != old_master);
  CHECK(role_of(conn) == "master");
}

namespace {

struct LoadResult {
  std::atomic<long> reads{0}, read_errors{0}, writes{0}, write_errors{0};
  long lost = -1;        // acknowledged write-behind entries missing from the database at the end
  bool drained = false;  // the queue emptied into the database
  std::string last_write_error;  // the writer thread's, read after it is joined
  std::atomic<clock_type::rep> last_failure{0};  // of a write or a Redis probe
  std::optional<std::chrono::milliseconds> hits_back;  // after the trigger: 100 Redis hits counted since the move
};

// 8 threads read through a guarded cache, one writes behind (and probes Redis),
// while `trigger` moves the master; returns how long the master took to move.
std::chrono::milliseconds run_failover_under_load(SentinelGroup& group, const std::function<int()>& trigger,
                                                  LoadResult& r) {
  cachet::ConnectionOptions options = group.connection_options();
  options.command_timeout = 500ms;
  cachet::Pool pool(options, {.size = 16, .wait_timeout = 2s});
  auto cache = cachet::make_cache<std::string>(pool, {.ns = "t", .name = "item"});
  const std::string db = cachet::test::TestDb::fresh(group.servers()[0]->directory() + "/sentinel.sqlite");
  // Replicated durability: write() returns once a replica has the entry too (WAIT 1).
  cachet::WriteBehindOptions flushing = cachet::test::flusher_options();
  flushing.replication = {.replicas = 1, .timeout = 200ms};
  auto behind = cachet::write_behind(cache, cachet::test::DbWriter(db), flushing);
  std::vector<std::string> acknowledged;  // the writer thread's, read after it is joined
  std::atomic<bool> stop{false};
  auto note_failure = [&] { r.last_failure = clock_type::now().time_since_epoch().count(); };
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        const std::string id = std::to_string((t * 31 + i) % 50);
        try {
          if (cache.get_or_load(id, [](std::string_view k) { return "v" + std::string(k); }).empty()) ++r.read_errors;
        } catch (const std::exception&) {
          ++r.read_errors;
        }
        ++r.reads;
      }
    });
  threads.emplace_back([&] {
    for (int i = 0; !stop; ++i) {
      try {
        const std::string id = "w" + std::to_string(i);
        behind.write(id, "x");
        acknowledged.push_back(id);
        pool.with([](cachet::Connection& c) { c.command({"GET", "probe"}); });
        ++r.writes;
      } catch (const std::exception& e) {
        ++r.write_errors;
        r.last_write_error = e.what();
        note_failure();
      }
      std::this_thread::sleep_for(5ms);
    }
  });
  std::this_thread::sleep_for(300ms);  // load running before the move
  const auto start = clock_type::now();
  const int old_port = trigger();
  group.wait_for_master_change(old_port, generous);
  const auto moved = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start);
  const long writes_at_move = r.writes;
  const auto& metrics = cache.metrics();
  const auto hits_at_move = metrics.value(cachet::Event::hit);  // Redis hits, not loader calls
  // Run on long enough for reads (Redis hits) and writes to come back: at most the move plus a second, then some.
  while (clock_type::now() < start + moved + 2500ms || r.writes < writes_at_move + 20 || !r.hits_back) {
    if (!r.hits_back && metrics.value(cachet::Event::hit) > hits_at_move + 100)
      r.hits_back = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start);
    if (clock_type::now() > start + moved + generous) break;
    std::this_thread::sleep_for(5ms);
  }
  stop = true;
  for (auto& t : threads) t.join();
  r.drained = behind.flush(generous).drained;
  const auto stored = cachet::test::TestDb(db).values();
  r.lost = std::count_if(acknowledged.begin(), acknowledged.end(), [&](const std::string& id) { return !stored.contains(id); });
  r.last_failure = r.last_failure - start.time_since_epoch().count();  // relative to the trigger (if any failure)
  return moved;
}

void check_resumed(const LoadResult& r, std::chrono::milliseconds moved) {
  CHECK(r.reads > 0);
  CHECK(r.read_errors == 0);  // no read error reaches a caller: the cache degrades to the loader
  CHECK(r.writes > 0);
  CHECK(r.drained);
  CHECK(r.lost == 0);  // with replicated durability, no acknowledged write-behind entry is lost
  const auto last_failure = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::duration(r.last_failure));
  INFO("last write error: " << r.last_write_error);
  INFO("master moved after " << moved.count() << " ms; last failed write " << last_failure.count() << " ms after the trigger");
  CHECK(last_failure <= moved + 1s);  // writes: none failed (negative), or the last within a second of the move
  REQUIRE(r.hits_back);
  INFO("100 Redis hits counted again " << r.hits_back->count() << " ms after the trigger");
  CHECK(*r.hits_back <= moved + 1s);  // reads are served by Redis again, not only by the loader
}

}  // namespace

TEST_CASE("SENTINEL FAILOVER under load: no read error, reads and writes resume within the failover plus a second") {
  SentinelGroup group;
  LoadResult r;
  const auto moved = run_failover_under_load(group, [&] {
    const int old = group.master_port();
    group.failover();
    return old;
  }, r);
  check_resumed(r, moved);
}

TEST_CASE("a SIGKILLed master under load: no read error, reads and writes resume within the failover plus a second") {
  SentinelGroup group;
  LoadResult r;
  const auto moved = run_failover_under_load(group, [&] { return group.kill_master(); }, r);
  check_resumed(r, moved);
}

TEST_CASE("the in-process tier is flushed when the master moves, and tracking and the lock notifier re-subscribe on the new master") {
  SentinelGroup group;
  const cachet::ConnectionOptions options = group.connection_options();
  cachet::Pool pool(options);
  cachet::Tracking tracking(options);
  REQUIRE(tracking.wait_live(generous));
  cachet::LockNotifier notifier(options, "releases");
  auto cache = cachet::make_tiered_cache<std::string, cachet::StringCodec>(pool, tracking, {.ns = "t", .name = "l1"});
  CHECK(cache.get_or_load("a", [](std::string_view) { return std::string("old"); }) == "old");
  const auto before = tracking.stats();

  const int old_port = group.master_port();
  group.failover();
  const int new_port = group.wait_for_master_change(old_port, generous);
  REQUIRE(eventually([&] {
    if (tracking.stats().registrations <= before.registrations || !tracking.wait_live(0ms))
      throw cachet::Error("not yet re-registered");
  }));
  CHECK(tracking.stats().flushes > before.flushes);
  // A write on the new master by someone else reaches this process's tier.
  cachet::Connection other(group.server_at(new_port).tcp_connection_options());
  std::string seen;
  REQUIRE(eventually([&] {
    other.command({"DEL", cache.key("a")});
    seen = cache.get_or_load("a", [](std::string_view) { return std::string("loaded"); });
    if (seen == "old") throw cachet::Error("L1 still serves the old master's value");
  }));
  CHECK(seen != "old");
  // The lock notifier listens on the new master: a release published there wakes a waiter.
  const std::uint64_t seen_gen = notifier.watch("lock-a");
  bool woken = false;
  REQUIRE(eventually([&] {
    other.command({"PUBLISH", "releases", "lock-a"});
    woken = notifier.wait("lock-a", seen_gen, clock_type::now() + 100ms) != seen_gen;
    if (!woken) throw cachet::Error("no release seen");
  }));
  CHECK(woken);
  notifier.unwatch("lock-a");
}

TEST_CASE("a move of the master drops pooled connections, a plain one before its next command, and a subscriber's at once") {
  SentinelGroup group;
  const cachet::ConnectionOptions options = group.connection_options();
  cachet::Pool pool(options, {.verify = false});
  std::atomic<int> ups{0}, downs{0};
  cachet::Subscriber sub(options, {}, {.setup = [](cachet::Connection& c) { c.command({"SUBSCRIBE", "nothing"}); },
                                       .message = [](const cachet::Reply&) {},
                                       .up = [&] { ++ups; },
                                       .down = [&] { ++downs; }});
  sub.start();
  REQUIRE(eventually([&] {
    if (ups == 0) throw cachet::Error("subscriber not up");
  }));
  pool.with([](cachet::Connection& c) { c.command({"PING"}); });  // one idle connection
  cachet::Connection plain(options);                                // a connection of its own (a flusher's, say)
  {
    auto leased = pool.acquire();
    auto other = pool.acquire();  // the idle one is `leased`; this one is new
    // A move (as +switch-master announces it; here to a replica, which the role check then refuses).
    cachet::detail::SentinelResolver::get(options.sentinel)->switched("127.0.0.1", group.servers()[1]->port());
    CHECK(leased->moved());
  }  // both go back: discarded, not kept
  // Its next command reconnects (and the role check refuses the replica) instead of using the old master.
  CHECK_THROWS_AS(plain.command({"PING"}), cachet::ConnectionError);
  CHECK(pool.stats().discarded == 2);
  CHECK(pool.stats().idle == 0);
  REQUIRE(eventually([&] {
    if (downs == 0) throw cachet::Error("subscriber still on the old master");
  }, 5s));
  // The role check sends both back to the real master.
  REQUIRE(eventually([&] { pool.with([](cachet::Connection& c) { c.command({"SET", "k", "v"}); }); }));
  REQUIRE(eventually([&] {
    if (ups < 2) throw cachet::Error("subscriber not back");
  }));
}
