#pragma once
// A circuit breaker in front of Redis: after `failure_threshold` consecutive
// failures it opens and calls skip Redis (the read path goes straight to the
// loader) instead of paying a connect timeout each; after `open_for` one caller
// probes (half-open); the probe's success closes it, its failure opens it again
// for twice as long, up to `max_open_for`. Short periods bring the cache back
// soon after Redis is; one probe at a time keeps a dead server from a storm.
// A probe holds its place until it reports, or for `probe_timeout` if it never does.
//
// The closed-state check is one relaxed atomic load: nothing on the hit path locks.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>

namespace cachet {

struct BreakerOptions {
  std::uint32_t failure_threshold = 5;
  std::chrono::milliseconds open_for{50};       // until the first probe
  std::chrono::milliseconds max_open_for{100};  // the longest period, after failed probes (at least open_for)
  // How long a probe that has not reported holds off every other caller: longer
  // than the default connect_timeout + command_timeout, so a hung server sees one probe at a time.
  std::chrono::milliseconds probe_timeout{3000};
};

enum class BreakerState : std::uint8_t { closed, open, half_open };

class CircuitBreaker {
 public:
  using clock = std::chrono::steady_clock;
  using Listener = std::function<void(BreakerState)>;  // told of every transition

  explicit CircuitBreaker(BreakerOptions options = {}, Listener on_transition = {})
      : options_(options), on_transition_(std::move(on_transition)) {
    if (options_.failure_threshold == 0) options_.failure_threshold = 1;
  }

  // May a call go to Redis now? Closed: yes, without reading the clock. Open: the
  // first caller after the open period becomes the half-open probe; everyone
  // else is refused until it reports (or, should it never report, until
  // `probe_timeout` has passed and a new probe goes).
  bool allow() {
    if (state_.load(std::memory_order_acquire) == BreakerState::closed) return true;
    return allow(clock::now());
  }

  bool allow(clock::time_point now) {
    const BreakerState state = state_.load(std::memory_order_acquire);
    if (state == BreakerState::closed) return true;
    // Open: the stamp is when it opened. Half-open: when the probe started.
    auto last = opened_at_.load(std::memory_order_acquire);
    const clock::duration wait = state == BreakerState::half_open ? clock::duration(options_.probe_timeout) : period();
    if (now - clock::time_point(clock::duration(last)) < wait) return false;
    // Open, or half-open with a probe that never reported: one caller wins the
    // stamp and probes.
    if (!opened_at_.compare_exchange_strong(last, now.time_since_epoch().count(), std::memory_order_acq_rel))
      return false;
    return state == BreakerState::half_open || transition(BreakerState::open, BreakerState::half_open);
  }

  void success() {
    if (failures_.load(std::memory_order_relaxed) != 0) failures_.store(0, std::memory_order_relaxed);
    if (state_.load(std::memory_order_acquire) == BreakerState::half_open)
      transition(BreakerState::half_open, BreakerState::closed);
  }

  void failure(clock::time_point now = clock::now()) {
    const auto state = state_.load(std::memory_order_acquire);
    if (state == BreakerState::half_open) {
      const auto longer = std::min<clock::duration>(2 * period(), std::max(options_.max_open_for, options_.open_for));
      period_.store(longer.count(), std::memory_order_relaxed);
      opened_at_.store(now.time_since_epoch().count(), std::memory_order_release);
      transition(BreakerState::half_open, BreakerState::open);
    } else if (state == BreakerState::closed &&
               failures_.fetch_add(1, std::memory_order_relaxed) + 1 >= options_.failure_threshold) {
      period_.store(clock::duration(options_.open_for).count(), std::memory_order_relaxed);
      opened_at_.store(now.time_since_epoch().count(), std::memory_order_release);
      if (transition(BreakerState::closed, BreakerState::open)) failures_.store(0, std::memory_order_relaxed);
    }
  }

  BreakerState state() const noexcept { return state_.load(std::memory_order_acquire); }
  // How long the breaker stays open before the next probe: open_for, doubled by each failed probe.
  clock::duration period() const noexcept { return clock::duration(period_.load(std::memory_order_relaxed)); }
  const BreakerOptions& options() const noexcept { return options_; }

 private:
  bool transition(BreakerState from, BreakerState to) {
    if (!state_.compare_exchange_strong(from, to, std::memory_order_acq_rel)) return false;
    try {
      if (on_transition_) on_transition_(to);
    } catch (...) {  // a listener must not leave the breaker without a probe
    }
    return true;
  }

  BreakerOptions options_;
  Listener on_transition_;
  std::atomic<BreakerState> state_{BreakerState::closed};
  std::atomic<std::uint32_t> failures_{0};
  std::atomic<clock::rep> opened_at_{0};
  std::atomic<clock::rep> period_{clock::duration(options_.open_for).count()};
};

}  // namespace cachet
