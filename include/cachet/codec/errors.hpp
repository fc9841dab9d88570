#pragma once
// Errors of the value layer. A DecodeError on a cache read is a miss, never a crash.

#include <cachet/error.hpp>

namespace cachet {

// Bytes that are not a valid encoding: truncated, corrupt, foreign, another codec's.
class DecodeError : public Error {
 public:
  using Error::Error;
};

// A value the codec cannot represent (e.g. a string that is not UTF-8, for JSON).
class EncodeError : public Error {
 public:
  using Error::Error;
};

}  // namespace cachet
