#pragma once
// The options of a CacheAside: its keys, TTL rule, format, breaker, metrics
// label and background workers.

#include <cachet/breaker.hpp>
#include <cachet/codec/entry.hpp>
#include <cachet/executor.hpp>
#include <cachet/invalidation/namespace_version.hpp>
#include <cachet/keys.hpp>
#include <cachet/ttl.hpp>

#include <string>

namespace cachet {

struct CacheOptions {
  std::string ns = "cachet";      // keys are {ns}:{name}:{id}
  std::string name{};             // the value's name: key part, TTL rule, metrics prefix
  KeyOptions keys{};
  TtlPolicy ttl{};                // the central TTL table; the rule for `name` applies
  Format format = Format::envelope;
  BreakerOptions breaker{};
  bool throw_redis_errors = false;  // let Redis errors on reads reach the caller
  std::string metrics_label{};    // the `cache` label of the metrics; defaults to ns:name
  ExecutorOptions background{};   // the workers of background refreshes and timed-out loads
  // A versioned namespace: keys are {ns}:{name}:v{N}:{id} with N = versions->current(name),
  // so versions->bump(name) invalidates every value at once. Must outlive the cache.
  NamespaceVersions* versions = nullptr;
};

}  // namespace cachet
