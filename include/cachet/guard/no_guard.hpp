#pragma once
// The guard that guards nothing: every miss runs its own load. The default of
// the policies until a stampede guard is chosen.

#include <cachet/guard/concepts.hpp>

namespace cachet {

struct NoGuard {
  template <class Task, class Next>
  auto run(Task& task, Next& next) -> decltype(next(task)) {
    return next(task);
  }
};

static_assert(Guard<NoGuard>);

}  // namespace cachet
