#pragma once
// The guard that guards nothing: every miss runs its own load. The default of
// the policies until a stampede guard is chosen.

#include <cachet/guard/concepts.hpp>

#include <string_view>
#include <utility>

namespace cachet {

struct NoGuard {
  template <class Load>
  decltype(auto) run(std::string_view /*key*/, Load&& load) {
    return std::forward<Load>(load)();
  }
};

static_assert(Guard<NoGuard>);

}  // namespace cachet
