#pragma once
// The root of every exception cachet throws, so one catch clause covers the library.

#include <stdexcept>
#include <string>

namespace cachet {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace cachet
