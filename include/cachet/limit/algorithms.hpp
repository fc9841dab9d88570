#pragma once
// The rate-limit algorithms, each a parameter struct passed with every call
// (never stored in Redis, so a changed limit takes effect on the next request):
//
//   Gcra{.rate = 100, .period = 1s, .burst = 20}   smooth: `rate` per `period`, `burst` at once (the default)
//   TokenBucket{.capacity = 20, .refill = 100, .period = 1s}   the same shape, kept as tokens + a timestamp
//   SlidingWindow{.limit = 100, .window = 1min}    a window's count, weighted with the previous window's
//   FixedWindow{.limit = 100, .window = 1min}      calendar windows: up to 2x `limit` across a boundary
//
// Invalid parameters (a zero rate, limit or period) throw std::invalid_argument
// when a limiter is made.

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace cachet {

// Generic cell rate algorithm (redis-cell, go-redis/redis_rate): one key holding
// the theoretical arrival time. `rate` requests per `period` on average, up to
// `burst` at once (0: burst = rate).
struct Gcra {
  std::uint64_t rate = 0;
  std::chrono::milliseconds period{1000};
  std::uint64_t burst = 0;
};

// A bucket of `capacity` tokens refilled with `refill` tokens per `period`; a
// request takes `cost` tokens.
struct TokenBucket {
  std::uint64_t capacity = 0;
  std::uint64_t refill = 0;
  std::chrono::milliseconds period{1000};
};

// At most `limit` per `window`, estimated as this window's count plus the
// previous window's count weighted by how much of it still overlaps the last
// `window` (Cloudflare's approximation): no 2x burst at a boundary.
struct SlidingWindow {
  std::uint64_t limit = 0;
  std::chrono::milliseconds window{1000};
};

// At most `limit` per calendar window (windows start at multiples of `window`
// since the Unix epoch). Cheapest to explain, but a client may send `limit` at
// the end of one window and `limit` at the start of the next: 2x in a moment.
struct FixedWindow {
  std::uint64_t limit = 0;
  std::chrono::milliseconds window{1000};
};

namespace detail {

// What the script is given for one limit: an algorithm code and two integers
// (microseconds or counts), and the limit a client is told.
struct LimitSpec {
  int algorithm = 0;  // 1 GCRA, 2 fixed window, 3 sliding window, 4 token bucket
  std::int64_t a = 0, b = 0;
  std::uint64_t limit = 0;
  std::string name;  // the default key name: algorithm and period
};

inline std::int64_t positive_us(std::chrono::milliseconds d, const char* what) {
  if (d.count() <= 0) throw std::invalid_argument(std::string("cachet rate limit: ") + what + " must be positive");
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}
inline std::uint64_t positive(std::uint64_t n, const char* what) {
  if (n == 0) throw std::invalid_argument(std::string("cachet rate limit: ") + what + " must be positive");
  return n;
}
// Microseconds per unit: `period` / `n`, at least 1.
inline std::int64_t interval_us(std::chrono::milliseconds period, std::uint64_t n, const char* what) {
  const std::int64_t us = positive_us(period, "period") / static_cast<std::int64_t>(positive(n, what));
  if (us < 1) throw std::invalid_argument("cachet rate limit: more than one request per microsecond");
  return us;
}
inline std::string period_name(const char* algorithm, std::chrono::milliseconds d) {
  return std::string(algorithm) + "-" + std::to_string(d.count()) + "ms";
}

inline LimitSpec spec(const Gcra& g) {
  const std::uint64_t burst = g.burst ? g.burst : g.rate;
  const std::int64_t t = interval_us(g.period, g.rate, "rate");
  return {1, t, t * static_cast<std::int64_t>(burst), burst, period_name("gcra", g.period)};
}
inline LimitSpec spec(const FixedWindow& f) {
  return {2, static_cast<std::int64_t>(positive(f.limit, "limit")), positive_us(f.window, "window"), f.limit,
          period_name("fixed", f.window)};
}
inline LimitSpec spec(const SlidingWindow& s) {
  return {3, static_cast<std::int64_t>(positive(s.limit, "limit")), positive_us(s.window, "window"), s.limit,
          period_name("sliding", s.window)};
}
inline LimitSpec spec(const TokenBucket& b) {
  return {4, static_cast<std::int64_t>(positive(b.capacity, "capacity")), interval_us(b.period, b.refill, "refill"),
          b.capacity, period_name("bucket", b.period)};
}

}  // namespace detail

}  // namespace cachet
