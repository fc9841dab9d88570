#pragma once
// A bounded, thread-safe pool of connections. Borrowing waits up to a timeout;
// the RAII Lease gives the connection back; a broken connection is discarded
// (and replaced on demand); a connection idle for long is PINGed before reuse.
// With ConnectionOptions::cluster set it is a Redis Cluster client: a pool per
// node behind run() and its kin (redis/detail/cluster_router.hpp, docs/cluster.md).

#include <cachet/detail/backoff.hpp>
#include <cachet/detail/coarse_clock.hpp>
#include <cachet/metrics.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/detail/cluster_router.hpp>
#include <cachet/redis/detail/endpoint.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/pool_options.hpp>
#include <cachet/redis/sentinel.hpp>

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
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

  class Lease {
   public:
    Lease(Lease&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), conn_(std::move(o.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_) pool_->release(std::move(conn_));
    }
    Connection& operator*() const noexcept { return *conn_; }
    Connection* operator->() const noexcept { return conn_.get(); }
    // Closes the connection instead of returning it (e.g. after a protocol surprise).
    void discard() noexcept { conn_->close(); }

   private:
    friend class Pool;
    Lease(Pool* pool, std::unique_ptr<Connection> conn) noexcept : pool_(pool), conn_(std::move(conn)) {}
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  // With `verify`, throws ConfigError if the configuration cannot work (see
  // ConfigError); an unreachable server is tolerated. With `eager`, throws if the
  // first connection cannot be opened. Throws
  // MetricsLabelError if the metrics label is not valid UTF-8.
  explicit Pool(ConnectionOptions connection, PoolOptions options = {})
      : connection_(std::move(connection)),
        options_(std::move(options)),
        backoff_(connection_.reconnect),
        sentinel_watch_(watch_sentinels(connection_)) {
    if (options_.size == 0) options_.size = 1;
    if (connection_.cluster.enabled()) {
      start_cluster();
      return;
    }
    if (options_.metrics_label.empty())
      options_.metrics_label = connection_.endpoint();
    options_.metrics_label = detail::checked_label("pool", std::move(options_.metrics_label));
    idle_.reserve(options_.size);
    if (options_.verify) verify();
    if (options_.eager) {
      std::vector<Lease> warm;
      for (std::size_t i = 0; i < options_.size; ++i) warm.push_back(acquire());
    }
    metrics_id_ = MetricsRegistry::global().add_pool(options_.metrics_label, [this] { return figures(); });
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  // Every Lease must be gone before the pool is destroyed.
  ~Pool() {
    if (router_) MetricsRegistry::global().remove_cluster(metrics_id_);
    else MetricsRegistry::global().remove_pool(metrics_id_);
  }

  // On a cluster: a connection to one of the masters, taken in turn, for
  // keyless commands (PING, PUBLISH: a cluster broadcasts it); keyed commands go
  // through run().
  Lease acquire() { return acquire(options_.wait_timeout); }

  Lease acquire(std::chrono::milliseconds timeout) {
    if (router_) return router_->any_master().acquire(timeout);
    std::unique_lock lock(mutex_);
    clock::time_point wait_start{};  // set only once this call has to wait
    for (;;) {
      if (!idle_.empty()) {
        Idle idle = std::move(idle_.back());
        idle_.pop_back();
        lock.unlock();
        const Health health = check(*idle.conn, idle.since);
        if (health == Health::ok) {
          note_wait(wait_start);
          return Lease(this, std::move(idle.conn));
        }
        idle.conn.reset();
        lock.lock();
        --open_;
        ++stats_.discarded;
        if (health == Health::dead) continue;  // closed (a restarted server, say): cheap to skip
        // A PING that timed out says Redis is unresponsive: drop every connection
        // that idled as long and report it, rather than pay a timeout for each.
        discard_stale_locked();
        throw TimeoutError(fmt::format("redis: health-check PING on {} (idle over {} ms, PoolOptions::idle_check_after) "
                                       "timed out after {} ms (ConnectionOptions::command_timeout)",
                                       endpoint(), options_.idle_check_after.count(),
                                       connection_.command_timeout.count()));
      }
      if (open_ < options_.size && backoff_.ready()) {
        ++open_;  // reserve the slot, connect without the lock
        lock.unlock();
        std::unique_ptr<Connection> conn = open_connection();
        note_wait(wait_start);
        return Lease(this, std::move(conn));
      }
      if (open_ == 0)  // backing off, and no leased connection could come back
        throw ConnectionError(fmt::format("cachet::Pool: redis at {} unreachable, backing off (last error: {})",
                                          endpoint(), last_error_));
      if (wait_start == clock::time_point{}) wait_start = clock::now();
      const auto deadline = wait_start + timeout;
      if (clock::now() >= deadline) {
        ++stats_.timeouts;
        throw PoolTimeoutError(fmt::format("cachet::Pool: no connection to {} free within {} ms "
                                           "(PoolOptions::wait_timeout; PoolOptions::size is {})",
                                           endpoint(), timeout.count(), options_.size));
      }
      // Wake for a returned connection, or when the back-off allows opening one.
      const auto until = open_ < options_.size ? std::min(deadline, backoff_.next_attempt()) : deadline;
      ++waiters_;
      available_.wait_until(lock, until);
      --waiters_;
    }
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
  PoolStats stats() const {
    if (router_) return router_->stats();
    std::lock_guard lock(mutex_);
    PoolStats s = stats_;
    s.idle = idle_.size();
    s.in_use = open_ - idle_.size();
    s.waiting = waiters_;
    return s;
  }

  // stats() as the metrics show them.
  PoolFigures figures() const {
    const PoolStats s = stats();
    return {.in_use = s.in_use, .idle = s.idle, .waiting = s.waiting, .waits = s.waits, .timeouts = s.timeouts,
            .created = s.created, .discarded = s.discarded, .wait_time = s.wait_time};
  }

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
      detail::ClusterRouter<Pool>* router;
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

  const ConnectionOptions& connection_options() const noexcept { return connection_; }
  const PoolOptions& options() const noexcept { return options_; }

 private:
  // A pool per node; the cluster's figures go to the metrics as cachet_cluster_*
  // {cluster=metrics_label, else the first seed}.
  void start_cluster() {
    if (connection_.sentinel.enabled())
      throw ConfigError("cachet::Pool: ConnectionOptions::cluster and ::sentinel are exclusive");
    std::string label = options_.metrics_label.empty() ? connection_.cluster.seeds.front() : options_.metrics_label;
    options_.metrics_label = detail::checked_label("cluster", std::move(label));
    router_ = std::make_unique<detail::ClusterRouter<Pool>>(connection_, options_);
    metrics_id_ = MetricsRegistry::global().add_cluster(options_.metrics_label, [this] { return cluster_stats(); });
  }

  // Opens the first connection, kept idle for the first user, and PINGs it: a
  // refused set-up or PING that names the options (see misconfigured()), a peer
  // that does not speak RESP (a wrong port) or a unix socket path with no socket
  // is a ConfigError; a TLS certificate, hostname or client certificate refusal
  // leaves as its own TlsError; an unreachable server (refused, timed out), one not ready
  // (LOADING) or full (maxclients) is an outage the pool rides out, as it would later.
  void verify() {
    verifying_ = true;  // on_handshake_error is for refusals after construction
    try {
      Lease first = acquire();
      first->command({"PING"});
    } catch (const TlsCertificateError&) {  // TLS verification failed: a configuration, not an outage
      throw;
    } catch (const TlsHostnameError&) {
      throw;
    } catch (const TlsClientCertificateError&) {
      throw;
    } catch (const HandshakeError& e) {
      throw_if_misconfigured(e.server_message());
      if (options_.eager) throw;
    } catch (const ReplyError& e) {
      throw_if_misconfigured(e.server_message());
    } catch (const ProtocolError& e) {
      throw ConfigError(fmt::format("redis: the server at {} does not speak the Redis protocol (check "
                                    "ConnectionOptions::host, port, path): {}", endpoint(), e.what()));
    } catch (const ConnectionError& e) {
      if (connection_.uses_unix_socket())
        if (const char* why = unix_socket_problem(connection_.path))
          throw ConfigError(fmt::format("redis: no server can listen at {} ({}; ConnectionOptions::path): {}",
                                        connection_.path, why, e.what()));
      if (options_.eager) throw;
    }
    verifying_ = false;
  }

  void throw_if_misconfigured(const std::string& server_message) const {
    if (misconfigured(server_message))
      throw ConfigError(fmt::format("redis at {} refused the connection: {} (check ConnectionOptions::user, "
                                    "password, db, client_name)", endpoint(), server_message));
  }

  // WRONGPASS, NOAUTH, NOPERM and the ERR replies below say the options are wrong;
  // any other ERR (max number of clients reached), LOADING or BUSY say the server
  // cannot serve right now.
  static bool misconfigured(std::string_view message) noexcept {
    const std::string_view code = message.substr(0, message.find(' '));
    if (code == "WRONGPASS" || code == "NOAUTH" || code == "NOPERM") return true;
    static constexpr std::string_view wrong_options[] = {
        "ERR DB index is out of range",                               // SELECT: db
        "ERR invalid DB index",                                       // SELECT: db
        "ERR SELECT is not allowed in cluster mode",                  // SELECT: db
        "ERR AUTH <password> called without any password configured", // a password, server has none (6+)
        "ERR Client sent AUTH, but no password is set",               // the same before 6
        "ERR invalid password",                                       // a wrong password before 6
        "ERR Client names cannot contain",                            // CLIENT SETNAME: client_name
    };
    return std::any_of(std::begin(wrong_options), std::end(wrong_options),
                       [&](std::string_view text) { return message.starts_with(text); });
  }

  // Why `path` cannot be a listening unix socket, or nullptr if it can. Redis creates
  // its socket when it starts: a missing file means a wrong path or a server not started.
  static const char* unix_socket_problem(const std::string& path) noexcept {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno == ENOENT ? "no such file" : "cannot be reached";
    if (!S_ISSOCK(st.st_mode)) return "not a socket";
    if (::access(path.c_str(), R_OK | W_OK) != 0) return "permission denied";
    return nullptr;
  }

  std::string endpoint() const { return connection_.endpoint(); }

  // Opens a connection for a slot acquire() reserved; gives the slot back if that fails.
  std::unique_ptr<Connection> open_connection() {
    try {
      auto conn = std::make_unique<Connection>(connection_);
      std::lock_guard lock(mutex_);
      backoff_.reset();
      refused_ = false;
      ++stats_.created;
      return conn;
    } catch (const ConnectionError& e) {
      give_back_slot(e.what());  // Redis unreachable: later acquires back off
      throw;
    } catch (const ReplyError& e) {  // AUTH or SELECT refused: no connection can open
      give_back_slot(e.what());
      HandshakeError refused(e.server_message());
      report_refusal(refused);
      throw refused;
    } catch (...) {
      give_back_slot(nullptr);
      throw;
    }
  }

  // Tells on_handshake_error, once per run of refusals; not during verify(), which throws or tolerates.
  void report_refusal(const HandshakeError& e) noexcept {
    {
      std::lock_guard lock(mutex_);
      if (verifying_ || std::exchange(refused_, true) || !options_.on_handshake_error) return;
    }
    try {
      options_.on_handshake_error(e);
    } catch (...) {  // the caller gets the HandshakeError either way
    }
  }

  void give_back_slot(const char* connect_error) noexcept {
    std::lock_guard lock(mutex_);
    --open_;
    if (connect_error && backoff_.ready()) {
      backoff_.record_failure();
      last_error_ = connect_error;
    }
    if (waiters_ != 0) available_.notify_one();
  }

  bool stale(detail::CoarseClock::time_point idle_since) const noexcept {
    return detail::CoarseClock::now() - idle_since >= options_.idle_check_after;
  }

  enum class Health { ok, dead, unresponsive };

  // A connection idle past `idle_check_after` must answer a PING first.
  Health check(Connection& conn, detail::CoarseClock::time_point idle_since) const noexcept {
    if (conn.broken() || conn.moved()) return Health::dead;  // moved: a failover left it on the old master
    if (!stale(idle_since)) return Health::ok;
    try {
      return conn.command({"PING"}).is_status() ? Health::ok : Health::dead;
    } catch (const TimeoutError&) {
      return Health::unresponsive;
    } catch (...) {
      return Health::dead;
    }
  }

  // With the lock held: closes every idle connection past the idle check.
  void discard_stale_locked() noexcept {
    std::vector<Idle> keep;
    keep.reserve(options_.size);
    for (Idle& idle : idle_) {
      if (stale(idle.since)) {
        --open_;
        ++stats_.discarded;
      } else {
        keep.push_back(std::move(idle));
      }
    }
    idle_.swap(keep);  // the stale ones close as `keep` goes
    if (waiters_ != 0) available_.notify_all();
  }

  void release(std::unique_ptr<Connection> conn) noexcept {
    bool wake = false;
    if (conn->broken() || conn->pending() != 0 || conn->moved()) {
      conn.reset();  // closes outside the lock
      std::lock_guard lock(mutex_);
      --open_;
      ++stats_.discarded;
      wake = waiters_ != 0;
    } else {
      const auto now = detail::CoarseClock::now();
      std::lock_guard lock(mutex_);
      idle_.push_back({std::move(conn), now});
      wake = waiters_ != 0;
    }
    if (wake) available_.notify_one();  // skipped on the uncontended path
  }

  void note_wait(clock::time_point wait_start) noexcept {
    if (wait_start == clock::time_point{}) return;  // did not wait: no clock read on the fast path
    const auto waited = clock::now() - wait_start;
    std::lock_guard lock(mutex_);
    ++stats_.waits;
    stats_.wait_time += waited;
    if (waited > stats_.max_wait_time) stats_.max_wait_time = waited;
  }

  const ConnectionOptions connection_;
  PoolOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
  struct Idle {
    std::unique_ptr<Connection> conn;
    detail::CoarseClock::time_point since;  // when it was given back
  };
  std::vector<Idle> idle_;  // LIFO: the most recently used is reused first
  std::size_t open_ = 0;     // leased + idle + being opened
  std::size_t waiters_ = 0;  // threads blocked in acquire()
  PoolStats stats_{};
  detail::Backoff backoff_;
  std::string last_error_;
  std::uint64_t metrics_id_ = 0;  // its entry in MetricsRegistry::global()
  bool refused_ = false;  // the last connection set-up was refused (reported once)
  bool verifying_ = false;  // the constructor's verify() runs: refusals are not reported
  std::shared_ptr<void> sentinel_watch_;  // through Sentinel: follows +switch-master (null otherwise)
  std::unique_ptr<detail::ClusterRouter<Pool>> router_;  // through Redis Cluster (null otherwise)
};

}  // namespace cachet
