#pragma once
// A connection pool's figures (PoolFigures) and their Prometheus families,
// cachet_pool_* {pool}: connections by state, waiting, waits, wait time,
// timeouts, created, discarded.

#include <cachet/metrics/detail/prometheus_text.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace cachet {

// A connection pool's figures (each server's pool registers its own, a cluster
// node's too; see redis/detail/server_pool.hpp).
struct PoolFigures {
  std::uint64_t in_use = 0;     // connections leased out now
  std::uint64_t idle = 0;       // open and free now
  std::uint64_t waiting = 0;    // threads blocked for a connection now
  std::uint64_t waits = 0;      // acquires that waited, then got a connection
  std::uint64_t timeouts = 0;   // acquires that gave up waiting
  std::uint64_t created = 0;    // connections opened
  std::uint64_t discarded = 0;  // connections closed as broken or unresponsive
  std::chrono::nanoseconds wait_time{0};  // the waits' total time

  PoolFigures& operator+=(const PoolFigures& o) noexcept {
    in_use += o.in_use, idle += o.idle, waiting += o.waiting, waits += o.waits, timeouts += o.timeouts;
    created += o.created, discarded += o.discarded, wait_time += o.wait_time;
    return *this;
  }
};

namespace detail {

struct PoolSeries {
  std::string_view family, type, help;
  std::string_view state;  // cachet_pool_connections: in_use or idle
  std::uint64_t PoolFigures::*field;
};

inline constexpr std::array<PoolSeries, 8> pool_series{{
    {"cachet_pool_connections", "gauge", "Open connections, by state.", "in_use", &PoolFigures::in_use},
    {"cachet_pool_connections", "gauge", "", "idle", &PoolFigures::idle},
    {"cachet_pool_waiting", "gauge", "Threads waiting for a free connection now.", {}, &PoolFigures::waiting},
    {"cachet_pool_waits_total", "counter", "Acquires that waited for a connection and got one.", {}, &PoolFigures::waits},
    {"cachet_pool_timeouts_total", "counter", "Acquires that gave up waiting for a connection.", {}, &PoolFigures::timeouts},
    {"cachet_pool_connections_created_total", "counter", "Connections opened.", {}, &PoolFigures::created},
    {"cachet_pool_connections_discarded_total", "counter", "Connections closed as broken or unresponsive.", {},
     &PoolFigures::discarded},
    {"cachet_pool_wait_seconds_total", "counter", "Time spent by the acquires that waited and got a connection.", {},
     nullptr},
}};

// The pools' families, one series per pool label (`pools` is ordered by label).
inline void write_pools(PrometheusWriter& w, const std::map<std::string, PoolFigures>& pools) {
  for (std::size_t first = 0, last = 0; first < pool_series.size(); first = last) {
    const PoolSeries& head = pool_series[first];
    while (last < pool_series.size() && pool_series[last].family == head.family) ++last;
    w.family(head.family, head.type, head.help);
    for (const auto& [label, f] : pools)
      for (std::size_t i = first; i < last; ++i) {
        PrometheusWriter& s = w.sample(head.family).label("pool", label);
        if (!pool_series[i].state.empty()) s.label("state", pool_series[i].state);
        if (pool_series[i].field) s.value(f.*pool_series[i].field);
        else s.value_seconds(static_cast<std::uint64_t>(f.wait_time.count()));
      }
  }
}

}  // namespace detail

}  // namespace cachet
