#pragma once
// Runs `f` and returns the cachet error it threw, failing the test if it threw
// nothing or something else, so a test can assert on the exact dynamic type.

#include <cachet/error.hpp>

#include <catch2/catch.hpp>

#include <exception>
#include <memory>
#include <typeinfo>

namespace cachet::test {

template <class F>
std::exception_ptr capture(F&& f) {
  try {
    f();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

// True when `f` throws exactly E (not a subclass, not a sibling).
template <class E, class F>
bool throws_exactly(F&& f) {
  auto ep = capture(std::forward<F>(f));
  if (!ep) return false;
  try {
    std::rethrow_exception(ep);
  } catch (const E& e) {
    return typeid(e) == typeid(E);
  } catch (...) {
    return false;
  }
}

}  // namespace cachet::test
