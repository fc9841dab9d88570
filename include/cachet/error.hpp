#pragma once
// The root of every exception cachet throws, so one catch clause covers the library.

#include <stdexcept>
#include <string>

namespace cachet {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A multi-key operation (a script, MGET-like command, allow_all) was given keys
// that hash to different Redis Cluster slots: one command cannot touch them
// (CROSSSLOT). Thrown before anything is sent, on a single server too, so code
// that passes in development runs on a cluster. Co-locate the keys with a
// shared hash tag, or make separate calls.
class CrossSlotError : public Error {
 public:
  using Error::Error;
};

}  // namespace cachet
