#pragma once
// Wakes the waiters of a Redis lock when its holder releases it. One thread
// per notifier, started with it, holds a subscriber connection on the channel the lock's release
// script PUBLISHes the lock key to; a waiter watches a key and sleeps until its
// release generation moves (or its own back-off runs out: notifications are
// best effort, lost while the subscriber reconnects). On a Redis Cluster the
// release's PUBLISH reaches every node, so the subscriber listens on any one
// seed and moves to the next when it loses it (see Subscriber).

#include <cachet/redis/subscriber.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/store/redis_store.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace cachet {

class LockNotifier {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  LockNotifier(ConnectionOptions options, std::string channel)
      : channel_(std::move(channel)),
        subscriber_(std::move(options), {},
                    {.setup = [this](Connection& c) { c.command({"SUBSCRIBE", channel_}); },
                     .message = [this](const Reply& msg) { on_message(msg); },
                     .up = [this] { release_all(); },     // releases were missed while disconnected
                     .down = [this] { release_all(); }}) {
    subscriber_.start();  // now, so the first contended miss does not wait for the SUBSCRIBE
  }
  // On the server `store` writes to (its locks' releases are published there).
  LockNotifier(const RedisStore& store, std::string channel)
      : LockNotifier(store.pool().connection_options(), std::move(channel)) {}
  LockNotifier(const LockNotifier&) = delete;
  LockNotifier& operator=(const LockNotifier&) = delete;

  // Starts watching `key`; returns its release generation so far.
  std::uint64_t watch(const std::string& key) {
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
  bool listening() const noexcept { return subscriber_.up(); }

 private:
  struct Watched {
    std::size_t watchers = 0;
    std::uint64_t generation = 0;
  };

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

  std::string channel_;
  std::mutex mutex_;
  std::condition_variable released_;
  std::unordered_map<std::string, Watched> keys_;
  Subscriber subscriber_;  // last: its thread is joined before the members its hooks use are gone
};

}  // namespace cachet
