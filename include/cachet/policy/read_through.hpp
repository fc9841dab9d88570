#pragma once
// Read-through: the loader is bound once, at construction; callers only get(id).
// Same guarantees as CacheAside, which it is built on.
//
//   auto products = cachet::make_read_through<Product>(pool, {.ns = "shop", .name = "product"},
//                                                      [&](std::string_view id) { return db.product(id); });
//   Product p = products.get("42");
// (make_read_through is in policy/make.hpp: stampede-guarded over Redis.)

#include <cachet/policy/cache_aside.hpp>

#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace cachet {

template <class V, class L, Codec C = JsonCodec<V>, Guard G = NoGuard, Store S = RedisStore, Clock Clk = SystemClock>
  requires Loader<L, V>
class ReadThrough {
 public:
  using value_type = V;
  using result_type = std::invoke_result_t<L&, std::string_view>;  // V or std::optional<V>

  ReadThrough(S store, CacheOptions options, L loader, C codec = {}, G guard = {}, Clk clock = {})
      : cache_(std::move(store), std::move(options), std::move(codec), std::move(guard), std::move(clock)),
        loader_(std::move(loader)) {}

  result_type get(std::string_view id) { return cache_.get_or_load(id, loader_); }

  // get() without a copy of a cached value (see CacheAside::get_shared); nullptr for "does not exist".
  std::shared_ptr<const V> get_shared(std::string_view id) { return cache_.get_or_load_shared(id, loader_); }

  // Batch form: the misses are loaded by calling the bound loader once per id.
  std::vector<std::optional<V>> get_many(std::span<const std::string_view> ids) {
    return cache_.get_many(ids, [&](std::span<const std::string_view> missing) {
      std::vector<std::optional<V>> out;
      out.reserve(missing.size());
      for (auto id : missing) out.emplace_back(loader_(id));
      return out;
    });
  }

  bool invalidate(std::string_view id) { return cache_.invalidate(id); }
  CacheAside<V, C, G, S, Clk>& cache() noexcept { return cache_; }

 private:
  CacheAside<V, C, G, S, Clk> cache_;
  L loader_;
};

}  // namespace cachet
