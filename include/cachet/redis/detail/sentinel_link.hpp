#pragma once
// A Connection's tie to Sentinel: the master's generation it was opened on, so
// that it can tell when a failover moved the master, and tell the resolver
// what it learned (a lost server, a stale answer).

#include <cachet/redis/detail/sentinel_resolver.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/reply.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

namespace cachet::detail {

class SentinelLink {
 public:
  // Off unless `options` are enabled.
  explicit SentinelLink(const SentinelOptions& options)
      : resolver_(options.enabled() ? SentinelResolver::get(options) : nullptr) {}

  explicit operator bool() const noexcept { return resolver_ != nullptr; }

  // The address to open is the current master's (or a replica's).
  void resolve(ConnectionOptions& options) {
    if (!resolver_) return;
    SentinelTarget t = resolver_->resolve(options.sentinel.role, options.connect_timeout);
    options.host = std::move(t.host);
    options.port = t.port;
    generation_ = t.generation;
  }

  // The master moved since the connection was opened (a failover).
  bool moved() const noexcept { return resolver_ && resolver_->generation() != generation_; }

  // The server may be a failed or demoted master: the next connect asks the sentinels.
  void invalidate() noexcept {
    if (resolver_) resolver_->invalidate(generation_);
  }

  // HELLO's "role" (HELLO is allowed to any ACL user, unlike ROLE) must be the
  // role asked for (a stale answer can point at a demoted master).
  void check_role(const Reply& hello, SentinelRole role, std::string_view endpoint) {
    const bool master = role == SentinelRole::master;
    const std::string_view want = master ? "master" : "replica";
    for (std::size_t i = 0; hello.is_array() && i + 1 < hello.size(); i += 2)
      if (hello[i].is_string() && hello[i].as_string() == "role" && hello[i + 1].is_string() &&
          hello[i + 1].as_string() == want)
        return;
    if (master) resolver_->wrong_role(generation_);  // its sentinel is asked last
    else resolver_->invalidate(generation_);          // replicas are asked again each interval anyway
    throw ConnectionError(fmt::format("sentinel: {} is not a {} (HELLO); rediscovering", endpoint, want));
  }

 private:
  std::shared_ptr<SentinelResolver> resolver_;  // null unless through Sentinel
  std::uint64_t generation_ = 0;  // the master's generation when the connection was opened
};

}  // namespace cachet::detail
