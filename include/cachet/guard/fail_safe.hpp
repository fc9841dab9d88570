#pragma once
// Fail-safe: when the load fails (the loader throws, a lock or load times out)
// and a stale value younger than `max_stale` is at hand, that value is served
// (counted as a stale hit) instead of the error, and loads of that key are held
// back for `hold_back`: reads meanwhile get the stale value without calling the
// database. With no such stale value the exception reaches the caller.
//
// The stale value is what Redis still holds past the soft TTL, so it lives for
// TtlRule::stale: choose that window at least as long as the outage you want
// to ride out. Age is measured from when the value was computed. Holding back
// is per process.

#include <cachet/guard/concepts.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace cachet {

struct FailSafeOptions {
  std::chrono::milliseconds max_stale{std::chrono::hours(1)};  // older stale values are never served
  std::chrono::milliseconds hold_back{std::chrono::seconds(5)};  // no load of a failed key for this long
};

class FailSafe {
 public:
  FailSafe() : FailSafe(FailSafeOptions{}) {}
  explicit FailSafe(FailSafeOptions options) : options_(options), held_(std::make_unique<HeldBack>()) {}

  template <class Task, class Next>
  auto run(Task& task, Next& next) -> decltype(next(task)) {
    const bool usable = task.why() == Why::stale && task.current() && task.age() < options_.max_stale;
    if (!usable) return next(task);
    if (held_->until(task.key()) > task.now()) return task.serve_current();
    try {
      return next(task);
    } catch (...) {
      const auto now = task.now();
      held_->hold(task.key(), now, now + options_.hold_back);
      return task.serve_current();
    }
  }

 private:
  // Keys whose loads are held back, and until when.
  struct HeldBack {
    using time_point = EntryMeta::time_point;
    std::mutex mutex;
    std::unordered_map<std::string, time_point> keys;

    time_point until(const std::string& key) {
      std::lock_guard lock(mutex);
      auto it = keys.find(key);
      return it == keys.end() ? time_point::min() : it->second;
    }
    void hold(const std::string& key, time_point now, time_point until) {
      std::lock_guard lock(mutex);
      if (keys.size() >= 1024) std::erase_if(keys, [&](const auto& kv) { return kv.second <= now; });  // bounded
      keys[key] = until;
    }
  };

  FailSafeOptions options_;
  std::unique_ptr<HeldBack> held_;
};

static_assert(Guard<FailSafe>);

}  // namespace cachet
