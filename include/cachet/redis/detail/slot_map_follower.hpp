#pragma once
// Tracking's reconciler on a Redis Cluster: hears every change of a slot's
// master in a pool's map and, on a thread of its own, reconciles after each
// (again shortly when that fails); it asks the pool for a fresh map every
// `refresh`, so that a change this process is never redirected by is learned too.

#include <cachet/redis/pool.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

namespace cachet::detail {

class SlotMapFollower {
 public:
  struct Hooks {
    // On the thread that changed the map, which may hold any lock: must not block nor throw.
    std::function<void()> changed;
    // On the follower's thread, for the change numbered `target`; false: again shortly.
    std::function<bool(std::uint64_t target)> reconcile;
  };

  // `pool` must outlive the follower.
  SlotMapFollower(Pool& pool, std::chrono::milliseconds refresh, Hooks hooks)
      : pool_(pool), refresh_(refresh), hooks_(std::move(hooks)) {}
  SlotMapFollower(const SlotMapFollower&) = delete;
  SlotMapFollower& operator=(const SlotMapFollower&) = delete;
  ~SlotMapFollower() { stop(); }

  // Apart from the constructor, so that the owner holds the follower before its hooks run.
  void start() {
    watch_ = pool_.watch_cluster([this]() noexcept { slots_changed(); });
    thread_ = std::thread([this] { loop(); });
  }

  // Waits for a running changed() and reconcile(); none runs after.
  void stop() {
    watch_.reset();
    {
      std::lock_guard wake(wake_mutex_);
      stopping_ = true;
    }
    wanted_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // Called by reconcile() on the follower's thread, its only writer: the
  // owner's readers of behind() hold the owner's lock, the loop's wait does not need it.
  void applied(std::uint64_t target) noexcept { applied_ = target; }
  // A change heard is not reconciled yet.
  bool behind() const noexcept { return applied_ != changes_.load(); }

 private:
  // Takes no lock but the follower's wake-up one (see Hooks::changed).
  void slots_changed() noexcept {
    ++changes_;
    hooks_.changed();
    { std::lock_guard wake(wake_mutex_); }  // the follower is waiting, or will see changes_
    wanted_.notify_all();
  }

  // Reconciles after each change of the map, and asks for a fresh map every refresh_.
  void loop() {
    std::unique_lock wake(wake_mutex_);
    auto next_refresh = std::chrono::steady_clock::now() + refresh_;
    while (!stopping_) {
      if (!wanted_.wait_until(wake, next_refresh, [&] { return stopping_ || behind(); })) {
        pool_.refresh_cluster_map();
        next_refresh = std::chrono::steady_clock::now() + refresh_;
        continue;
      }
      if (stopping_) break;
      wake.unlock();
      const bool done = hooks_.reconcile(changes_.load());
      wake.lock();
      if (!done) wanted_.wait_for(wake, std::chrono::milliseconds(100), [&] { return stopping_; });
    }
  }

  Pool& pool_;
  const std::chrono::milliseconds refresh_;
  const Hooks hooks_;
  std::atomic<std::uint64_t> changes_{1};  // slot-map changes heard (the first reconcile counts)
  std::uint64_t applied_ = 0;  // and reconciled: written by the follower's thread under the owner's lock
  std::mutex wake_mutex_;  // the follower's wake-up: guards stopping_, taken with no other lock
  bool stopping_ = false;
  std::condition_variable wanted_;
  std::shared_ptr<void> watch_;  // slots_changed() on every change of a slot's master
  std::thread thread_;
};

}  // namespace cachet::detail
