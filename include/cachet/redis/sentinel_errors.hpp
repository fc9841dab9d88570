#pragma once
// The error of a write that reached a server which is no longer the master.

#include <cachet/redis/errors.hpp>

#include <string>

namespace cachet {

// A `READONLY` error reply: the server is a replica now (a master demoted by a
// failover). Through Sentinel the connection is closed and the next one goes to
// the new master; the write did not happen.
class ReadOnlyError : public ReplyError {
 public:
  using ReplyError::ReplyError;
};

}  // namespace cachet
