#pragma once
// A distributed rate limiter: each decision is one Lua script on Redis, on the
// server's clock, all-or-nothing across several limits (allow_all).
//
//   auto limiter = cachet::make_rate_limiter(pool, cachet::Gcra{.rate = 100, .period = 1s, .burst = 20});
//   const cachet::RateLimitResult r = limiter.allow(user_id);        // cost 1
//   limiter.allow(user_id, 5);  limiter.peek(user_id);  limiter.reset(user_id);
//   cachet::allow_all({{per_second, user_id}, {per_day, user_id}});  // both or neither
//
// Keys are {prefix}:{name}:{{id}}: every limit of one identity shares its hash
// slot, so allow_all over one identity's limits runs on Redis Cluster. Each key
// carries a TTL set in the script that writes it (until the limit is full again).
// See docs/rate_limiting.md.

#include <cachet/breaker.hpp>
#include <cachet/detail/one_slot.hpp>
#include <cachet/keys.hpp>
#include <cachet/limit/algorithms.hpp>
#include <cachet/limit/detail/counters.hpp>
#include <cachet/limit/detail/local_state.hpp>
#include <cachet/limit/detail/scripts.hpp>
#include <cachet/limit/detail/unavailable.hpp>
#include <cachet/limit/errors.hpp>
#include <cachet/limit/options.hpp>
#include <cachet/limit/result.hpp>
#include <cachet/metrics/limiter.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/script.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cachet {

class RateLimiter;

// One limit of an allow_all call: a limiter and the identity it limits. `tag`,
// when set, replaces the identity as the key's hash tag ({prefix}:{name}:{{tag}}:{id}),
// to co-locate different identities' limits on a cluster; a tagged key is a
// different counter from the untagged one, so use one tag for an identity everywhere.
struct LimitOf {
  RateLimiter& limiter;
  std::string_view id;
  std::string_view tag{};
};

// Decides every limit in one script: allowed only if all allow, and then each counts
// `cost`; the numbers are those of the limit that denied (longest wait) or else the tightest.
inline RateLimitResult allow_all(std::span<const LimitOf> limits, std::uint64_t cost = 1);
inline RateLimitResult allow_all(std::initializer_list<LimitOf> limits, std::uint64_t cost = 1) {
  return allow_all(std::span<const LimitOf>(limits.begin(), limits.size()), cost);
}

class RateLimiter {
 public:
  template <class Algorithm>
  RateLimiter(Pool& pool, const Algorithm& algorithm, RateLimiterOptions options = {})
      : pool_(pool), spec_(detail::spec(algorithm)), options_(std::move(options)),
        keys_(options_.prefix, {.hash_tag = HashTag::entity}) {
    if (options_.name.empty()) options_.name = spec_.name;
    name_prefix_ = keys_.name_prefix(options_.name);  // checks the name
    if (options_.deny_cache) deny_ = std::make_unique<detail::DenyCache>(options_.local_max_entries);
    if (options_.breaker) breaker_ = std::make_unique<CircuitBreaker>(*options_.breaker);
    if (options_.on_redis_down == OnRedisDown::local) local_ = make_local();
    if (options_.metrics_label.empty()) options_.metrics_label = options_.prefix + ":" + options_.name;
    counters_ = std::make_unique<detail::LimiterCounters>(options_.metrics_label);
  }
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes `cost` (> capacity: denied, retry_after == RateLimitResult::never).
  RateLimitResult allow(std::string_view id, std::uint64_t cost = 1) { return allow_all({{*this, id}}, cost); }
  // Cost 0: what a request of cost 1 would get now, changing nothing.
  RateLimitResult peek(std::string_view id, std::string_view tag = {}) { return allow_all({{*this, id, tag}}, 0); }
  // Forgets the identity's usage (and this process's deny-cache entry).
  void reset(std::string_view id, std::string_view tag = {}) {
    if (deny_) deny_->forget(key(id, tag));
    if (local_) local_->forget(key(id, tag));
    const std::string k = key(id, tag);
    pool_.run(k, [&](Connection& c) { c.command({"DEL", k}); }, Idempotent::yes);
  }

  std::string key(std::string_view id, std::string_view tag = {}) const {
    if (tag.empty()) return keys_.value_in(name_prefix_, id);
    return keys_.value_in(name_prefix_, tag) + ":" + keys_.safe_id(id);
  }

  LimiterFigures figures() const { return counters_->figures(); }
  const RateLimiterOptions& options() const noexcept { return options_; }
  std::uint64_t limit() const noexcept { return spec_.limit; }

 private:
  friend RateLimitResult allow_all(std::span<const LimitOf>, std::uint64_t);

  std::unique_ptr<detail::LocalGcra> make_local() const {
    if (options_.local_limit) {
      const detail::LimitSpec s = detail::spec(*options_.local_limit);
      return std::make_unique<detail::LocalGcra>(std::chrono::microseconds(s.a), s.limit, options_.local_max_entries);
    }
    // Every algorithm as a GCRA of the same average rate and burst (spec_.limit).
    return std::make_unique<detail::LocalGcra>(std::chrono::microseconds(std::max<std::int64_t>(local_interval_us(), 1)),
                                               spec_.limit, options_.local_max_entries);
  }

  // Microseconds per request on average: GCRA's a and a bucket's b are that interval
  // (a bucket's a is its capacity); a window's b / a is its length over its limit.
  std::int64_t local_interval_us() const noexcept {
    switch (spec_.algorithm) {
      case 1: return spec_.a;
      case 4: return spec_.b;
      default: return spec_.b / spec_.a;
    }
  }

  void count(std::uint64_t LimiterFigures::*field) noexcept { counters_->count(field); }

  // The answer while Redis is down, by policy.
  RateLimitResult when_down(std::string_view key, std::uint64_t cost, detail::steady::time_point now);
  // Each limit's policy; allowed if all allow (the local limiters are not all-or-nothing).
  static RateLimitResult down_all(std::span<const LimitOf> limits, const std::vector<std::string>& keys,
                                  std::uint64_t cost, detail::steady::time_point now);
  // The script's answer, counted on every limit; a denial remembered in the deny cache.
  static RateLimitResult from_reply(std::span<const LimitOf> limits, const std::vector<std::string>& keys,
                                    std::uint64_t cost, const Reply& reply, detail::steady::time_point now);

  Pool& pool_;
  detail::LimitSpec spec_;
  RateLimiterOptions options_;
  KeyBuilder keys_;
  std::string name_prefix_;
  std::unique_ptr<detail::DenyCache> deny_;
  std::unique_ptr<CircuitBreaker> breaker_;
  std::unique_ptr<detail::LocalGcra> local_;
  std::unique_ptr<detail::LimiterCounters> counters_;
};

// make_rate_limiter(pool, Gcra{...}, {.deny_cache = 10'000}): the one-line form.
template <class Algorithm>
RateLimiter make_rate_limiter(Pool& pool, const Algorithm& algorithm, RateLimiterOptions options = {}) {
  return RateLimiter(pool, algorithm, std::move(options));
}

namespace detail {

inline std::chrono::milliseconds ceil_ms(std::chrono::nanoseconds d) {
  return std::chrono::ceil<std::chrono::milliseconds>(d);
}
inline std::chrono::milliseconds us_to_ms(long long us) {
  return us < 0 ? RateLimitResult::never : ceil_ms(std::chrono::microseconds(us));
}

inline const Script& rate_limit() {
  static const Script script(rate_limit_script);
  return script;
}

}  // namespace detail

inline RateLimitResult RateLimiter::when_down(std::string_view key, std::uint64_t cost, detail::steady::time_point now) {
  count(&LimiterFigures::redis_errors);
  RateLimitResult r{.allowed = true, .limit = spec_.limit, .remaining = spec_.limit, .from_redis = false};
  switch (options_.on_redis_down) {
    case OnRedisDown::fail_open:
      count(&LimiterFigures::failed_open);
      return r;
    case OnRedisDown::fail_closed:
      count(&LimiterFigures::failed_closed);
      r.allowed = false, r.remaining = 0, r.retry_after = r.reset_after = options_.closed_retry_after;
      return r;
    case OnRedisDown::local: break;
  }
  const detail::LocalGcra::Decision d = local_->decide(key, cost, now);
  count(d.allowed ? &LimiterFigures::fallback_allowed : &LimiterFigures::fallback_denied);
  r.allowed = d.allowed, r.limit = local_->burst(), r.remaining = d.remaining;
  r.retry_after = d.never ? RateLimitResult::never : detail::ceil_ms(d.retry_after);
  r.reset_after = detail::ceil_ms(d.reset_after);
  return r;
}

inline RateLimitResult RateLimiter::down_all(std::span<const LimitOf> limits, const std::vector<std::string>& keys,
                                             std::uint64_t cost, detail::steady::time_point now) {
  RateLimitResult combined;
  for (std::size_t i = 0; i < limits.size(); ++i) {
    RateLimitResult r = limits[i].limiter.when_down(keys[i], cost, now);
    r.limit_index = i;
    if (i == 0 || (combined.allowed && (!r.allowed || r.remaining < combined.remaining))) combined = r;
  }
  return combined;
}

inline RateLimitResult RateLimiter::from_reply(std::span<const LimitOf> limits, const std::vector<std::string>& keys,
                                               std::uint64_t cost, const Reply& reply, detail::steady::time_point now) {
  RateLimitResult r{.allowed = reply[0].as_integer() == 1,
                    .limit = static_cast<std::uint64_t>(reply[1].as_integer()),
                    .remaining = static_cast<std::uint64_t>(reply[2].as_integer()),
                    .retry_after = detail::us_to_ms(reply[3].as_integer()),
                    .reset_after = detail::us_to_ms(reply[4].as_integer()),
                    .limit_index = static_cast<std::size_t>(reply[5].as_integer())};
  if (r.limit_index >= limits.size()) throw ProtocolError("cachet rate limiter: the script named no limit");
  for (const LimitOf& l : limits) l.limiter.count(r.allowed ? &LimiterFigures::allowed : &LimiterFigures::denied);
  RateLimiter& binding = limits[r.limit_index].limiter;
  if (!r.allowed && cost > 0 && binding.deny_ && !r.can_never_pass())
    binding.deny_->deny(keys[r.limit_index], cost, now + r.retry_after, now);
  return r;
}

inline RateLimitResult allow_all(std::span<const LimitOf> limits, std::uint64_t cost) {
  if (limits.empty()) throw std::invalid_argument("cachet::allow_all: no limits");
  RateLimiter& first = limits[0].limiter;
  const auto now = detail::steady::now();
  std::vector<std::string> keys, args{std::to_string(cost)};
  keys.reserve(limits.size());
  args.reserve(1 + 3 * limits.size());
  for (const LimitOf& limit : limits) {  // all refusals before any answer, so misuse always throws
    if (&limit.limiter.pool_ != &first.pool_) throw std::invalid_argument("cachet::allow_all: limiters of different pools");
    keys.push_back(limit.limiter.key(limit.id, limit.tag));
    // The script would decide both against the state before either write, and count once.
    if (std::find(keys.begin(), keys.end() - 1, keys.back()) != keys.end() - 1)
      throw std::invalid_argument("cachet::allow_all: the key " + keys.back() +
                                  " is given twice; give the limiters distinct names (RateLimiterOptions::name)");
  }
  for (std::size_t i = 0; i < limits.size(); ++i) {
    RateLimiter& l = limits[i].limiter;
    if (l.deny_ && cost > 0)
      if (const auto left = l.deny_->blocked(keys[i], cost, now)) {
        l.count(&LimiterFigures::deny_cache);
        const auto wait = detail::ceil_ms(*left);
        return {.allowed = false, .limit = l.spec_.limit, .remaining = 0, .retry_after = wait, .reset_after = wait,
                .limit_index = i, .from_redis = false};
      }
    args.push_back(std::to_string(l.spec_.algorithm));
    args.push_back(std::to_string(l.spec_.a));
    args.push_back(std::to_string(l.spec_.b));
  }
  if (first.options_.one_slot || first.pool_.cluster())
    detail::require_one_slot(keys, "cachet::allow_all", "give them one LimitOf::tag, or make two calls");
  const auto reply = detail::call_unless_down(first.breaker_.get(), [&] {
    return first.pool_.run(keys[0], [&](Connection& c) { return detail::rate_limit().run(c, keys, args); });
  });
  if (reply) return RateLimiter::from_reply(limits, keys, cost, *reply, now);
  return RateLimiter::down_all(limits, keys, cost, now);
}

}  // namespace cachet
