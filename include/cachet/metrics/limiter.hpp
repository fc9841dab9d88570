#pragma once
// A rate limiter's figures (LimiterFigures) and their Prometheus families:
// cachet_limiter_decisions_total{limiter,outcome} and
// cachet_limiter_redis_errors_total{limiter}.

#include <cachet/metrics/detail/prometheus_text.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

namespace cachet {

// A limiter's decisions by how they were made (limit/ registers its own).
struct LimiterFigures {
  std::uint64_t allowed = 0;           // Redis allowed
  std::uint64_t denied = 0;            // Redis denied
  std::uint64_t deny_cache = 0;        // denied in process: the identity was known to be blocked
  std::uint64_t failed_open = 0;       // Redis down, allowed by policy
  std::uint64_t failed_closed = 0;     // Redis down, denied by policy
  std::uint64_t fallback_allowed = 0;  // Redis down, allowed by the local limiter
  std::uint64_t fallback_denied = 0;   // Redis down, denied by the local limiter
  std::uint64_t redis_errors = 0;      // calls that found Redis down (or the breaker open)

  LimiterFigures& operator+=(const LimiterFigures& o) noexcept {
    allowed += o.allowed, denied += o.denied, deny_cache += o.deny_cache, failed_open += o.failed_open;
    failed_closed += o.failed_closed, fallback_allowed += o.fallback_allowed;
    fallback_denied += o.fallback_denied, redis_errors += o.redis_errors;
    return *this;
  }
};

namespace detail {

inline constexpr std::array<std::pair<std::string_view, std::uint64_t LimiterFigures::*>, 7> limiter_outcomes{{
    {"allowed", &LimiterFigures::allowed},
    {"denied", &LimiterFigures::denied},
    {"deny_cache", &LimiterFigures::deny_cache},
    {"failed_open", &LimiterFigures::failed_open},
    {"failed_closed", &LimiterFigures::failed_closed},
    {"fallback_allowed", &LimiterFigures::fallback_allowed},
    {"fallback_denied", &LimiterFigures::fallback_denied},
}};

// Every field, for a limiter's counters.
inline constexpr std::array<std::uint64_t LimiterFigures::*, 8> limiter_fields{
    &LimiterFigures::allowed,     &LimiterFigures::denied,           &LimiterFigures::deny_cache,
    &LimiterFigures::failed_open, &LimiterFigures::failed_closed,    &LimiterFigures::fallback_allowed,
    &LimiterFigures::fallback_denied, &LimiterFigures::redis_errors};

inline void write_limiters(PrometheusWriter& w, const std::map<std::string, LimiterFigures>& limiters) {
  w.family("cachet_limiter_decisions_total", "counter", "Rate-limit decisions, by how they were made.");
  for (const auto& [label, f] : limiters)
    for (const auto& [outcome, field] : limiter_outcomes)
      w.sample("cachet_limiter_decisions_total").label("limiter", label).label("outcome", outcome).value(f.*field);
  w.family("cachet_limiter_redis_errors_total", "counter", "Rate-limit calls that found Redis down.");
  for (const auto& [label, f] : limiters)
    w.sample("cachet_limiter_redis_errors_total").label("limiter", label).value(f.redis_errors);
}

}  // namespace detail

}  // namespace cachet
