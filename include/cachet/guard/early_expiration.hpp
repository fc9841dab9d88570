#pragma once
// Probabilistic early recomputation, XFetch (Vattani, Chierichetti, Lowenstein,
// "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015): a read of a
// fresh entry recomputes it early when
//
//   now - compute_time * beta * ln(U) >= fresh_until,   U uniform in (0, 1]
//
// so the chance grows as expiry nears, sooner for values slow to compute
// (compute_time comes from the envelope). beta > 1 favours earlier
// recomputation, < 1 later. The reader that is picked still gets the cached
// value at once; the recomputation runs in the background, one at a time per
// key (put SingleFlight and RedisLockGuard after it for one across processes).
// Entries without a compute time (plain format) are never picked.

#include <cachet/guard/detail/background_refresh.hpp>
#include <cachet/guard/concepts.hpp>

#include <chrono>
#include <cmath>
#include <random>

namespace cachet {

struct EarlyExpirationOptions {
  double beta = 1.0;
};

class EarlyExpiration {
 public:
  EarlyExpiration() : EarlyExpiration(EarlyExpirationOptions{}) {}
  explicit EarlyExpiration(EarlyExpirationOptions options) : options_(options) {}

  bool refresh_early(const EntryMeta& meta, EntryMeta::time_point now) const {
    if (meta.compute_time.count() <= 0 || now >= meta.fresh_until) return false;  // stale is not early
    const double delta = std::chrono::duration<double>(meta.compute_time).count();
    const double gap = std::chrono::duration<double>(meta.fresh_until - now).count();
    return -delta * options_.beta * std::log(uniform()) >= gap;
  }

  template <class Task, class Next>
  auto run(Task& task, Next& next) -> decltype(next(task)) {
    return refresh_.refresh_if_early(task, next);
  }

  std::size_t refreshing() const { return refresh_.in_progress(); }

 private:
  // Uniform in (0, 1]: log(0) would pick every read.
  static double uniform() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return 1.0 - std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }

  EarlyExpirationOptions options_;
  detail::BackgroundRefresh refresh_;
};

static_assert(EarlyRefreshing<EarlyExpiration>);

}  // namespace cachet
