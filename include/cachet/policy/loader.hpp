#pragma once
// What a loader returns: V (always found) or std::optional<V> (nullopt = the
// value does not exist, cacheable as a negative entry).

#include <concepts>
#include <optional>
#include <string_view>
#include <type_traits>

namespace cachet::detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

}  // namespace cachet::detail

namespace cachet {

template <class L, class V>
concept Loader = std::invocable<L&, std::string_view> &&
                 (std::same_as<std::invoke_result_t<L&, std::string_view>, V> ||
                  std::same_as<std::invoke_result_t<L&, std::string_view>, std::optional<V>>);

}  // namespace cachet
