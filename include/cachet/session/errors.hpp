#pragma once
// Errors of the session store. A Redis failure stays the Redis layer's own
// ConnectionError / ReplyError / PoolTimeoutError; these say what went wrong
// with the session itself.
//
//   Error
//   └── SessionError
//       ├── InvalidSessionId   malformed, or its signature matches no secret (Redis not asked)
//       ├── SessionNotFound    expired, never existed, or its id was regenerated
//       │   └── SessionEnded   destroyed (logout) moments ago: a late write is refused
//       └── InvalidAttribute   an attribute name the store reserves (starts with ':') or empty

#include <cachet/error.hpp>

namespace cachet {

class SessionError : public Error {
 public:
  using Error::Error;
};

class InvalidSessionId : public SessionError {
 public:
  using SessionError::SessionError;
};

class SessionNotFound : public SessionError {
 public:
  using SessionError::SessionError;
};

class SessionEnded : public SessionNotFound {
 public:
  using SessionNotFound::SessionNotFound;
};

class InvalidAttribute : public SessionError {
 public:
  using SessionError::SessionError;
};

}  // namespace cachet
