#pragma once
// Errors of the rate limiters (bad parameters are std::invalid_argument).

#include <cachet/error.hpp>

#include <string>

namespace cachet {

// allow_all was given limits whose keys hash to different Redis Cluster slots:
// one script cannot touch them (CROSSSLOT). Thrown before anything is sent, on
// a single server too, so code that passes in development runs on a cluster.
// Co-locate the keys with a shared tag (LimitOf::tag), or make two calls.
class CrossSlotError : public Error {
 public:
  using Error::Error;
};

}  // namespace cachet
