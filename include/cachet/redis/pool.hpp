#pragma once
// A bounded, thread-safe pool of connections. Borrowing waits up to a timeout;
// the RAII Lease gives the connection back; a broken connection is discarded
// (and replaced on demand); a connection idle for long is PINGed before reuse
// (redis/detail/server_pool.hpp). With ConnectionOptions::cluster set it is a
// Redis Cluster client: a pool per node behind run() and its kin
// (redis/detail/cluster_router.hpp, docs/cluster.md).

#include <cachet/metrics.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/detail/cluster_router.hpp>
#include <cachet/redis/detail/endpoint.hpp>
#include <cachet/redis/detail/server_pool.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/pool_options.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

class Pool {
 public:
  using clock = std::chrono::steady_clock;
  using Lease = detail::ServerPool::Lease;

  // With `verify`, throws ConfigError if the configuration cannot work (see
  // ConfigError); an unreachable server is tolerated. With `eager`, throws if the
  // first connection cannot be opened. Throws
  // MetricsLabelError if the metrics label is not valid UTF-8.
  explicit Pool(ConnectionOptions connection, PoolOptions options = {}) {
    if (connection.cluster.enabled()) start_cluster(std::move(connection), std::move(options));
    else server_.emplace(std::move(connection), std::move(options));
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  // Every Lease must be gone before the pool is destroyed.
  ~Pool() {
    if (router_) MetricsRegistry::global().remove_cluster(metrics_id_);
  }

  // On a cluster: a connection to one of the masters, taken in turn, for
  // keyless commands (PING, PUBLISH: a cluster broadcasts it); keyed commands go
  // through run().
  Lease acquire() { return acquire(options().wait_timeout); }

  Lease acquire(std::chrono::milliseconds timeout) {
    if (router_) return router_->acquire_any(timeout);
    return server_->acquire(timeout);
  }

  // Runs f(Connection&) on a leased connection and returns its result.
  template <class F>
  decltype(auto) with(F&& f) {
    Lease lease = acquire();
    return std::forward<F>(f)(*lease);
  }

  // Where a command goes: every Redis command cachet sends passes through one of
  // these. On one server each runs f on a leased connection. Through Redis
  // Cluster (ConnectionOptions::cluster) it runs on the node serving the key's
  // slot, following MOVED and ASK, and retrying TRYAGAIN, CLUSTERDOWN and LOADING
  // within ClusterOptions; a redirection means nothing ran, so f runs again, but
  // after an I/O error or a timeout only if `again` is Idempotent::yes.

  // f(Connection&) for a command (or script) on `key` and keys in its slot.
  template <class F>
  decltype(auto) run(std::string_view key, F&& f, Idempotent again = Idempotent::no) {
    if (router_) return router_->run(key, std::forward<F>(f), again);
    return with(std::forward<F>(f));
  }

  // A batch over many keys: send(Connection&, indices) queues the commands for
  // the keys at `indices` (positions in `keys`, ascending) and flushes them; once
  // every node's batch is sent, receive(Connection&, indices) reads their
  // replies, so nodes work in parallel. On one server each is called once with
  // every index. A redirected reply is the caller's to retry with run().
  template <class Send, class Receive>
  void run_grouped(std::span<const std::string_view> keys, Send&& send, Receive&& receive) {
    if (keys.empty()) return;
    if (router_) return router_->run_grouped(keys, std::forward<Send>(send), std::forward<Receive>(receive));
    std::vector<std::size_t> all(keys.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    Lease lease = acquire();
    send(*lease, std::span<const std::size_t>(all));
    receive(*lease, std::span<const std::size_t>(all));
  }

  // A plain read (GET, MGET; nothing that writes or renews a TTL): run(key, f,
  // Idempotent::yes), except that with ClusterOptions::read_from_replicas it
  // goes to a replica of the key's master when there is one (the master when
  // the replica cannot be reached or redirects).
  template <class F>
  decltype(auto) read(std::string_view key, F&& f) {
    if (router_) return router_->read(key, std::forward<F>(f));
    return with(std::forward<F>(f));
  }
  // run_grouped for plain reads, on replicas likewise.
  template <class Send, class Receive>
  void read_grouped(std::span<const std::string_view> keys, Send&& send, Receive&& receive) {
    if (router_ && !keys.empty()) return router_->read_grouped(keys, std::forward<Send>(send), std::forward<Receive>(receive));
    run_grouped(keys, std::forward<Send>(send), std::forward<Receive>(receive));
  }

  // f(Connection&) once on every master (SCAN, FLUSHALL); once on one server.
  template <class F>
  void for_each_master(F&& f) {
    if (router_) return router_->for_each_master(std::forward<F>(f));
    with(std::forward<F>(f));
  }

  // Whether this pool spreads keys over a Redis Cluster.
  bool cluster() const noexcept { return router_ != nullptr; }

  // On a cluster: the sum of the node pools' (each also in the metrics as
  // cachet_pool_* {pool="host:port"}).
  PoolStats stats() const { return router_ ? router_->stats() : server_->stats(); }

  // stats() as the metrics show them.
  PoolFigures figures() const { return detail::pool_figures(stats()); }

  // "host:port" of the master that this pool's slot map names for `key`'s
  // slot (empty on one server, or when no node serves it).
  std::string cluster_master_of(std::string_view key) const { return router_ ? router_->master_of(key) : ""; }

  // "host:port" of each master the slot map names now; empty on one server.
  std::vector<std::string> cluster_masters() const { return router_ ? router_->masters() : std::vector<std::string>{}; }

  // On a cluster: `changed` runs whenever any slot's master changes in this
  // pool's map (a MOVED, a refresh after a failover or a migration), on the
  // thread that saw it, which may hold any lock: it must not block nor throw
  // (set a flag, notify a thread of your own). Until the handle goes,
  // which must be before the pool; null on one server.
  [[nodiscard]] std::shared_ptr<void> watch_cluster(std::function<void()> changed) {
    if (!router_) return nullptr;
    struct Watch {
      detail::ClusterRouter<detail::ServerPool>* router;
      std::uint64_t id;
      ~Watch() { router->unlisten(id); }
    };
    return std::shared_ptr<Watch>(new Watch{router_.get(), router_->listen(std::move(changed))});  // no temporary to unlisten
  }

  // `options` aimed at that master (its host and port; no seeds, no socket
  // path): a connection of one's own to it. nullopt on one server or when no node serves `key`.
  std::optional<ConnectionOptions> at_cluster_master(std::string_view key, ConnectionOptions options) const {
    const std::optional<detail::Endpoint> at = detail::parse_endpoint(cluster_master_of(key), "");
    if (!at) return std::nullopt;
    options.cluster = {};
    options.path.clear();
    options.host = at->host;
    options.port = at->port;
    return options;
  }

  // On a cluster: reload the slot map soon (paced by refresh_min_interval), without waiting.
  void refresh_cluster_map() {
    if (router_) router_->request_refresh();
  }
  // On a cluster: reload the slot map and wait for it, at most `within`.
  void await_cluster_map(std::chrono::milliseconds within) {
    if (router_) router_->await_refresh(std::chrono::steady_clock::now() + within);
  }

  // Redirections, retries, refreshes and node errors so far; all zero on one server.
  ClusterFigures cluster_stats() const { return router_ ? router_->figures() : ClusterFigures{}; }
  // ASK redirections followed so far (cluster_stats().ask, cheaply); 0 on one server.
  std::uint64_t cluster_asks() const noexcept { return router_ ? router_->asks() : 0; }

  const ConnectionOptions& connection_options() const noexcept {
    return router_ ? connection_ : server_->connection_options();
  }
  const PoolOptions& options() const noexcept { return router_ ? options_ : server_->options(); }

 private:
  // A pool per node; the cluster's figures go to the metrics as cachet_cluster_*
  // {cluster=metrics_label, else the first seed}.
  void start_cluster(ConnectionOptions connection, PoolOptions options) {
    connection_ = std::move(connection), options_ = std::move(options);
    if (options_.size == 0) options_.size = 1;
    if (connection_.sentinel.enabled())
      throw ConfigError("cachet::Pool: ConnectionOptions::cluster and ::sentinel are exclusive");
    std::string label = options_.metrics_label.empty() ? connection_.cluster.seeds.front() : options_.metrics_label;
    options_.metrics_label = detail::checked_label("cluster", std::move(label));
    router_ = std::make_unique<detail::ClusterRouter<detail::ServerPool>>(connection_, options_);
    metrics_id_ = MetricsRegistry::global().add_cluster(options_.metrics_label, [this] { return cluster_stats(); });
  }

  std::optional<detail::ServerPool> server_;  // on one server
  ConnectionOptions connection_;  // through Redis Cluster (the server's own otherwise)
  PoolOptions options_;           // likewise
  std::unique_ptr<detail::ClusterRouter<detail::ServerPool>> router_;  // through Redis Cluster (null otherwise)
  std::uint64_t metrics_id_ = 0;  // the cluster's entry in MetricsRegistry::global()
};

}  // namespace cachet
