#pragma once
// Refresh-ahead: a read that finds a fresh entry with less than `fraction` of
// its fresh life left (default 20 %) returns it at once and schedules one
// background refresh of the key, so a key that keeps being read is replaced
// before it expires and no reader ever waits for its load. Put the lock after it
// for one refresh per key across processes:
//
//   GuardStack<RefreshAheadGuard, SingleFlight, RedisLockGuard>   (policy/refresh_ahead.hpp)
//
// A refresh that finds the lock taken leaves it to the holder; one that gets the
// lock after another process refreshed finds the newer value and loads nothing.
// The fresh life is the envelope's created-at to fresh-until; plain-format
// entries carry neither and are never refreshed ahead.

#include <cachet/guard/detail/background_refresh.hpp>
#include <cachet/guard/concepts.hpp>

#include <chrono>
#include <stdexcept>

namespace cachet {

struct RefreshAheadOptions {
  double fraction = 0.2;  // refresh when less than this share of the fresh life is left
};

class RefreshAheadGuard {
 public:
  RefreshAheadGuard() : RefreshAheadGuard(RefreshAheadOptions{}) {}
  explicit RefreshAheadGuard(RefreshAheadOptions options) : options_(options) {
    if (!(options_.fraction > 0.0 && options_.fraction < 1.0))
      throw std::invalid_argument("cachet: RefreshAheadOptions::fraction must be in (0, 1)");
  }

  bool refresh_early(const EntryMeta& meta, EntryMeta::time_point now) const {
    if (meta.fresh_until == EntryMeta::time_point::max() || now >= meta.fresh_until) return false;  // plain, or stale
    const auto life = meta.fresh_until - meta.created_at;
    return life.count() > 0 && static_cast<double>((meta.fresh_until - now).count()) <
                                   options_.fraction * static_cast<double>(life.count());
  }

  template <class Task, class Next>
  auto run(Task& task, Next& next) -> decltype(next(task)) {
    return refresh_.refresh_if_early(task, next);
  }

  std::size_t refreshing() const { return refresh_.in_progress(); }
  const RefreshAheadOptions& options() const noexcept { return options_; }

 private:
  RefreshAheadOptions options_;
  detail::BackgroundRefresh refresh_;
};

static_assert(EarlyRefreshing<RefreshAheadGuard>);

}  // namespace cachet
