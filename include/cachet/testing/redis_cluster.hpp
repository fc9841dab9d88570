#pragma once
// A throwaway Redis Cluster for tests and users: 3 masters with a replica each
// (by default), every node on free loopback ports (never 6379, the bus port
// picked free too), created with `redis-cli --cluster create` and removed with
// the object. Ready when every node reports cluster_state:ok, agrees on who
// serves each slot, and every replica's link to its master is up. See
// docs/testing.md.
//
//   cachet::testing::RedisCluster cluster;
//   auto seeds = cluster.seeds();                         // ConnectionOptions of every node
//   int port = cluster.kill_master_of(cluster.slot_of("user:{42}"));
//   cluster.wait_for_new_master(slot, port, 30s);
//   cluster.move_slot(slot, other_master_port);           // or begin/migrate/end for ASK
//   cluster.drain_master(port); cluster.remove_node(port); // scale in (replicas handed over)
//
// redis-cli comes from $CACHET_REDIS_CLI, else "redis-cli" (Debian: redis-tools).

#include <cachet/detail/poll.hpp>
#include <cachet/error.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/testing/detail/cluster_stability.hpp>
#include <cachet/testing/detail/redis_cli.hpp>
#include <cachet/testing/redis_server.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet::testing {

struct RedisClusterOptions {
  int masters = 3;
  int replicas_per_master = 1;
  std::chrono::milliseconds node_timeout{2000};     // cluster-node-timeout: how soon a dead master is failed over
  std::chrono::milliseconds start_timeout{60'000};  // until the cluster is ready
  std::vector<std::string> config{};                // extra redis.conf lines for every node
  // Every node serves TLS (one throwaway CA for all), its bus and replication
  // run over TLS, and CLUSTER SLOTS gives a TLS client the nodes' TLS ports:
  // seeds() and client_options() then reach the nodes over TLS. A `requirepass`
  // line in `config` (with `masterauth`, for the replicas) protects every node.
  bool tls = false;
  std::string executable{};  // redis-server; default: $CACHET_REDIS_SERVER, else "redis-server"
  std::string cli{};         // redis-cli; default: $CACHET_REDIS_CLI, else "redis-cli"
};

class RedisCluster {
 public:
  using clock = std::chrono::steady_clock;

  explicit RedisCluster(RedisClusterOptions options = {}) : options_(std::move(options)) {
    if (options_.cli.empty()) {
      const char* env = std::getenv("CACHET_REDIS_CLI");
      options_.cli = env && *env ? env : "redis-cli";
    }
    if (options_.masters < 3) throw Error("RedisCluster: redis-cli --cluster create needs at least 3 masters");
    const int count = options_.masters * (1 + options_.replicas_per_master);
    for (int i = 0; i < count; ++i) nodes_.push_back(std::make_unique<RedisServer>(node_options()));
    for (const auto& n : nodes_) keep_roles(*n);
    create();
    wait_until_stable(options_.start_timeout);
  }
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // Options that reach each node over TCP (over TLS with `tls`): the seeds of a cluster client.
  std::vector<ConnectionOptions> seeds() const {
    std::vector<ConnectionOptions> seeds;
    for (const auto& n : nodes_) seeds.push_back(options_.tls ? n->tls_connection_options() : n->tcp_connection_options());
    return seeds;
  }

  // A cluster client's options: every node as a seed (ClusterOptions::seeds),
  // with the TLS settings and the `requirepass` password every node shares.
  ConnectionOptions client_options() const {
    ConnectionOptions options;
    const std::vector<ConnectionOptions> all = seeds();
    for (const auto& seed : all) options.cluster.seeds.push_back(seed.host + ":" + std::to_string(seed.port));
    options.tls = all.front().tls;
    options.password = requirepass_of(options_.config);
    return options;
  }

  // Every node, masters and replicas; kill, pause, slow or restart them.
  const std::vector<std::unique_ptr<RedisServer>>& nodes() const noexcept { return nodes_; }
  RedisServer& node_at(int port) const {
    for (const auto& n : nodes_)
      if (n->port() == port) return *n;
    throw Error("RedisCluster: no node on port " + std::to_string(port));
  }

  // The slot of `key` (CLUSTER KEYSLOT, asked of a live node).
  int slot_of(std::string_view key) const {
    return static_cast<int>(ask_any({"CLUSTER", "KEYSLOT", key}).as_integer());
  }

  // The port of the master serving `slot`, as a live node's CLUSTER SLOTS says.
  int master_of(int slot) const {
    for (const auto& range : slot_ranges())
      if (range.first <= slot && slot <= range.last) return range.master;
    throw Error("RedisCluster: no node serves slot " + std::to_string(slot));
  }
  // The ports of the masters serving slots, in slot order.
  std::vector<int> master_ports() const {
    std::vector<int> ports;
    for (const auto& range : slot_ranges())
      if (std::find(ports.begin(), ports.end(), range.master) == ports.end()) ports.push_back(range.master);
    return ports;
  }
  // The ports of the replicas of the master on `master_port`.
  std::vector<int> replicas_of(int master_port) const {
    for (const auto& range : slot_ranges())
      if (range.master == master_port) return range.replicas;
    throw Error("RedisCluster: no master on port " + std::to_string(master_port));
  }

  // SIGKILLs the master serving `slot`, as on a crash; returns its port. Its
  // replica is promoted after `node_timeout`.
  int kill_master_of(int slot) {
    const int port = master_of(slot);
    node_at(port).kill();
    return port;
  }

  // CLUSTER FAILOVER on the replica on `replica_port`: it takes over from its
  // master with the master's agreement (the master then answers MOVED). Retried
  // while refused (e.g. the replica is still syncing).
  void failover(int replica_port) {
    retry<ReplyError>("CLUSTER FAILOVER on port " + std::to_string(replica_port) + " kept being refused", [&] {
      node_at(replica_port).connect().command({"CLUSTER", "FAILOVER"});
      return true;
    });
  }

  // CLUSTER FAILOVER TAKEOVER on the replica on `replica_port`: it takes over
  // without its master's agreement or the other masters' votes (its master
  // dead, its own data too old for an automatic failover). Returns once it is a
  // master (an automatic failover may have promoted it first).
  void take_over(int replica_port) {
    retry<Error>("the replica on port " + std::to_string(replica_port) + " did not take over", [&] {
      if (is_master(replica_port)) return true;
      node_at(replica_port).connect().command({"CLUSTER", "FAILOVER", "TAKEOVER"});  // not reachable yet, or refused
      return false;
    });
  }

  // Waits until `slot` is served by a master other than `old_port` and the
  // cluster is stable again; returns the new master's port.
  int wait_for_new_master(int slot, int old_port, std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    retry_until<Error>(deadline, "slot " + std::to_string(slot) + " did not leave port " + std::to_string(old_port), [&] {
      const int port = master_of(slot);  // throws while no live node answers, or the slot is unserved
      return port != old_port && is_master(port);
    });
    wait_until_stable(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()));
    return master_of(slot);
  }

  // Slot migration in its three steps, so that a test can run traffic between
  // them: begin (IMPORTING on the target, MIGRATING on the source: clients get
  // ASK for keys already moved, TRYAGAIN for multi-key commands over both),
  // migrate up to `count` keys, end (the slot belongs to the target everywhere).
  void begin_migration(int slot, int to_port) {
    const int from = master_of(slot);
    if (from == to_port) throw Error("RedisCluster: slot " + std::to_string(slot) + " is already on that node");
    node_at(to_port).connect().command({"CLUSTER", "SETSLOT", std::to_string(slot), "IMPORTING", node_id(from)});
    node_at(from).connect().command({"CLUSTER", "SETSLOT", std::to_string(slot), "MIGRATING", node_id(to_port)});
    migrations_[slot] = {from, to_port};
  }
  // Moves up to `count` keys of a migrating slot; returns how many moved.
  std::size_t migrate_keys(int slot, std::size_t count) {
    const auto& [from, to] = migration(slot);
    Connection source = node_at(from).connect();
    const Reply keys = source.command({"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), std::to_string(count)});
    if (keys.size() == 0) return 0;
    // Over TLS (tls-cluster) to the target's TLS port, authenticated as the target asks.
    const int port = options_.tls ? node_at(to).tls_port() : to;
    std::vector<std::string> args{"MIGRATE", "127.0.0.1", std::to_string(port), "", "0", "10000"};
    if (const std::string password = requirepass_of(options_.config); !password.empty())
      args.insert(args.end(), {"AUTH", password});
    args.emplace_back("KEYS");
    for (std::size_t i = 0; i < keys.size(); ++i) args.emplace_back(keys[i].as_string());
    source.command(args);
    return keys.size();
  }
  void end_migration(int slot) {
    const auto [from, to] = migration(slot);
    const std::string target = node_id(to);
    // The target first, then the source, then the other masters (as redis-cli does).
    std::vector<int> order{to, from};
    for (int m : master_ports())
      if (m != to && m != from) order.push_back(m);
    for (int port : order)
      node_at(port).connect().command({"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", target});
    migrations_.erase(slot);
    wait_until_stable(options_.start_timeout);
  }
  // All three steps, every key.
  void move_slot(int slot, int to_port) {
    begin_migration(slot, to_port);
    while (migrate_keys(slot, 1000) > 0) {
    }
    end_migration(slot);
  }

  // Scaling in, in two steps. drain_master: the master on `port` hands its
  // replicas to another master (CLUSTER REPLICATE), then all its slots and keys
  // to the others (redis-cli --cluster rebalance, weight 0), and keeps running,
  // a master that serves no slot. remove_node: a replica, or a master that
  // serves no slot, leaves: any replica of it goes to another master, it stops,
  // and every other node forgets it (CLUSTER FORGET). Each returns once the
  // cluster is stable.
  void drain_master(int port) {
    hand_over_replicas(port);
    run_cli({"--cluster", "rebalance", "127.0.0.1:" + std::to_string(port), "--cluster-weight", node_id(port) + "=0",
             "--cluster-yes"}, "rebalance");
    drained_.insert(port);
    wait_until_stable(options_.start_timeout);
  }
  void remove_node(int port) {
    if (std::ranges::any_of(slot_ranges(), [&](const detail::SlotRange& r) { return r.master == port; }))
      throw Error("RedisCluster: the master on port " + std::to_string(port) + " serves slots (drain_master first)");
    hand_over_replicas(port);  // a replica cannot forget its master
    const std::string id = node_id(port);
    node_at(port).kill();
    for (const auto& n : nodes_)
      if (n->running()) n->connect().command({"CLUSTER", "FORGET", id});
    drained_.erase(port);
    wait_until_stable(options_.start_timeout);
  }

  // Waits until every live node reports cluster_state:ok, all agree on the slot
  // map, and every replica's link to its master is up.
  void wait_until_stable(std::chrono::milliseconds timeout) {
    retry_until<Error>(clock::now() + timeout, "not stable", [&] {
      if (std::string why = detail::unstable_reason(nodes_, drained_); !why.empty()) throw Error(why);
      return true;
    });
  }

 private:
  using SlotRange = detail::SlotRange;

  RedisServerOptions node_options() const {
    RedisServerOptions o;
    o.cluster = true;
    o.executable = options_.executable;
    // A replica re-syncs at once (Redis 7 waits 5 s for more replicas by default).
    // CLUSTER SLOTS lists a replica once its replication offset is non-zero: on
    // an empty master that takes the first replication PING (every 10 s by
    // default), so a 1 s period makes the cluster ready in ~3 s instead of ~11.
    o.config = {"cluster-node-timeout " + std::to_string(options_.node_timeout.count()), "repl-diskless-sync-delay 0",
                "repl-ping-replica-period 1"};
    if (options_.tls) {
      o.tls = true;
      o.config.insert(o.config.end(), {"tls-cluster yes", "tls-replication yes"});
      if (!nodes_.empty()) o.tls_certificates = nodes_.front()->tls_files();  // the first node's CA for all
    }
    o.config.insert(o.config.end(), options_.config.begin(), options_.config.end());
    return o;
  }

  // A master that loses its last slot stays a master (Redis 7.0 and later would
  // make it a replica of the node that took the slot), and replicas stay with
  // their master: unless `config` says otherwise. Older Redis does neither and
  // knows no such setting. Written to its redis.conf too, which restart() reads.
  void keep_roles(RedisServer& node) const {
    const auto set_here = [](const std::string& line) { return line.starts_with("cluster-allow-replica-migration"); };
    if (std::ranges::any_of(options_.config, set_here)) return;
    auto conn = node.connect();
    try {
      conn.command({"CONFIG", "SET", "cluster-allow-replica-migration", "no"});
    } catch (const ReplyError&) {  // an older Redis
      return;
    }
    conn.command({"CONFIG", "REWRITE"});  // a failure here is the harness's: thrown
  }

  // Each replica of the master on `port` (as its ROLE lists them) replicates the
  // first other master that serves slots; returns once the cluster is stable.
  void hand_over_replicas(int port) {
    const Reply role = node_at(port).connect().command({"ROLE"});
    if (role[0].as_string() != "master" || role[2].size() == 0) return;
    const auto masters = master_ports();
    const auto to = std::find_if(masters.begin(), masters.end(), [&](int m) { return m != port; });
    if (to == masters.end()) throw Error("RedisCluster: no other master to take the replicas of port " + std::to_string(port));
    const std::string to_id = node_id(*to);
    for (std::size_t i = 0; i < role[2].size(); ++i)
      node_at(std::stoi(std::string(role[2][i][1].as_string()))).connect().command({"CLUSTER", "REPLICATE", to_id});
    wait_until_stable(options_.start_timeout);
  }

  void create() {
    std::vector<std::string> args{"--cluster", "create"};
    for (const auto& n : nodes_) args.push_back("127.0.0.1:" + std::to_string(n->port()));
    args.insert(args.end(), {"--cluster-replicas", std::to_string(options_.replicas_per_master), "--cluster-yes"});
    run_cli(std::move(args), "create");
  }

  // redis-cli `args` (with the nodes' password), which must succeed; `what` names its log.
  void run_cli(std::vector<std::string> args, const std::string& what) {
    detail::run_redis_cli(options_.cli, std::move(args), requirepass_of(options_.config),
                          nodes_.front()->directory() + "/cluster-" + what + ".out", what);
  }

  // The first live node's answer to `args`.
  Reply ask_any(std::initializer_list<Arg> args) const {
    std::string last = "no node is running";
    for (const auto& n : nodes_) {
      if (!n->running()) continue;
      try {
        return n->connect().command(args);
      } catch (const Error& e) {
        last = e.what();
      }
    }
    throw Error("RedisCluster: no node answered: " + last);
  }

  std::vector<SlotRange> slot_ranges() const { return detail::parse_slot_ranges(ask_any({"CLUSTER", "SLOTS"})); }

  // `attempt` every 50 ms until it returns true, a `Refusal` it throws retried
  // too, until `deadline`; then an Error saying `what` and the last refusal.
  template <class Refusal, class Attempt>
  static void retry_until(clock::time_point deadline, const std::string& what, Attempt attempt) {
    std::string last = "none";
    const auto pause = std::chrono::milliseconds(50);
    const bool done = detail::poll_until(deadline, pause, pause, [&] {
      try {
        return attempt();
      } catch (const Refusal& e) {
        last = e.what();
        return false;
      }
    });
    if (!done) throw Error("RedisCluster: " + what + " (timed out; last error: " + last + ")");
  }
  // As retry_until, for at most start_timeout.
  template <class Refusal, class Attempt>
  void retry(const std::string& what, Attempt attempt) {
    retry_until<Refusal>(clock::now() + options_.start_timeout, what, std::move(attempt));
  }

  bool is_master(int port) const {
    try {
      const Reply role = node_at(port).connect().command({"ROLE"});
      return role[0].as_string() == "master";
    } catch (const Error&) {
      return false;
    }
  }

  std::string node_id(int port) const {
    return std::string(node_at(port).connect().command({"CLUSTER", "MYID"}).as_string());
  }

  const std::pair<int, int>& migration(int slot) const {
    const auto it = migrations_.find(slot);
    if (it == migrations_.end()) throw Error("RedisCluster: slot " + std::to_string(slot) + " is not migrating");
    return it->second;
  }

  RedisClusterOptions options_;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
  std::map<int, std::pair<int, int>> migrations_;  // slot -> (source port, target port)
  std::set<int> drained_;                          // masters drain_master left without slots, running
};

}  // namespace cachet::testing
