#pragma once
// Command arguments. Every command is sent as RESP bulk strings, so keys
// and values are binary safe: spaces, "\r\n", "%s" and NUL bytes are just bytes.

#include <charconv>
#include <concepts>
#include <cstddef>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>

namespace cachet {

// One argument of a braced command list: `conn.command({"SET", key, value, "PX", 1500})`.
// Integers are formatted in place; strings are viewed, not copied, so an Arg must
// not outlive what it views (it lives for the full expression of the call).
class Arg {
 public:
  Arg(std::string_view s) noexcept : view_(s) {}                   // NOLINT: implicit by design
  Arg(const std::string& s) noexcept : view_(s) {}                 // NOLINT
  Arg(const char* s) noexcept : view_(s) {}                        // NOLINT
  template <std::integral I>
    requires(!std::same_as<I, bool> && !std::same_as<I, char> && sizeof(I) <= 8)  // fits buf_
  Arg(I value) noexcept {                                          // NOLINT
    const auto r = std::to_chars(buf_, buf_ + sizeof buf_, value);
    view_ = std::string_view(buf_, static_cast<std::size_t>(r.ptr - buf_));
  }
  Arg(const Arg&) = delete;  // view_ may point into buf_
  Arg& operator=(const Arg&) = delete;

  std::string_view view() const noexcept { return view_; }

 private:
  char buf_[24];
  std::string_view view_;
};

// A range of string-like arguments, for commands built at run time (MGET k1 ... kN).
// Its elements must outlive the call: references into a container, or views and
// C strings. A range that makes a new std::string per element (a transform that
// returns std::string) is rejected, since each would be gone before the send.
template <class R>
concept ArgRange =
    std::ranges::input_range<R> && std::convertible_to<std::ranges::range_reference_t<R>, std::string_view> &&
    (std::is_lvalue_reference_v<std::ranges::range_reference_t<R>> ||
     std::same_as<std::remove_cvref_t<std::ranges::range_reference_t<R>>, std::string_view> ||
     std::same_as<std::decay_t<std::ranges::range_reference_t<R>>, const char*>);

}  // namespace cachet
