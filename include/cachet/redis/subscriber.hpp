#pragma once
// One thread holding one pub/sub connection, for the lock notifier and client
// tracking: it connects (again and again, paced by the connection's back-off),
// runs the owner's setup (SUBSCRIBE, CLIENT TRACKING, ...), and hands every
// pushed message to the owner. When asked to, it PINGs every `ping_interval`
// and drops a connection whose PING stays unanswered for `ping_timeout`: a
// silent network or a hung server otherwise looks like a live, quiet socket.
//
// sync() waits until everything the server sent on this connection before the
// call has been handed to the owner (a PING sent after the call has come back:
// the server answers in order).
//
// On a Redis Cluster (ConnectionOptions::cluster) it connects to the seeds in
// turn, moving to the next whenever a connection fails or is lost: a classic
// PUBLISH reaches every node of a cluster, replicas too, so any one will do.
// On each connect it asks that node for the cluster's nodes (CLUSTER SLOTS:
// masters and replicas) and takes them in turn after the seeds, so it comes
// back even when every seed is down (see detail/cluster_node_ring.hpp).
// (Client tracking is per node: Tracking gives each of its subscribers a node.)
//
// Hooks run on the subscriber's thread. An owner declares its Subscriber as its
// last member, so the thread is joined before anything the hooks use is gone.

#include <cachet/detail/backoff.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/detail/cluster_node_ring.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/node_options.hpp>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace cachet {

struct SubscriberOptions {
  std::chrono::milliseconds ping_interval{0};  // 0: no health PINGs
  std::chrono::milliseconds ping_timeout{1000};
};

class Subscriber {
 public:
  using clock = std::chrono::steady_clock;

  struct Hooks {
    std::function<void(Connection&)> setup;     // after each connect; throws to fail the attempt
    std::function<void(const Reply&)> message;  // every push except the answers to our PINGs
    std::function<void()> up;                   // a setup succeeded
    std::function<void()> down;                 // that connection was lost (not called on stop)
  };

  Subscriber(ConnectionOptions options, SubscriberOptions sub, Hooks hooks)
      : options_(std::move(options)), sub_(sub), hooks_(std::move(hooks)), nodes_(seed_endpoints(options_.cluster)) {
    if (::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    try {
      follow_master();
    } catch (...) {  // the destructor will not run: do not leak the pipe
      ::close(wake_[0]);
      ::close(wake_[1]);
      throw;
    }
  }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;
  ~Subscriber() {
    stop();
    if (resolver_) resolver_->unlisten(listener_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  // Starts the thread; later calls do nothing.
  void start() {
    std::call_once(started_, [this] { thread_ = std::thread([this] { run(); }); });
  }

  // Stops and joins the thread; idempotent.
  void stop() {
    stop_ = true;
    wake();
    if (thread_.joinable()) thread_.join();
  }

  bool up() const noexcept { return up_; }

  // True once everything the server sent before this call has been handed over;
  // false if the connection is down, or was lost, or `deadline` passed first.
  bool sync(clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    if (!up_) return false;
    const std::uint64_t after = sent_;
    sync_wanted_ = true;
    wake();
    answered_.wait_until(lock, deadline, [&] { return acked_ > after || !up_; });
    return acked_ > after;
  }

 private:
  using Unanswered = std::deque<std::pair<std::uint64_t, clock::time_point>>;  // our PINGs in flight: number, sent at

  // Through Sentinel: the resolver wakes this thread when the master moves, and
  // serve() drops the connection, so `down` runs and `setup` runs on the new master.
  void follow_master() {
    if (!options_.sentinel.enabled()) return;
    resolver_ = detail::SentinelResolver::get(options_.sentinel);
    listener_ = resolver_->listen([this] { wake(); });
  }

  // The server; on a cluster, the next seed or learned node in turn.
  ConnectionOptions next_node() {
    if (nodes_.empty()) return options_;
    return node_options(options_, nodes_.next());
  }

  // On a cluster, before the setup subscribes (a subscribed connection takes no
  // CLUSTER command): the nodes this one knows. A refusal (an ACL) or a
  // malformed answer leaves the list as it was; a lost connection fails the attempt.
  void learn_nodes(Connection& conn) {
    if (options_.cluster.seeds.empty()) return;
    try {
      nodes_.learn(conn.command({"CLUSTER", "SLOTS"}), conn.options().host);
    } catch (const ReplyError&) {
    }
  }

  void run() {
    detail::Backoff backoff(options_.reconnect);
    while (!stop_) {
      bool was_up = false;
      try {
        Connection conn(next_node());
        learn_nodes(conn);
        hooks_.setup(conn);
        backoff.reset();
        hooks_.up();
        set_up(was_up = true);
        serve(conn);  // returns when stopped
      } catch (const Error&) {
        if (was_up) {
          set_up(false);
          hooks_.down();
        }
        backoff.record_failure();
        pause_until(backoff.next_attempt());
      }
    }
    set_up(false);
  }

  // Reads pushes until stopped; throws when the connection fails or a PING times out.
  void serve(Connection& conn) {
    Unanswered unanswered;
    const bool pinging = sub_.ping_interval.count() > 0;
    auto next_ping = clock::now() + sub_.ping_interval;
    while (!stop_) {
      if (conn.moved()) throw ConnectionError("cachet: subscriber's server is no longer the master (Sentinel failover)");
      const auto now = clock::now();
      if (!unanswered.empty() && now - unanswered.front().second >= sub_.ping_timeout) {
        // Not a silent server if something is waiting to be read: a backlog, or this thread was descheduled.
        if (std::optional<Reply> msg = conn.read_push(std::chrono::milliseconds(0))) {
          handle(*msg, unanswered);
          continue;
        }
        throw TimeoutError("cachet: subscriber PING unanswered for " + std::to_string(sub_.ping_timeout.count()) + " ms");
      }
      const bool due = pinging && now >= next_ping;
      if (take_sync_request() || due) unanswered.emplace_back(ping(conn), now);
      if (due) next_ping = now + sub_.ping_interval;
      auto until = now + std::chrono::seconds(1);
      if (pinging) until = std::min(until, next_ping);
      if (!unanswered.empty()) until = std::min(until, unanswered.front().second + sub_.ping_timeout);
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(until - now) + std::chrono::milliseconds(1);
      std::optional<Reply> msg = conn.read_push(wait, wake_[0]);
      if (!msg) {
        drain();
        continue;
      }
      handle(*msg, unanswered);
    }
  }

  // A PONG answers our PINGs up to its number; anything else goes to the hook.
  void handle(const Reply& msg, Unanswered& unanswered) {
    if (const auto seq = pong_of(msg)) {
      while (!unanswered.empty() && unanswered.front().first <= *seq) unanswered.pop_front();
      acknowledge(*seq);
    } else {
      hooks_.message(msg);
    }
  }

  std::uint64_t ping(Connection& conn) {
    std::uint64_t seq;
    {
      std::lock_guard lock(mutex_);
      seq = ++sent_;
    }
    conn.send({"PING", std::to_string(seq)});
    return seq;
  }

  // A subscribed connection answers PING with ["pong", argument].
  static std::optional<std::uint64_t> pong_of(const Reply& msg) {
    if (!msg.is_array() || msg.size() != 2 || !msg[0].is_string() || msg[0].as_string() != "pong") return std::nullopt;
    try {
      return std::stoull(std::string(msg[1].as_string()));
    } catch (const std::exception&) {
      return std::nullopt;  // someone else's PING argument
    }
  }

  bool take_sync_request() {
    std::lock_guard lock(mutex_);
    return std::exchange(sync_wanted_, false);
  }

  void acknowledge(std::uint64_t seq) {
    {
      std::lock_guard lock(mutex_);
      acked_ = std::max(acked_, seq);
    }
    answered_.notify_all();
  }

  void set_up(bool up) {
    {
      std::lock_guard lock(mutex_);
      up_ = up;
    }
    answered_.notify_all();
  }

  void wake() noexcept {
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(wake_[1], &byte, 1);  // a full pipe is already a wake-up
  }

  void drain() noexcept {
    char buf[64];
    while (::read(wake_[0], buf, sizeof buf) > 0) {
    }
  }

  // Sleeps until `until`, or until woken to stop.
  void pause_until(clock::time_point until) {
    while (!stop_) {
      const auto now = clock::now();
      if (now >= until) return;
      pollfd p{wake_[0], POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count()) + 1);
      drain();
    }
  }

  ConnectionOptions options_;
  SubscriberOptions sub_;
  Hooks hooks_;
  int wake_[2] = {-1, -1};  // a self-pipe: stop() and sync() interrupt the thread's poll
  std::mutex mutex_;
  std::condition_variable answered_;
  std::uint64_t sent_ = 0, acked_ = 0;  // PINGs sent and answered, by sequence number
  bool sync_wanted_ = false;
  std::atomic<bool> up_{false}, stop_{false};
  detail::ClusterNodeRing nodes_;  // empty off a cluster; the run thread's alone once started
  std::once_flag started_;
  std::shared_ptr<detail::SentinelResolver> resolver_;  // through Sentinel only
  std::uint64_t listener_ = 0;
  std::thread thread_;
};

}  // namespace cachet
