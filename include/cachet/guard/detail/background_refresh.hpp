#pragma once
// Serves the value in hand and refreshes the key on the cache's executor, at
// most one refresh per key at a time in this process (the guards further down
// the stack, a Redis lock say, make it one across processes). Shared by
// stale-while-revalidate and early expiration.

#include <cachet/guard/concepts.hpp>
#include <cachet/metrics.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <utility>

namespace cachet::detail {

class BackgroundRefresh {
 public:
  BackgroundRefresh() : state_(std::make_shared<State>()) {}

  template <class Task, class Next>
  auto serve_and_refresh(Task& task, const Next& next) -> decltype(next(task)) {
    start(task, next);
    return task.serve_current();
  }

  // For the guards that pick fresh entries (early expiration, refresh-ahead): a
  // picked entry is served and refreshed; anything else goes on down the stack.
  template <class Task, class Next>
  auto refresh_if_early(Task& task, const Next& next) -> decltype(next(task)) {
    if (task.why() == Why::early && !task.refresh_only()) return serve_and_refresh(task, next);
    return next(task);
  }

  // Refreshes running or queued now.
  std::size_t in_progress() const {
    std::lock_guard lock(state_->mutex);
    return state_->keys.size();
  }

 private:
  struct State {
    mutable std::mutex mutex;
    std::unordered_set<std::string> keys;
    bool claim(const std::string& key) {
      std::lock_guard lock(mutex);
      return keys.insert(key).second;
    }
    void release(const std::string& key) {
      std::lock_guard lock(mutex);
      keys.erase(key);
    }
  };

  template <class Task, class Next>
  void start(Task& task, const Next& next) {
    if (!state_->claim(task.key())) return;  // already refreshing
    auto job = [state = state_, t = task.detach(true), next]() mutable {
      struct Release {
        State& s;
        const std::string& key;
        ~Release() { s.release(key); }
      } release{*state, t.key()};
      t.count(Event::refresh);
      try {
        next(t);
      } catch (...) {  // counted as a load error by the load; the value in hand stays served
      }
    };
    if (!task.executor().try_submit(std::move(job))) {
      state_->release(task.key());
      task.count(Event::background_rejected);
    }
  }

  std::shared_ptr<State> state_;
};

}  // namespace cachet::detail
