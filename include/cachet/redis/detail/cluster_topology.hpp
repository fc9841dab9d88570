#pragma once
// What a cluster client knows of the cluster: a pool per node (a ServerPool,
// created on first use, dropped once a reloaded map no longer names its node;
// each address's figures kept, detail/cluster_node.hpp), and the slot map,
// swapped whole behind a mutex (readers copy the pointer). One
// refresher thread reloads the map from CLUSTER SLOTS when asked (a MOVED, a
// dead node, READONLY), at most once per refresh_min_interval plus jitter, and
// every refresh_period as a backstop.
// Listeners hear of every change of a slot's master (the in-process tier's
// tracking follows the masters, and a slot moved without its keys sends no
// invalidation).

#include <cachet/metrics/cluster.hpp>
#include <cachet/redis/detail/cluster_ledgers.hpp>
#include <cachet/redis/detail/cluster_node.hpp>
#include <cachet/redis/detail/cluster_slot_map.hpp>
#include <cachet/redis/detail/endpoint.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/node_options.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/pool_options.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace cachet::detail {

template <class NodePool>
class ClusterTopology {
 public:
  using clock = std::chrono::steady_clock;

  using Node = ClusterNode<NodePool>;
  // A slot map and the nodes of each of its shards (same index): the master,
  // and the replicas with read_from_replicas (none otherwise), which it keeps: a
  // Node* it gives is valid while the snapshot is held.
  struct Snapshot {
    ClusterSlotMap map;
    std::vector<std::shared_ptr<Node>> masters;
    std::vector<std::vector<std::shared_ptr<Node>>> replicas;
    Node* master_of(std::uint16_t slot) const noexcept {
      const auto* shard = map.shard_of(slot);
      return shard ? masters[index_of(*shard)].get() : nullptr;
    }
    const std::vector<std::shared_ptr<Node>>* replicas_of(std::uint16_t slot) const noexcept {
      const auto* shard = map.shard_of(slot);
      return shard ? &replicas[index_of(*shard)] : nullptr;
    }
    bool holds(const Node* node) const noexcept {
      const auto is = [&](const std::shared_ptr<Node>& n) { return n.get() == node; };
      return std::any_of(masters.begin(), masters.end(), is) ||
             std::any_of(replicas.begin(), replicas.end(), [&](const auto& r) { return std::any_of(r.begin(), r.end(), is); });
    }

   private:
    std::size_t index_of(const ClusterSlotMap::Shard& shard) const noexcept {
      return static_cast<std::size_t>(&shard - map.shards().data());
    }
  };

  // Tries the seeds in order for a first map. With `pool_options.verify`, a
  // seed's misconfiguration (password, not a cluster node) is a ConfigError, an
  // untrusted certificate its TlsError, as for one server (detail::verify_pool);
  // no seed reachable is tolerated (commands fail until one answers).
  ClusterTopology(const ConnectionOptions& options, const PoolOptions& pool_options)
      : base_(single_node(options)), pool_options_(pool_options), cluster_(options.cluster) {
    base_.cluster.read_from_replicas = cluster_.read_from_replicas;  // READONLY on every node's connections
    pool_options_.metrics_label.clear(), pool_options_.eager = false;
    seeds_ = seed_endpoints(cluster_);
    for (const Endpoint& seed : seeds_)
      if (load_from(*node(seed, pool_options.verify), pool_options.verify)) break;
    last_ = clock::now();  // the first load counts: the next waits refresh_min_interval
    refresher_ = std::thread([this] { refresh_loop(); });
  }
  ClusterTopology(const ClusterTopology&) = delete;
  ClusterTopology& operator=(const ClusterTopology&) = delete;
  ~ClusterTopology() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    refresher_.join();
  }

  std::shared_ptr<const Snapshot> snapshot() const {
    std::lock_guard lock(mutex_);
    return snapshot_;
  }

  // The node at `at`, its pool created on first use with the same options
  // (outside the lock: a pool registers its metrics, and a scrape reads ours).
  // Held, it outlives its removal from the map (drop_departed_locked).
  std::shared_ptr<Node> node(const Endpoint& at, bool verify = false) {
    std::string name = name_of(at);
    {
      std::lock_guard lock(nodes_mutex_);
      if (auto it = nodes_.find(name); it != nodes_.end()) return it->second;
    }
    ConnectionOptions options = base_;
    options.host = at.host, options.port = at.port;
    PoolOptions pool_options = pool_options_;
    pool_options.verify = verify;
    auto pool = std::make_unique<NodePool>(std::move(options), std::move(pool_options));  // a racing twin's closes unused
    std::shared_ptr<Node> fresh;  // before the lock: if listing it throws, ~ClusterNode takes nodes_mutex_
    std::lock_guard lock(nodes_mutex_);
    if (auto it = nodes_.find(name); it != nodes_.end()) return it->second;
    NodeLedger<NodePool>& ledger = ledgers_.at(name);
    ledger.open.reserve(ledger.open.size() + 1);  // listing it below cannot throw: a node unlisted could outlive its ledger
    fresh = std::make_shared<Node>(at, name, std::move(pool), ledger, nodes_mutex_);
    ledger.open.push_back(fresh->pool.get());  // the node takes it out as it goes
    return nodes_.emplace(std::move(name), std::move(fresh)).first->second;
  }

  // MOVED: the slot is served at `to` from now on; the whole map is reloaded soon.
  // Applied under the lock to the map current then, so that a newer map a
  // refresh installed meanwhile is not overwritten by an older copy.
  void moved(std::uint16_t slot, const Endpoint& to) {
    ++figures_.moved;
    std::shared_ptr<Node> target = node(to);  // outside the locks, as in install()
    std::shared_ptr<const Snapshot> old;      // let go outside the locks, as in install()
    std::vector<std::shared_ptr<Node>> unused;
    bool changed = false;
    {
      std::lock_guard lock(mutex_);
      auto fresh = std::make_shared<Snapshot>(*snapshot_);
      fresh->map.move_slot(slot, to);
      if (fresh->masters.size() < fresh->map.shards().size()) {  // a new master, which a reload may have dropped since
        std::lock_guard nodes_lock(nodes_mutex_);
        adopt_locked(target, unused);
        fresh->masters.push_back(std::move(target));
        fresh->replicas.emplace_back();
      }
      changed = snapshot_->master_of(slot) != fresh->master_of(slot);
      old = std::exchange(snapshot_, std::move(fresh));
    }
    if (changed) tell_listeners();
    request_refresh();
  }

  // `f` runs after any slot's master changed in the map, on the thread that
  // changed it (a command's, the refresher's), with no lock of ours held: it must
  // not block (that thread may hold anything, a lock its caller took), throw,
  // nor listen or unlisten.
  std::uint64_t listen(std::function<void()> f) {
    std::lock_guard lock(listeners_mutex_);
    listeners_.emplace_back(++last_listener_, std::move(f));
    return last_listener_;
  }
  // Once this returns, that listener is not running and will not run again.
  void unlisten(std::uint64_t id) {
    std::unique_lock lock(listeners_mutex_);
    std::erase_if(listeners_, [id](const auto& l) { return l.first == id; });
    idle_.wait(lock, [&] { return telling_ == 0; });  // a copy may still hold it
  }

  // "host:port" of each master the map names now.
  std::vector<std::string> master_names() const {
    const auto snap = snapshot();  // held: a range-for would drop the temporary before the loop (C++20)
    std::vector<std::string> names;
    for (const auto& n : snap->masters) names.push_back(n->name);
    return names;
  }

  void request_refresh() {
    {
      std::lock_guard lock(mutex_);
      wanted_ = true;
    }
    wake_.notify_all();
  }

  // Asks for a refresh and waits until one that began after this call ended, or `until`.
  void await_refresh(clock::time_point until) {
    std::unique_lock lock(mutex_);
    const std::uint64_t target = done_ + (refreshing_ ? 2 : 1);
    wanted_ = true;
    wake_.notify_all();
    refreshed_.wait_until(lock, until, [&] { return done_ >= target || stop_; });
  }

  void node_error(Node& node) {
    ++node.errors;
    request_refresh();
  }

  // Counters of the router's events (moved is counted by moved()).
  struct Counters {
    std::atomic<std::uint64_t> moved{0}, ask{0}, tryagain{0}, clusterdown{0}, loading{0}, readonly{0};
    std::atomic<std::uint64_t> refreshes{0}, refresh_failures{0};
  };
  Counters& counters() noexcept { return figures_; }
  std::uint64_t asks() const noexcept { return figures_.ask.load(); }

  // Per address it made a node for (detail/cluster_ledgers.hpp: departed ones
  // beyond a cap folded into "departed").
  ClusterFigures figures() const {
    const Counters& c = figures_;
    ClusterFigures f{c.moved, c.ask, c.tryagain, c.clusterdown, c.loading, c.readonly, c.refreshes,
                     c.refresh_failures, {}, {}};
    std::lock_guard lock(nodes_mutex_);
    ledgers_.add_to(f);
    return f;
  }

  // Every open node pool's figures (a departed one still held included) and the closed ones' counters.
  PoolStats pool_stats() const {
    std::lock_guard lock(nodes_mutex_);
    return ledgers_.stats();
  }

 private:
  static std::string name_of(const Endpoint& at) { return at.host + ":" + std::to_string(at.port); }

  // CLUSTER SLOTS from `node`; false if it cannot answer (a ConfigError with `strict`
  // when it answers as no cluster node would).
  bool load_from(Node& node, bool strict = false) {
    try {
      auto lease = node.pool->acquire();
      ClusterSlotMap map = ClusterSlotMap::from_slots_reply(lease->command({"CLUSTER", "SLOTS"}), node.at.host);
      if (map.shards().empty()) return false;  // a node not yet part of a cluster
      install(std::move(map), true);
      return true;
    } catch (const ReplyError& e) {
      if (strict)
        throw ConfigError("redis cluster: seed " + node.name + " answered CLUSTER SLOTS with an error (is it a "
                          "cluster node? ClusterOptions::seeds): " + e.server_message());
    } catch (const ConfigError&) {
      throw;
    } catch (const ConnectionError&) {
      ++node.errors;
    } catch (const Error&) {  // a malformed answer: ask the next node
    }
    return false;
  }

  // The map and the nodes to drop change under both locks (mutex_, then
  // nodes_mutex_), so that a MOVED's new master is never dropped while a map names
  // it. The old map and the departed nodes are let go outside them: the last
  // hold of a node closes its pool, which unregisters its metrics, and a scrape reads ours.
  void install(ClusterSlotMap map, bool refreshed) {
    auto fresh = std::make_shared<Snapshot>();
    for (const auto& shard : map.shards()) {
      fresh->masters.push_back(node(shard.master));
      auto& replicas = fresh->replicas.emplace_back();
      if (cluster_.read_from_replicas)
        for (const Endpoint& replica : shard.replicas) replicas.push_back(node(replica));
    }
    fresh->map = std::move(map);
    std::shared_ptr<const Snapshot> old;
    std::vector<std::shared_ptr<Node>> departed;
    bool changed = false;
    {
      std::lock_guard lock(mutex_);
      std::lock_guard nodes_lock(nodes_mutex_);
      for (auto& n : fresh->masters) adopt_locked(n, departed);
      for (auto& replicas : fresh->replicas)
        for (auto& n : replicas) adopt_locked(n, departed);
      changed = owners_differ(*snapshot_, *fresh);
      old = std::exchange(snapshot_, std::move(fresh));
      if (refreshed) ++figures_.refreshes;
      drop_departed_locked(departed);
    }
    if (changed) tell_listeners();
  }

  // `n` becomes the node nodes_ has for its address (one node per address while
  // a map names it), put there if none; a twin goes to `unused`, let go outside the locks.
  void adopt_locked(std::shared_ptr<Node>& n, std::vector<std::shared_ptr<Node>>& unused) {
    const auto [it, added] = nodes_.try_emplace(n->name, n);
    if (!added && it->second != n) unused.push_back(std::exchange(n, it->second));
  }

  // Forgets the nodes the current map does not hold (a master whose slots all
  // moved away, a removed replica, an ASK target): a service whose cluster is
  // resharded for months keeps no pool per node that ever was. A command or
  // Lease still on one keeps its node until it ends; a redirection there later
  // makes it anew. They go to `departed`, to be let go outside the locks.
  void drop_departed_locked(std::vector<std::shared_ptr<Node>>& departed) {
    for (auto it = nodes_.begin(); it != nodes_.end();)
      if (snapshot_->holds(it->second.get())) ++it;
      else departed.push_back(std::move(it->second)), it = nodes_.erase(it);
  }

  static bool owners_differ(const Snapshot& a, const Snapshot& b) noexcept {
    for (int slot = 0; slot < cluster_slots; ++slot)
      if (a.master_of(static_cast<std::uint16_t>(slot)) != b.master_of(static_cast<std::uint16_t>(slot))) return true;
    return false;
  }

  // On a copy, outside the lock: a listener's thread may come back here (a
  // command it sends is redirected) without waiting on itself.
  void tell_listeners() {
    std::vector<std::function<void()>> now;
    {
      std::lock_guard lock(listeners_mutex_);
      for (const auto& entry : listeners_) now.push_back(entry.second);
      ++telling_;
    }
    for (const auto& f : now) f();
    {
      std::lock_guard lock(listeners_mutex_);
      --telling_;
    }
    idle_.notify_all();
  }

  // The known masters and replicas first, then the seeds; the first answer wins.
  bool refresh() {
    std::vector<Endpoint> ask;
    const auto snap = snapshot();  // held, as a MOVED may replace it meanwhile
    for (const auto& shard : snap->map.shards()) ask.push_back(shard.master);
    for (const auto& shard : snap->map.shards()) ask.insert(ask.end(), shard.replicas.begin(), shard.replicas.end());
    ask.insert(ask.end(), seeds_.begin(), seeds_.end());
    for (const Endpoint& at : ask)
      if (load_from(*node(at))) return true;  // the temporary holds the node while its answer is installed
    ++figures_.refresh_failures;
    return false;
  }

  // Nothing may escape the refresher's thread (std::terminate): any failure is a failed refresh.
  void refresh_guarded() noexcept {
    try {
      refresh();
    } catch (...) {
      ++figures_.refresh_failures;
    }
  }

  void refresh_loop() {
    std::unique_lock lock(mutex_);
    auto periodic = clock::now() + cluster_.refresh_period;
    while (!stop_) {
      if (!wake_.wait_until(lock, periodic, [&] { return stop_ || wanted_; }) && clock::now() < periodic) continue;
      if (stop_) break;
      // Paced: a burst of MOVED (a slot migration) costs one reload per interval.
      if (wake_.wait_until(lock, last_ + cluster_.refresh_min_interval + jitter(), [&] { return stop_; })) break;
      wanted_ = false, refreshing_ = true;
      lock.unlock();
      refresh_guarded();
      lock.lock();
      refreshing_ = false, ++done_, last_ = clock::now();
      periodic = last_ + cluster_.refresh_period;
      refreshed_.notify_all();
    }
    refreshed_.notify_all();
  }

  // Up to a quarter of the interval, so that many clients do not reload at once.
  clock::duration jitter() {
    const auto range = std::chrono::duration_cast<clock::duration>(cluster_.refresh_min_interval) / 4;
    if (range.count() <= 0) return clock::duration{0};
    return clock::duration{std::uniform_int_distribution<clock::rep>(0, range.count())(rng_)};
  }

  ConnectionOptions base_;
  PoolOptions pool_options_;
  const ClusterOptions cluster_;
  std::vector<Endpoint> seeds_;
  mutable std::mutex nodes_mutex_;  // taken after mutex_ when both are
  NodeLedgers<NodePool> ledgers_;  // per address node() was given, bounded (before nodes_: they use it)
  std::map<std::string, std::shared_ptr<Node>> nodes_;   // those the map holds, and redirections' since
  std::mutex listeners_mutex_;
  std::vector<std::pair<std::uint64_t, std::function<void()>>> listeners_;
  std::uint64_t last_listener_ = 0;
  int telling_ = 0;  // tell_listeners() calls running their copies; unlisten() waits for none
  std::condition_variable idle_;
  mutable std::mutex mutex_;  // guards what follows
  std::shared_ptr<const Snapshot> snapshot_ = std::make_shared<Snapshot>();
  std::condition_variable wake_, refreshed_;
  bool stop_ = false, wanted_ = false, refreshing_ = false;
  std::uint64_t done_ = 0;  // refreshes ended
  clock::time_point last_{};
  Counters figures_;
  std::minstd_rand rng_{std::random_device{}()};  // the refresher's alone
  std::thread refresher_;
};

}  // namespace cachet::detail
