#pragma once
// A rate-limit decision, and the HTTP headers it maps to:
//
//   const auto r = limiter.allow(user_id);
//   if (!r.allowed) reply(429, {{"Retry-After", cachet::retry_after_header(r)}});
//   for (const auto& [name, value] : cachet::rate_limit_headers(r)) add_header(name, value);

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cachet {

struct RateLimitResult {
  // retry_after when the request can never pass: its cost exceeds the limit's capacity.
  static constexpr std::chrono::milliseconds never = std::chrono::milliseconds::max();

  bool allowed = false;
  std::uint64_t limit = 0;      // the most the limit lets through at once
  std::uint64_t remaining = 0;  // how much more would pass right now (after this request, if allowed)
  std::chrono::milliseconds retry_after{0};  // denied: when the same request could pass; `never`; 0 if allowed
  std::chrono::milliseconds reset_after{0};  // until the limit is back to full (nothing used)
  std::size_t limit_index = 0;  // allow_all: which limit these numbers are of (the one that denied, or the tightest)
  bool from_redis = true;       // false: decided in process (deny cache, or Redis down)

  bool can_never_pass() const noexcept { return retry_after == never; }
};

// Whole seconds, rounded up (a client that waits that long is not refused again).
inline std::uint64_t ceil_seconds(std::chrono::milliseconds d) {
  return d.count() <= 0 ? 0 : static_cast<std::uint64_t>((d.count() + 999) / 1000);
}

// The Retry-After value (seconds). A request that can never pass gets one day:
// HTTP has no "never", and the caller should answer such a request with 413 or 400 instead.
inline std::string retry_after_header(const RateLimitResult& r) {
  return std::to_string(r.can_never_pass() ? 86'400 : ceil_seconds(r.retry_after));
}

// RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset (seconds), and
// Retry-After when denied (draft-ietf-httpapi-ratelimit-headers).
inline std::vector<std::pair<std::string, std::string>> rate_limit_headers(const RateLimitResult& r) {
  std::vector<std::pair<std::string, std::string>> h{{"RateLimit-Limit", std::to_string(r.limit)},
                                                     {"RateLimit-Remaining", std::to_string(r.remaining)},
                                                     {"RateLimit-Reset", std::to_string(ceil_seconds(r.reset_after))}};
  if (!r.allowed) h.emplace_back("Retry-After", retry_after_header(r));
  return h;
}

}  // namespace cachet
