#pragma once
// Errors of the rate limiters (bad parameters are std::invalid_argument).

#include <cachet/error.hpp>

#include <string>

namespace cachet {

// CrossSlotError (cachet/error.hpp): allow_all was given limits in different
// slots; co-locate them with a shared tag (LimitOf::tag), or make two calls.

}  // namespace cachet
