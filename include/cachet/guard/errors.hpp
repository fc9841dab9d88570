#pragma once
// What the guards throw when a caller gives up waiting.

#include <cachet/error.hpp>

namespace cachet {

// A waiter for another caller's Redis lock reached its deadline (with
// LockTimeout::raise; the default loads instead).
class LockTimeoutError : public Error {
 public:
  using Error::Error;
};

// A load ran past LoadTimeout's hard timeout; it goes on in the background and
// caches its value when it finishes.
class LoadTimeoutError : public Error {
 public:
  using Error::Error;
};

}  // namespace cachet
