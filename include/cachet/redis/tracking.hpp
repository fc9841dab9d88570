#pragma once
// Redis client tracking (server-assisted client-side caching), RESP2 style: one
// dedicated connection subscribes to `__redis__:invalidate` and receives the
// name of every key that changes, whoever changed it (another process,
// redis-cli, a service in another language, an expiry, an eviction, FLUSHALL
// as a null key). Listeners (the first tier of a TieredStore) drop what they
// hold for that key.
//
//   cachet::Tracking tracking(pool.connection_options(), {.prefixes = {"shop:"}});
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

#include <cachet/redis/subscriber.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/sentinel.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace cachet {

struct TrackingOptions {
  // BCAST PREFIX each of these; empty: every key of the server. Cover the
  // namespaces whose values are kept in process ("shop:" for shop:product:42
  // and for the version counters shop:ver:*).
  std::vector<std::string> prefixes{};
  // Health check of the subscriber: a PING every `ping_interval`; no answer
  // within `ping_timeout` drops the connection. Their sum bounds how long a
  // silently lost subscriber can leave stale values in process.
  std::chrono::milliseconds ping_interval{200};
  std::chrono::milliseconds ping_timeout{300};
};

enum class TrackingState : std::uint8_t {
  connecting,  // not yet registered: nothing may be kept
  live,        // invalidations arrive: values may be kept
  lost,        // the subscriber is gone and is reconnecting: nothing may be kept
  refused,     // the server refused CLIENT TRACKING (old server, ACL): values may be kept, bounded by TTL alone
};

struct TrackingStats {
  std::uint64_t messages = 0;  // invalidation messages received
  std::uint64_t keys = 0;      // keys named in them
  std::uint64_t flushes = 0;   // "drop everything": null-key messages (FLUSHALL) and changes of state
  std::uint64_t registrations = 0;  // successful CLIENT TRACKING registrations (1 + reconnects)
};

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
  // the in-process tier never fills from one.
  explicit Tracking(ConnectionOptions redis, TrackingOptions options = {})
      : options_((refuse_cluster(redis.cluster, "cachet::Tracking (the in-process tier's invalidation)"),
                  std::move(options))),
        sentinel_watch_(watch_master(redis)),
        subscriber_(std::move(redis), {.ping_interval = options_.ping_interval, .ping_timeout = options_.ping_timeout},
                    {.setup = [this](Connection& c) { register_on(c); },
                     .message = [this](const Reply& msg) { on_message(msg); },
                     .up = [this] { enter(TrackingState::live); },
                     .down = [this] { enter(TrackingState::lost); }}) {
    subscriber_.start();
  }
  Tracking(const Tracking&) = delete;
  Tracking& operator=(const Tracking&) = delete;
  ~Tracking() { subscriber_.stop(); }

  // `listener` is called on the subscriber's thread for every invalidated key,
  // and with nullopt whenever everything must go. Keep it short, and do not
  // call back into the Tracking from it.
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

  // The subscriber's CLIENT ID while registered, else 0.
  long long client_id() const noexcept { return client_id_.load(std::memory_order_acquire); }

  // Waits until invalidations flow (true) or `within` passes.
  bool wait_live(std::chrono::milliseconds within) const {
    const auto until = std::chrono::steady_clock::now() + within;
    while (state() != TrackingState::live) {
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  // Waits until every invalidation the server sent before this call has reached
  // the listeners: a write this process made is then out of its first tier.
  // False when not live (then nothing is being kept anyway) or after `within`.
  bool sync(std::chrono::milliseconds within = std::chrono::seconds(1)) {
    return subscriber_.sync(std::chrono::steady_clock::now() + within);
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

 private:
  // On the subscriber's connection, before it subscribes. A refusal (an old
  // server, an ACL, overlapping prefixes) is recorded, then thrown so the
  // subscriber tries again later. A server that is only busy for now (loading
  // its data, a script running) is no refusal: the state stays lost, so L1
  // keeps nothing rather than fall back on its TTL.
  void register_on(Connection& c) {
    const long long id = c.command({"CLIENT", "ID"}).as_integer();
    std::vector<std::string_view> argv{"CLIENT", "TRACKING", "on", "REDIRECT"};
    const std::string redirect = std::to_string(id);
    argv.push_back(redirect);
    argv.push_back("BCAST");
    for (const std::string& p : options_.prefixes) argv.insert(argv.end(), {"PREFIX", p});
    try {
      c.command(argv);
    } catch (const ReplyError& e) {
      if (!e.is("LOADING") && !e.is("BUSY") && !e.is("MASTERDOWN") && !e.is("TRYAGAIN")) enter(TrackingState::refused);
      throw;
    }
    c.command({"SUBSCRIBE", "__redis__:invalidate"});
    client_id_.store(id, std::memory_order_release);
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

  // A new state: a new epoch, and every listener drops what it holds.
  void enter(TrackingState s) {
    if (s != TrackingState::live) client_id_.store(0, std::memory_order_release);
    std::lock_guard lock(hub_->mutex);
    if (s == TrackingState::refused && state() == TrackingState::refused) return;  // still refused
    if (s == TrackingState::live) ++hub_->stats.registrations;
    epoch_.store(((epoch() >> 2) + 1) << 2 | static_cast<std::uint64_t>(s), std::memory_order_release);
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

  TrackingOptions options_;
  std::shared_ptr<void> sentinel_watch_;  // through Sentinel: follows +switch-master
  std::shared_ptr<Hub> hub_ = std::make_shared<Hub>();
  std::atomic<std::uint64_t> epoch_{static_cast<std::uint64_t>(TrackingState::connecting)};
  std::atomic<long long> client_id_{0};
  Subscriber subscriber_;  // last: its thread is joined before the members its hooks use are gone
};

}  // namespace cachet
