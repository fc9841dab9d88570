// Every options struct can be given with designated initializers that name only
// some members (the README's style) under -Wextra -Werror: each member has a
// default initializer. `T{{}}` names the first member and omits the rest.
#include <cachet/cachet.hpp>
#include <cachet/testing/redis_server.hpp>
#include <cachet/testing/sentinel_group.hpp>

namespace {
template <class... T>
void omit_members() {
  [[maybe_unused]] const auto all = std::make_tuple(T{{}}...);
}
}  // namespace

void cachet_options_defaults() {
  omit_members<cachet::BackoffOptions, cachet::ConnectionOptions, cachet::PoolOptions, cachet::TrackingOptions,
               cachet::BreakerOptions, cachet::KeyOptions, cachet::TtlRule, cachet::ExecutorOptions,
               cachet::CacheOptions, cachet::VersionOptions, cachet::TagOptions, cachet::Targets,
               cachet::PatternInvalidationOptions, cachet::MemoryStoreOptions, cachet::TieredOptions,
               cachet::RedisLockOptions, cachet::RedisLockGuardOptions, cachet::FailSafeOptions,
               cachet::RefreshAheadOptions, cachet::EarlyExpirationOptions, cachet::LoadTimeoutOptions,
               cachet::WriteThroughOptions, cachet::WriteBehindOptions, cachet::CountersOptions, cachet::Replication,
               cachet::TlsOptions, cachet::SentinelOptions, cachet::SentinelAddress,
               cachet::testing::RedisServerOptions, cachet::testing::SentinelGroupOptions>();
#ifdef CACHET_HAS_ZSTD
  omit_members<cachet::CompressionOptions>();
#endif
}
