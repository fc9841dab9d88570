#pragma once
// At most `limit` requests of one identity in flight across processes. Each
// holder has a lease in a sorted set scored by its expiry on the server's clock;
// the acquiring script prunes expired leases first, so a holder that dies (SIGKILL)
// frees its place when its lease runs out. The key expires with its last lease.
//
//   cachet::ConcurrencyLimiter uploads(pool, {.limit = 4, .lease = 30s});
//   cachet::ConcurrencyPermit permit = uploads.acquire(user_id);
//   if (!permit) return reply(429, cachet::rate_limit_headers(permit.result()));
//   ... // the permit is released when it goes out of scope
//
// The lease must outlast the work: a holder still working after it may be joined
// by one more than `limit`.

#include <cachet/breaker.hpp>
#include <cachet/detail/random_hex.hpp>
#include <cachet/keys.hpp>
#include <cachet/limit/detail/counters.hpp>
#include <cachet/limit/detail/scripts.hpp>
#include <cachet/limit/detail/unavailable.hpp>
#include <cachet/limit/result.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/script.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace cachet {

struct ConcurrencyLimit {
  std::uint64_t limit = 0;                    // in flight at once, per identity
  std::chrono::milliseconds lease{30'000};    // a holder's place is freed this long after it took it
};

struct ConcurrencyOptions {
  std::string prefix = "cl";            // keys are {prefix}:{name}:{{id}}
  std::string name = "inflight";
  bool fail_open = true;                // Redis down: allow (true) or deny (false), counted
  std::chrono::milliseconds closed_retry_after{1000};
  std::optional<BreakerOptions> breaker = BreakerOptions{};
  std::string metrics_label{};          // default: prefix:name
};

class ConcurrencyLimiter;

// A place in flight, or a refusal (false). Releasing is best effort: if Redis
// cannot be told, the lease runs out by itself. It must not outlive its limiter.
class ConcurrencyPermit {
 public:
  ConcurrencyPermit(ConcurrencyPermit&& o) noexcept
      : owner_(std::exchange(o.owner_, nullptr)), key_(std::move(o.key_)), token_(std::move(o.token_)), result_(o.result_) {}
  ConcurrencyPermit& operator=(ConcurrencyPermit&&) = delete;
  ~ConcurrencyPermit() { release(); }

  explicit operator bool() const noexcept { return result_.allowed; }
  const RateLimitResult& result() const noexcept { return result_; }
  void release() noexcept;

 private:
  friend class ConcurrencyLimiter;
  ConcurrencyPermit(ConcurrencyLimiter* owner, std::string key, std::string token, RateLimitResult result)
      : owner_(owner), key_(std::move(key)), token_(std::move(token)), result_(result) {}
  ConcurrencyLimiter* owner_;  // null: nothing to release
  std::string key_, token_;
  RateLimitResult result_;
};

class ConcurrencyLimiter {
 public:
  ConcurrencyLimiter(Pool& pool, ConcurrencyLimit limit, ConcurrencyOptions options = {})
      : pool_(pool), limit_(limit), options_(std::move(options)), keys_(options_.prefix, {.hash_tag = HashTag::entity}),
        name_prefix_(keys_.name_prefix(options_.name)) {
    if (limit_.limit == 0 || limit_.lease.count() <= 0)
      throw std::invalid_argument("cachet::ConcurrencyLimiter: limit and lease must be positive");
    if (options_.breaker) breaker_ = std::make_unique<CircuitBreaker>(*options_.breaker);
    if (options_.metrics_label.empty()) options_.metrics_label = options_.prefix + ":" + options_.name;
    counters_ = std::make_unique<detail::LimiterCounters>(options_.metrics_label);
  }

  ConcurrencyPermit acquire(std::string_view id) {
    std::string key = this->key(id), token = new_token();
    const auto r = detail::call_unless_down(breaker_.get(), [&] {
      return pool_.run(key, [&](Connection& c) {
        return script().run(c, {key}, {limit_.limit, std::chrono::microseconds(limit_.lease).count(), token});
      });
    });
    if (r) return from_reply(std::move(key), std::move(token), *r);
    return when_down();
  }

  // Frees every place of the identity.
  void reset(std::string_view id) {
    const std::string k = key(id);
    pool_.run(k, [&](Connection& c) { c.command({"DEL", k}); }, Idempotent::yes);
  }

  std::string key(std::string_view id) const { return keys_.value_in(name_prefix_, id); }
  LimiterFigures figures() const { return counters_->figures(); }

 private:
  friend class ConcurrencyPermit;

  static const Script& script() {
    static const Script s(detail::concurrency_acquire_script);
    return s;
  }

  // 128 bits from the CSPRNG: a PRNG seeded once repeats in a forked child (and has
  // only 2^32 seeds), and two holders with one token would share one place.
  static std::string new_token() { return detail::random_bytes_hex(16); }

  ConcurrencyPermit from_reply(std::string key, std::string token, const Reply& r) {
    const auto ms = [](long long us) { return std::chrono::ceil<std::chrono::milliseconds>(std::chrono::microseconds(us)); };
    const RateLimitResult result{.allowed = r[0].as_integer() == 1, .limit = static_cast<std::uint64_t>(r[1].as_integer()),
                                 .remaining = static_cast<std::uint64_t>(r[2].as_integer()),
                                 .retry_after = ms(r[3].as_integer()), .reset_after = ms(r[4].as_integer())};
    counters_->count(result.allowed ? &LimiterFigures::allowed : &LimiterFigures::denied);
    return {result.allowed ? this : nullptr, std::move(key), std::move(token), result};
  }

  ConcurrencyPermit when_down() {
    counters_->count(&LimiterFigures::redis_errors);
    counters_->count(options_.fail_open ? &LimiterFigures::failed_open : &LimiterFigures::failed_closed);
    RateLimitResult r{.allowed = options_.fail_open, .limit = limit_.limit, .from_redis = false};
    if (!r.allowed) r.retry_after = r.reset_after = options_.closed_retry_after;
    return {nullptr, {}, {}, r};
  }

  void release(const std::string& key, const std::string& token) noexcept {
    try {
      pool_.run(key, [&](Connection& c) { c.command({"ZREM", key, token}); }, Idempotent::yes);
    } catch (...) {  // the lease runs out by itself
    }
  }

  Pool& pool_;
  ConcurrencyLimit limit_;
  ConcurrencyOptions options_;
  KeyBuilder keys_;
  std::string name_prefix_;
  std::unique_ptr<CircuitBreaker> breaker_;
  std::unique_ptr<detail::LimiterCounters> counters_;
};

inline void ConcurrencyPermit::release() noexcept {
  if (ConcurrencyLimiter* owner = std::exchange(owner_, nullptr)) owner->release(key_, token_);
}

}  // namespace cachet
