#pragma once
// Redis client tracking (server-assisted client-side caching), RESP2 style: one
// dedicated connection subscribes to `__redis__:invalidate` and receives the
// name of every key that changes, whoever changed it (another process,
// redis-cli, a service in another language, an expiry, an eviction, FLUSHALL
// as a null key). Listeners (the first tier of a TieredStore) drop what they
// hold for that key.
//
//   cachet::Tracking tracking(pool, {.prefixes = {"shop:"}});  // one server, or every master of a cluster
//   auto sub = tracking.listen([&](std::optional<std::string_view> key) { ... });  // nullopt: everything
//
// BCAST mode, registered by the subscriber itself. The connection runs
// `CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX <p>...` and then
// SUBSCRIBE, so the registration lives and dies with the one connection whose
// health is watched. Default mode was rejected: there the server remembers, per
// data connection, which keys it read, so every pooled connection must be
// tracked and re-registered whenever it reconnects or the subscriber's id
// changes, and a data connection the pool discards (a timeout, an error) takes
// the memory of its keys with it: later writes to those keys would send nothing
// and the first tier would serve them stale until its TTL. BCAST costs a message
// for every write under the prefixes, including keys this process never read
// (and its own cache fills), and in return needs no per-key state in the server
// (no tracking table, whose overflow in default mode evicts keys by invalidating
// them) and no setup on data connections.
//
// Losing the subscriber loses invalidations, so every change of state (lost,
// back, refused) bumps epoch() and tells every listener to drop everything; a
// first tier only keeps a value it read while the epoch it started under still
// holds and tracking was `live` (or `refused`: then the tier's TTL alone bounds
// staleness). A connection that stops answering PING for `ping_timeout` is
// dropped like a closed one, so stale data is never served for longer than
// `ping_interval + ping_timeout` after the subscriber went deaf.
//
// On a Redis Cluster, Tracking(pool) keeps one such connection on each master
// of the pool's slot map (BCAST on a node reports writes to that node's keys),
// and is live only while all of them are. Any change of a slot's master in the
// map (a failover, a slot moved with or without its keys, a master added or
// gone) bumps the epoch at once (the slot-map follower's thread then empties
// L1), and nothing is kept until a subscriber registers on each master of the
// new map. The map is reloaded every `map_refresh` and whenever a master's
// connection drops, so a change this process never gets redirected by is learned too.
// Coarse on purpose: one epoch for all nodes, so a flush is the whole first
// tier (docs/cluster.md).

#include <cachet/redis/subscriber.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/detail/slot_map_follower.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/node_options.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/sentinel.hpp>
#include <cachet/redis/tracking_options.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace cachet {

class Tracking {
 public:
  using Listener = std::function<void(std::optional<std::string_view> key)>;  // nullopt: drop everything

 private:
  // The listeners, shared with their subscriptions, which may outlive the Tracking.
  struct Hub {
    std::mutex mutex;  // also held while listeners run, so a removal waits for them
    std::vector<std::pair<std::uint64_t, Listener>> listeners;
    std::uint64_t last_listener = 0;
    TrackingStats stats{};
    void remove(std::uint64_t id) noexcept {
      std::lock_guard lock(mutex);
      std::erase_if(listeners, [id](const auto& l) { return l.first == id; });
    }
  };

 public:
  // Removes its listener when destroyed; harmless if the Tracking went first.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&&) noexcept = default;
    Subscription& operator=(Subscription&& o) noexcept {
      if (this != &o) {
        reset();
        hub_ = std::move(o.hub_);
        id_ = o.id_;
      }
      return *this;
    }
    ~Subscription() { reset(); }
    void reset() noexcept {
      if (auto hub = std::exchange(hub_, {}).lock()) hub->remove(id_);
    }

   private:
    friend class Tracking;
    Subscription(std::weak_ptr<Hub> hub, std::uint64_t id) noexcept : hub_(std::move(hub)), id_(id) {}
    std::weak_ptr<Hub> hub_;
    std::uint64_t id_ = 0;
  };

  // Starts the subscriber at once; it registers in the background (wait_live()).
  // Throws ConfigError for Sentinel's replica role: a replica's values lag, and
  // the in-process tier never fills from one. On a cluster, use Tracking(pool):
  // the masters come from the pool's slot map.
  explicit Tracking(ConnectionOptions redis, TrackingOptions options = {})
      : options_(std::move(options)) {
    if (redis.cluster.enabled())
      throw ConfigError("cachet::Tracking on Redis Cluster tracks every master of a pool's slot map: construct it "
                        "from the cluster Pool, Tracking(pool, options) (docs/cluster.md)");
    track_server(std::move(redis));
  }

  // `pool`'s server as above; on a Redis Cluster one tracking connection on each
  // master `pool`'s slot map names, following it (docs/cluster.md). `pool`
  // must outlive the Tracking.
  explicit Tracking(Pool& pool, TrackingOptions options = {})
      : options_(std::move(options)), followed_(&pool) {
    if (pool.cluster()) follow_masters(pool);
    else track_server(pool.connection_options());
  }

  Tracking(const Tracking&) = delete;
  Tracking& operator=(const Tracking&) = delete;
  ~Tracking() {
    if (follower_) follower_->stop();  // waits for a running reconcile
    Nodes all;
    {
      std::lock_guard lock(nodes_mutex_);
      all = std::exchange(nodes_, {});
    }
    drop_nodes(std::move(all));  // joins every subscriber
  }

  // `listener` is called on the subscriber's thread for every invalidated key,
  // and with nullopt whenever everything must go. Keep it short and do not
  // block in it, and do not call back into the Tracking from it.
  [[nodiscard]] Subscription listen(Listener listener) {
    std::lock_guard lock(hub_->mutex);
    hub_->listeners.emplace_back(++hub_->last_listener, std::move(listener));
    return Subscription(hub_, hub_->last_listener);
  }

  // Changes with every change of state; a value read under one epoch may be
  // kept only if the epoch is still the same (and keeps(epoch)).
  std::uint64_t epoch() const noexcept { return epoch_.load(std::memory_order_acquire); }
  static TrackingState state_of(std::uint64_t epoch) noexcept { return static_cast<TrackingState>(epoch & 3); }
  static bool keeps(std::uint64_t epoch) noexcept {
    const TrackingState s = state_of(epoch);
    return s == TrackingState::live || s == TrackingState::refused;
  }
  TrackingState state() const noexcept { return state_of(epoch()); }

  // One server: the subscriber's CLIENT ID while registered, else 0. On a
  // cluster: 0 (each master has its own).
  long long client_id() const {
    std::lock_guard lock(nodes_mutex_);
    return nodes_.size() == 1 && !pool_ ? nodes_.begin()->second->client_id.load(std::memory_order_acquire) : 0;
  }

  // Waits until invalidations flow (true) or `within` passes.
  bool wait_live(std::chrono::milliseconds within) const {
    const auto until = std::chrono::steady_clock::now() + within;
    while (state() != TrackingState::live) {
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  // Waits until every invalidation the server (on a cluster: every master) sent
  // before this call has reached the listeners: a write this process made is
  // then out of its first tier. False when not live (then nothing is being kept
  // anyway) or after `within`.
  bool sync(std::chrono::milliseconds within = std::chrono::seconds(1)) {
    const auto until = std::chrono::steady_clock::now() + within;
    const std::uint64_t before = epoch();
    if (state_of(before) != TrackingState::live) return false;
    for (const std::shared_ptr<Node>& node : current_nodes())  // outside the lock: their hooks take it
      if (!node->subscriber->sync(until)) return false;
    return epoch() == before;
  }

  // Whether invalidations reach keys that start with `key_prefix`.
  bool covers(std::string_view key_prefix) const {
    if (options_.prefixes.empty()) return true;
    return std::any_of(options_.prefixes.begin(), options_.prefixes.end(),
                       [&](const std::string& p) { return key_prefix.substr(0, p.size()) == p; });
  }

  TrackingStats stats() const {
    std::lock_guard lock(hub_->mutex);
    return hub_->stats;
  }
  const TrackingOptions& options() const noexcept { return options_; }
  // The pool it was made from (Tracking(pool)); nullptr from ConnectionOptions.
  const Pool* pool() const noexcept { return followed_; }

 private:
  // One tracking connection: to the server, or to one master of a cluster.
  struct Node {
    TrackingState state = TrackingState::connecting;  // guarded by nodes_mutex_
    std::atomic<long long> client_id{0};
    std::unique_ptr<Subscriber> subscriber;  // last: joined before the rest of the node goes
  };
  using Nodes = std::map<std::string, std::shared_ptr<Node>>;  // by "host:port"

  void track_server(ConnectionOptions redis) {
    sentinel_watch_ = watch_master(redis);
    std::lock_guard lock(nodes_mutex_);
    add_node_locked(redis.endpoint(), std::move(redis));
  }

  // A subscriber on `redis` whose state counts in the epoch from now on.
  void add_node_locked(std::string name, ConnectionOptions redis) {
    auto node = std::make_shared<Node>();
    Node* n = node.get();  // the hooks run while the node lives: its subscriber is its last member
    node->subscriber = std::make_unique<Subscriber>(
        std::move(redis), SubscriberOptions{.ping_interval = options_.ping_interval, .ping_timeout = options_.ping_timeout},
        Subscriber::Hooks{.setup = [this, n](Connection& c) { register_on(*n, c); },
                          .message = [this](const Reply& msg) { on_message(msg); },
                          .up = [this, n] { enter(*n, TrackingState::live); },
                          .down = [this, n] { enter(*n, TrackingState::lost); }});
    node->subscriber->start();  // before it is kept: every node in nodes_ runs (one that did not start has no thread)
    nodes_.emplace(std::move(name), std::move(node));
  }

  std::vector<std::shared_ptr<Node>> current_nodes() const {
    std::lock_guard lock(nodes_mutex_);
    std::vector<std::shared_ptr<Node>> out;
    for (const auto& entry : nodes_) out.push_back(entry.second);
    return out;
  }

  // Stops (joins) their subscribers, outside the lock their hooks take.
  static void drop_nodes(Nodes nodes) noexcept { nodes.clear(); }

  // On the subscriber's connection, before it subscribes. A refusal (an old
  // server, an ACL, overlapping prefixes) is recorded, then thrown so the
  // subscriber tries again later. A server that is only busy for now (loading
  // its data, a script running) is no refusal: the state stays lost, so L1
  // keeps nothing rather than fall back on its TTL.
  void register_on(Node& node, Connection& c) {
    const long long id = c.command({"CLIENT", "ID"}).as_integer();
    std::vector<std::string_view> argv{"CLIENT", "TRACKING", "on", "REDIRECT"};
    const std::string redirect = std::to_string(id);
    argv.push_back(redirect);
    argv.push_back("BCAST");
    for (const std::string& p : options_.prefixes) argv.insert(argv.end(), {"PREFIX", p});
    try {
      c.command(argv);
    } catch (const ReplyError& e) {
      if (!e.is("LOADING") && !e.is("BUSY") && !e.is("MASTERDOWN") && !e.is("TRYAGAIN"))
        enter(node, TrackingState::refused);
      throw;
    }
    c.command({"SUBSCRIBE", "__redis__:invalidate"});
    node.client_id.store(id, std::memory_order_release);
  }

  // ["message", "__redis__:invalidate", [key...] or nil]
  void on_message(const Reply& msg) {
    if (!msg.is_array() || msg.size() != 3 || !msg[0].is_string() || msg[0].as_string() != "message" ||
        !msg[1].is_string() || msg[1].as_string() != "__redis__:invalidate")
      return;
    std::lock_guard lock(hub_->mutex);
    ++hub_->stats.messages;
    const ReplyView keys = msg[2];
    if (!keys.is_array()) return flush_locked();  // FLUSHALL, FLUSHDB: a null key
    for (ReplyView k : keys) {
      ++hub_->stats.keys;
      for (auto& [id, listener] : hub_->listeners) listener(k.as_string());
    }
  }

  // A node's new state: a new epoch, and every listener drops what it holds.
  void enter(Node& node, TrackingState s) {
    if (s != TrackingState::live) node.client_id.store(0, std::memory_order_release);
    if (s == TrackingState::lost && pool_) pool_->refresh_cluster_map();  // a failover, maybe: learn it now
    std::lock_guard lock(nodes_mutex_);
    if (s == TrackingState::refused && node.state == TrackingState::refused) return;  // still refused
    node.state = s;
    if (s == TrackingState::live) {
      std::lock_guard hub_lock(hub_->mutex);
      ++hub_->stats.registrations;
    }
    new_epoch_locked();
  }

  // The state of the whole: live only when every node is, and the nodes are the
  // masters of the pool's latest slot map; refused if some node refused and none
  // is down; else not keeping.
  TrackingState combined_locked() const noexcept {
    if (nodes_.empty() || (follower_ && follower_->behind())) return TrackingState::connecting;
    bool refused = false;
    for (const auto& entry : nodes_) {
      const TrackingState s = entry.second->state;
      if (s == TrackingState::connecting || s == TrackingState::lost) return s;
      refused = refused || s == TrackingState::refused;
    }
    return refused ? TrackingState::refused : TrackingState::live;
  }

  // With nodes_mutex_ held: fills under older epochs are refused, L1 is emptied.
  void new_epoch_locked() {
    bump_epoch([this] { return combined_locked(); });
    flush();
  }

  // The next epoch, in `state()` as of the swap (a compare-exchange: a racing
  // slot-map change, which takes no lock, is never overwritten by an older state).
  template <class State>
  void bump_epoch(State state) noexcept {
    std::uint64_t now = epoch_.load(std::memory_order_acquire);
    while (!epoch_.compare_exchange_weak(now, ((now >> 2) + 1) << 2 | static_cast<std::uint64_t>(state()),
                                         std::memory_order_acq_rel, std::memory_order_acquire)) {
    }
  }

  void flush() {
    std::lock_guard lock(hub_->mutex);
    flush_locked();
  }

  void flush_locked() {
    ++hub_->stats.flushes;
    for (auto& [id, listener] : hub_->listeners) listener(std::nullopt);
  }

  static std::shared_ptr<void> watch_master(const ConnectionOptions& redis) {
    require_master_role(redis.sentinel, "cachet::Tracking");
    return watch_sentinels(redis);  // a failover moves the subscriber at once: `lost` flushes, setup re-registers
  }

  // On a cluster: a slot changed master (a failover, a slot moved with or
  // without its keys, a master added or gone). Nothing is kept from now on;
  // the follower's thread empties L1 and puts a subscriber on each master.
  void follow_masters(Pool& pool) {
    pool_ = &pool;
    base_ = pool.connection_options();
    follower_ = std::make_unique<detail::SlotMapFollower>(
        pool, options_.map_refresh,
        detail::SlotMapFollower::Hooks{.changed = [this]() noexcept { bump_epoch([] { return TrackingState::connecting; }); },
                                       .reconcile = [this](std::uint64_t target) noexcept { return reconcile_once(target); }});
    follower_->start();
  }

  // The change's flush, then a subscriber on each master of the map; false if
  // one could not be made (no pipe): again shortly. The departed subscribers
  // are joined with no lock held, also on failure (their hooks take nodes_mutex_).
  bool reconcile_once(std::uint64_t target) noexcept {
    Nodes gone;
    bool done = true;
    try {
      flush();
      const std::vector<std::string> masters = pool_->cluster_masters();  // outside the lock: the map's own
      std::lock_guard lock(nodes_mutex_);
      reconcile_locked(masters, target, gone);
    } catch (...) {
      done = false;
    }
    drop_nodes(std::move(gone));
    return done;
  }

  // Subscribers on new masters, the departed ones moved to `gone`; a new epoch.
  void reconcile_locked(const std::vector<std::string>& masters, std::uint64_t target, Nodes& gone) {
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      if (std::find(masters.begin(), masters.end(), it->first) == masters.end()) gone.insert(nodes_.extract(it++));
      else ++it;
    }
    for (const std::string& m : masters)
      if (!nodes_.contains(m)) add_node_locked(m, node_options(base_, m, "master"));
    follower_->applied(target);
    new_epoch_locked();
  }

  TrackingOptions options_;
  const Pool* followed_ = nullptr;  // pool(); on a cluster also pool_
  std::shared_ptr<void> sentinel_watch_;  // through Sentinel: follows +switch-master
  std::shared_ptr<Hub> hub_ = std::make_shared<Hub>();
  std::atomic<std::uint64_t> epoch_{static_cast<std::uint64_t>(TrackingState::connecting)};
  mutable std::mutex nodes_mutex_;  // guards the nodes and their states; taken before hub_->mutex
  Nodes nodes_;
  Pool* pool_ = nullptr;  // on a cluster
  ConnectionOptions base_;  // on a cluster: every node's options but host and port
  std::unique_ptr<detail::SlotMapFollower> follower_;  // on a cluster: reconciles the nodes with the map
};

}  // namespace cachet
