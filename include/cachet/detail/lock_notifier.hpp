#pragma once
// Wakes the waiters of a Redis lock when its holder releases it. One thread
// per notifier holds a subscriber connection on the channel the lock's release
// script PUBLISHes the lock key to; a waiter watches a key and sleeps until its
// release generation moves (or its own back-off runs out: notifications are
// best effort, lost while the subscriber reconnects).

#include <cachet/redis/connection.hpp>
#include <cachet/redis/errors.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

namespace cachet::detail {

class LockNotifier {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  LockNotifier(ConnectionOptions options, std::string channel)
      : options_(std::move(options)), channel_(std::move(channel)) {}
  LockNotifier(const LockNotifier&) = delete;
  LockNotifier& operator=(const LockNotifier&) = delete;
  ~LockNotifier() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  // Starts watching `key`; returns its release generation so far.
  std::uint64_t watch(const std::string& key) {
    std::call_once(started_, [this] { thread_ = std::thread([this] { listen(); }); });
    std::lock_guard lock(mutex_);
    Watched& w = keys_[key];
    ++w.watchers;
    return w.generation;
  }

  void unwatch(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = keys_.find(key);
    if (it != keys_.end() && --it->second.watchers == 0) keys_.erase(it);
  }

  // Sleeps until `key` was released after generation `seen`, or until `until`.
  // Returns the generation now.
  std::uint64_t wait(const std::string& key, std::uint64_t seen, time_point until) {
    std::unique_lock lock(mutex_);
    Watched& w = keys_[key];  // watched by the caller, so present
    released_.wait_until(lock, until, [&] { return w.generation != seen; });
    return w.generation;
  }

  // Whether the subscriber is connected (waiters then rely less on polling).
  bool listening() const noexcept { return listening_; }

 private:
  struct Watched {
    std::size_t watchers = 0;
    std::uint64_t generation = 0;
  };

  void listen() {
    std::optional<Connection> conn;
    auto pause = std::chrono::milliseconds(10);
    while (!stop_) {
      try {
        if (!conn) {
          conn.emplace(options_);
          conn->command({"SUBSCRIBE", channel_});
          listening_ = true;
          pause = std::chrono::milliseconds(10);
          release_all();  // releases were missed while disconnected
        }
        // A short wait, so the destructor is never held up for long.
        if (auto msg = conn->read_push(std::chrono::milliseconds(50))) on_message(*msg);
      } catch (const Error&) {
        listening_ = false;
        conn.reset();
        release_all();
        for (auto slept = std::chrono::milliseconds(0); slept < pause && !stop_; slept += std::chrono::milliseconds(10))
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        pause = std::min(pause * 2, std::chrono::milliseconds(1000));
      }
    }
  }

  // ["message", channel, lock key]
  void on_message(const Reply& msg) {
    if (!msg.is_array() || msg.size() != 3 || !msg[0].is_string() || msg[0].as_string() != "message") return;
    const std::string key(msg[2].as_string());
    {
      std::lock_guard lock(mutex_);
      auto it = keys_.find(key);
      if (it == keys_.end()) return;
      ++it->second.generation;
    }
    released_.notify_all();
  }

  // Wakes every waiter to look again for itself.
  void release_all() {
    {
      std::lock_guard lock(mutex_);
      for (auto& [key, w] : keys_) ++w.generation;
    }
    released_.notify_all();
  }

  ConnectionOptions options_;
  std::string channel_;
  std::mutex mutex_;
  std::condition_variable released_;
  std::unordered_map<std::string, Watched> keys_;
  std::once_flag started_;
  std::thread thread_;
  std::atomic<bool> stop_{false}, listening_{false};
};

}  // namespace cachet::detail
