#pragma once
// What a stampede guard is: it decides how a miss on `key` turns into a load.
// `run(key, load)` returns what `load()` returns (or rethrows what it throws);
// a guard may run `load` once for many concurrent callers (single-flight), make
// callers wait for another process' load (Redis lock), or just call it (NoGuard).

#include <concepts>
#include <string_view>

namespace cachet {

template <class G>
concept Guard = requires(G& guard, std::string_view key) {
  { guard.run(key, [] { return 1; }) } -> std::same_as<int>;
};

}  // namespace cachet
