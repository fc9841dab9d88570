// Must not compile: a write policy attached to a cache over a MemoryStore, whose
// writes are not Redis scripts. tests/codec/compile_fail/expect_error.cmake
// checks that cachet's message naming what to attach to is the first error.
// POLICY is write_through or write_behind.
#include <cachet/codec/string.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/write_behind.hpp>
#include <cachet/policy/write_through.hpp>
#include <cachet/store/memory_store.hpp>

#include <span>
#include <string>
#include <string_view>

struct AnyWriter {
  void operator()(std::string_view, const std::string&) const {}
  void operator()(std::span<const cachet::PendingWrite<std::string>>) const {}
};

int main() {
  cachet::CacheAside<std::string, cachet::StringCodec, cachet::NoGuard, cachet::MemoryStore> cache(cachet::MemoryStore{},
                                                                                                  {.name = "item"});
  auto policy = cachet::POLICY(cache, AnyWriter{});
  return 0;
}
