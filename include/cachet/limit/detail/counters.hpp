#pragma once
// A limiter's counters, registered with the metrics registry for its lifetime.

#include <cachet/metrics/limiter.hpp>
#include <cachet/metrics/registry.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace cachet::detail {

class LimiterCounters {
 public:
  explicit LimiterCounters(std::string label)
      : id_(MetricsRegistry::global().add_limiter(std::move(label), [this] { return figures(); })) {}
  LimiterCounters(const LimiterCounters&) = delete;
  LimiterCounters& operator=(const LimiterCounters&) = delete;
  ~LimiterCounters() { MetricsRegistry::global().remove_limiter(id_); }

  void count(std::uint64_t LimiterFigures::*field) noexcept {
    for (std::size_t i = 0; i < counters_.size(); ++i)
      if (limiter_fields[i] == field) counters_[i].fetch_add(1, std::memory_order_relaxed);
  }

  LimiterFigures figures() const noexcept {
    LimiterFigures f;
    for (std::size_t i = 0; i < counters_.size(); ++i) f.*limiter_fields[i] = counters_[i].load(std::memory_order_relaxed);
    return f;
  }

 private:
  std::array<std::atomic<std::uint64_t>, limiter_fields.size()> counters_{};
  std::uint64_t id_;  // after counters_: registered once they exist
};

}  // namespace cachet::detail
