#pragma once
// Keeps the leases of held Redis locks alive while their loads run: one thread
// extends every registered lock each `every` (a third of the lease, so two
// renewals can fail before the lease runs out). A lock that was lost (extend
// returns false) stays registered until its holder removes it; its fenced write
// will be refused.

#include <cachet/store/redis_lock.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_set>

namespace cachet::detail {

class LeaseRenewer {
 public:
  explicit LeaseRenewer(std::chrono::milliseconds every) : every_(every) {}
  LeaseRenewer(const LeaseRenewer&) = delete;
  LeaseRenewer& operator=(const LeaseRenewer&) = delete;
  ~LeaseRenewer() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    tick_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  void add(RedisLock& lock) {
    std::call_once(started_, [this] { thread_ = std::thread([this] { renew(); }); });
    std::lock_guard guard(mutex_);
    locks_.insert(&lock);
  }

  // After this returns, the renewer no longer touches `lock` (an extend in
  // progress holds the mutex).
  void remove(RedisLock& lock) {
    std::lock_guard guard(mutex_);
    locks_.erase(&lock);
  }

  std::size_t renewals() const noexcept { return renewals_; }

 private:
  void renew() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      tick_.wait_for(lock, every_, [&] { return stop_; });
      for (RedisLock* held : locks_) {
        try {
          held->extend();
          ++renewals_;
        } catch (const Error&) {  // Redis unreachable: try again next tick, the lease has slack for it
        }
      }
    }
  }

  std::chrono::milliseconds every_;
  std::mutex mutex_;
  std::condition_variable tick_;
  std::unordered_set<RedisLock*> locks_;
  std::once_flag started_;
  std::thread thread_;
  bool stop_ = false;
  std::atomic<std::size_t> renewals_{0};
};

}  // namespace cachet::detail
