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
  cachet::testing::RedisServer replica{{.tcp = true, .config = {"replicaof 127.0.0.1 " + std::to_string(master.port())}}};
  cachet::Connection master_admin = master.connect();
  cachet::Connection replica_admin = replica.connect();

  ReplicatedPair() {
    REQUIRE(cachet::test::eventually(
        [&] { return master_admin.command({"INFO", "replication"}).as_string().find("state=online") != std::string::npos; },
        60s));
    // Online is not yet acking: a first write's WAIT can still time out. Wait until one is confirmed.
    REQUIRE(cachet::test::eventually(
        [&] {
          master_admin.command({"SET", "probe", "1"});
          return master_admin.command({"WAIT", 1, 1000}).as_integer() == 1;
        },
        60s));
    master_admin.command({"DEL", "probe"});
    REQUIRE(master_admin.command({"WAIT", 1, 10'000}).as_integer() == 1);
    master_admin.command({"CONFIG", "RESETSTAT"});
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

// Runs `op`, which must throw ReplicationError (1 acked of 1 wanted: none),
// after about `r.timeout` (WAIT waits all of it) and well within a generous bound.
template <class Op>
void throws_after_timeout(Op op, const Replication& r = one_replica) {
  const auto start = std::chrono::steady_clock::now();
  try {
    op();
    FAIL("no ReplicationError");
  } catch (const ReplicationError& e) {
    CHECK(e.acked() == 0);
    CHECK(e.wanted() == 1);
    CHECK(std::string(e.what()).find("only 0 of 1 replicas") != std::string::npos);
  }
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= r.timeout - 20ms);
  CHECK(took < r.timeout + 5s);
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
