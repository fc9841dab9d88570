#pragma once
// The TTL policy: one table of lifetimes per value name, as the articles keep in
// a CACHE_TTL constant, with what a production cache adds:
//
// - fresh: how long an entry is served as is (the soft TTL);
// - stale: how much longer it is kept to be served stale (stale-while-revalidate,
//   fail-safe); the Redis TTL (hard) is fresh + stale;
// - jitter: each TTL is scaled by a random factor in [1 - jitter, 1 + jitter], so
//   keys written together do not expire together;
// - negative: the TTL of "does not exist" entries; zero disables negative caching;
// - sliding: every hit pushes the expiry out again (sessions).
//
//   cachet::TtlPolicy ttl({.fresh = 5min}, {
//       {"product", {.fresh = 1h, .stale = 10min}},
//       {"session", {.fresh = 30min, .jitter = 0, .sliding = true}},
//   });
//   cachet::Expiry e = ttl.expiry("product", clock.now());

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace cachet {

struct TtlRule {
  std::chrono::milliseconds fresh{std::chrono::minutes(5)};
  std::chrono::milliseconds stale{0};
  double jitter = 0.1;
  std::chrono::milliseconds negative{0};
  bool sliding = false;
};

// When one write's entry turns stale and when Redis drops it.
struct Expiry {
  std::chrono::system_clock::time_point fresh_until;
  std::chrono::milliseconds ttl;  // the Redis TTL (PX) from now: fresh + stale, jittered
};

class TtlPolicy {
 public:
  explicit TtlPolicy(TtlRule fallback = {}, std::map<std::string, TtlRule, std::less<>> rules = {})
      : fallback_(validated(fallback)), rules_(std::move(rules)) {
    for (auto& [name, rule] : rules_) validated(rule);
  }

  void set(std::string name, TtlRule rule) { rules_.insert_or_assign(std::move(name), validated(rule)); }

  const TtlRule& rule(std::string_view name) const {
    const auto it = rules_.find(name);
    return it == rules_.end() ? fallback_ : it->second;
  }

  // The expiry of an entry of `name` written at `now`.
  Expiry expiry(std::string_view name, std::chrono::system_clock::time_point now) const {
    const TtlRule& r = rule(name);
    const double factor = jitter_factor(r.jitter);
    const auto fresh = scale(r.fresh, factor);
    return {now + fresh, std::max(scale(r.fresh + r.stale, factor), std::chrono::milliseconds(1))};
  }

  // The Redis TTL of a negative entry of `name`; zero when negative caching is off for it.
  std::chrono::milliseconds negative_ttl(std::string_view name) const {
    const TtlRule& r = rule(name);
    return r.negative.count() > 0 ? scale(r.negative, jitter_factor(r.jitter)) : std::chrono::milliseconds{0};
  }

  bool sliding(std::string_view name) const { return rule(name).sliding; }

 private:
  static const TtlRule& validated(const TtlRule& r) {
    if (r.fresh.count() <= 0) throw std::invalid_argument("TtlRule: fresh must be positive");
    if (r.stale.count() < 0 || r.negative.count() < 0) throw std::invalid_argument("TtlRule: negative duration");
    if (!(r.jitter >= 0.0 && r.jitter < 1.0)) throw std::invalid_argument("TtlRule: jitter must be in [0, 1)");
    return r;
  }

  static double jitter_factor(double jitter) {
    if (jitter == 0.0) return 1.0;
    thread_local std::minstd_rand rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(1.0 - jitter, 1.0 + jitter)(rng);
  }

  static std::chrono::milliseconds scale(std::chrono::milliseconds d, double factor) {
    return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(static_cast<double>(d.count()) * factor));
  }

  TtlRule fallback_;
  std::map<std::string, TtlRule, std::less<>> rules_;
};

}  // namespace cachet
