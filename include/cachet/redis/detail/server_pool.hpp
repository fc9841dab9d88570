#pragma once
// Pool's connections to one server (cachet::Pool on one server, and each node's
// under a cluster, redis/detail/cluster_router.hpp): bounded and thread-safe.
// Borrowing waits up to a timeout; the RAII Lease gives the connection back; a
// broken connection is discarded (and replaced on demand); a connection idle
// for long is PINGed before reuse.

#include <cachet/detail/backoff.hpp>
#include <cachet/detail/coarse_clock.hpp>
#include <cachet/metrics.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/detail/pool_verify.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/pool_options.hpp>
#include <cachet/redis/sentinel.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace cachet::detail {

// A pool's stats as the metrics show them.
inline PoolFigures pool_figures(const PoolStats& s) noexcept {
  return {.in_use = s.in_use, .idle = s.idle, .waiting = s.waiting, .waits = s.waits, .timeouts = s.timeouts,
          .created = s.created, .discarded = s.discarded, .wait_time = s.wait_time};
}

class ServerPool {
 public:
  using clock = std::chrono::steady_clock;

  class Lease {
   public:
    Lease(Lease&& o) noexcept
        : owner_(std::move(o.owner_)), pool_(std::exchange(o.pool_, nullptr)), conn_(std::move(o.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_) pool_->release(std::move(conn_));
    }
    Connection& operator*() const noexcept { return *conn_; }
    Connection* operator->() const noexcept { return conn_.get(); }
    // Closes the connection instead of returning it (e.g. after a protocol surprise).
    void discard() noexcept { conn_->close(); }
    // Keeps `owner` (what keeps the pool alive: a cluster node) until the connection is back.
    void hold(std::shared_ptr<const void> owner) noexcept { owner_ = std::move(owner); }

   private:
    friend class ServerPool;
    Lease(ServerPool* pool, std::unique_ptr<Connection> conn) noexcept : pool_(pool), conn_(std::move(conn)) {}
    std::shared_ptr<const void> owner_;  // see hold(); let go after the connection is back
    ServerPool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  // Throws as Pool's constructor (redis/pool.hpp).
  explicit ServerPool(ConnectionOptions connection, PoolOptions options)
      : connection_(std::move(connection)),
        options_(std::move(options)),
        backoff_(connection_.reconnect),
        sentinel_watch_(watch_sentinels(connection_)) {
    if (options_.size == 0) options_.size = 1;
    if (options_.metrics_label.empty())
      options_.metrics_label = connection_.endpoint();
    options_.metrics_label = checked_label("pool", std::move(options_.metrics_label));
    idle_.reserve(options_.size);
    if (options_.verify) verify();
    if (options_.eager) {
      std::vector<Lease> warm;
      for (std::size_t i = 0; i < options_.size; ++i) warm.push_back(acquire());
    }
    metrics_id_ = MetricsRegistry::global().add_pool(options_.metrics_label, [this] { return figures(); });
  }
  ServerPool(const ServerPool&) = delete;
  ServerPool& operator=(const ServerPool&) = delete;
  // Every Lease must be gone before the pool is destroyed.
  ~ServerPool() { MetricsRegistry::global().remove_pool(metrics_id_); }

  Lease acquire() { return acquire(options_.wait_timeout); }

  Lease acquire(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    clock::time_point wait_start{};  // set only once this call has to wait
    for (;;) {
      if (!idle_.empty()) {
        std::unique_ptr<Connection> conn = take_idle(lock);
        if (!conn) continue;  // found closed: cheap to skip
        note_wait(wait_start);
        return Lease(this, std::move(conn));
      }
      if (open_ < options_.size && backoff_.ready()) {
        ++open_;  // reserve the slot, connect without the lock
        lock.unlock();
        std::unique_ptr<Connection> conn = open_connection();
        note_wait(wait_start);
        return Lease(this, std::move(conn));
      }
      wait_for_return(lock, wait_start, timeout);
    }
  }

  PoolStats stats() const {
    std::lock_guard lock(mutex_);
    PoolStats s = stats_;
    s.idle = idle_.size();
    s.in_use = open_ - idle_.size();
    s.waiting = waiters_;
    return s;
  }
  PoolFigures figures() const { return pool_figures(stats()); }

  const ConnectionOptions& connection_options() const noexcept { return connection_; }
  const PoolOptions& options() const noexcept { return options_; }

 private:
  // The first connection, kept idle for the first user (detail/pool_verify.hpp).
  void verify() {
    verifying_ = true;  // on_handshake_error is for refusals after construction
    verify_pool(connection_, options_.eager, [this] { acquire()->command({"PING"}); });
    verifying_ = false;
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

  bool stale(CoarseClock::time_point idle_since) const noexcept {
    return CoarseClock::now() - idle_since >= options_.idle_check_after;
  }

  // The newest idle connection, unlocked, if its health check passes; nullptr,
  // locked, when it was closed (a restarted server, say).
  std::unique_ptr<Connection> take_idle(std::unique_lock<std::mutex>& lock) {
    Idle idle = std::move(idle_.back());
    idle_.pop_back();
    lock.unlock();
    const Health health = check(*idle.conn, idle.since);
    if (health == Health::ok) return std::move(idle.conn);
    idle.conn.reset();
    lock.lock();
    --open_;
    ++stats_.discarded;
    if (health == Health::dead) return nullptr;
    // A PING that timed out says Redis is unresponsive: drop every connection
    // that idled as long and report it, rather than pay a timeout for each.
    discard_stale_locked();
    throw TimeoutError(fmt::format("redis: health-check PING on {} (idle over {} ms, PoolOptions::idle_check_after) "
                                   "timed out after {} ms (ConnectionOptions::command_timeout)",
                                   endpoint(), options_.idle_check_after.count(), connection_.command_timeout.count()));
  }

  // Waits (locked) for a returned connection, or until the back-off allows opening
  // one; throws when none can come back or `timeout` since the first wait passed.
  void wait_for_return(std::unique_lock<std::mutex>& lock, clock::time_point& wait_start,
                       std::chrono::milliseconds timeout) {
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
    const auto until = open_ < options_.size ? std::min(deadline, backoff_.next_attempt()) : deadline;
    ++waiters_;
    available_.wait_until(lock, until);
    --waiters_;
  }

  enum class Health { ok, dead, unresponsive };

  // A connection idle past `idle_check_after` must answer a PING first.
  Health check(Connection& conn, CoarseClock::time_point idle_since) const noexcept {
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
      const auto now = CoarseClock::now();
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
    CoarseClock::time_point since;  // when it was given back
  };
  std::vector<Idle> idle_;  // LIFO: the most recently used is reused first
  std::size_t open_ = 0;     // leased + idle + being opened
  std::size_t waiters_ = 0;  // threads blocked in acquire()
  PoolStats stats_{};
  Backoff backoff_;
  std::string last_error_;
  std::uint64_t metrics_id_ = 0;  // its entry in MetricsRegistry::global()
  bool refused_ = false;  // the last connection set-up was refused (reported once)
  bool verifying_ = false;  // the constructor's verify() runs: refusals are not reported
  std::shared_ptr<void> sentinel_watch_;  // through Sentinel: follows +switch-master (null otherwise)
};

}  // namespace cachet::detail
