#pragma once
// The typed error for a failed transport operation, naming what failed on which
// server and the timeout that applied (shared by the socket, TLS and Connection).

#include <cachet/redis/detail/stream.hpp>
#include <cachet/redis/errors.hpp>

#include <fmt/format.h>

#include <chrono>
#include <string_view>

namespace cachet::detail {

// What failed, for the error message: "GET on 127.0.0.1:7001" or "connect to
// /run/redis.sock", and the timeout that applied with the option that sets it.
struct FailedOp {
  std::string_view what;
  std::chrono::milliseconds timeout;
  std::string_view timeout_option;  // e.g. "ConnectionOptions::command_timeout"
};

// The deadline for an operation bounded by `timeout` (0: none).
inline Deadline deadline_after(std::chrono::milliseconds timeout) noexcept {
  return timeout.count() > 0 ? std::chrono::steady_clock::now() + timeout : Deadline::max();
}

// Throws TimeoutError or ConnectionError for a result that is not `done`.
[[noreturn]] inline void throw_io_error(const IoResult& r, const FailedOp& op) {
  const std::string_view reason = r.reason.empty() ? std::string_view("unknown error") : std::string_view(r.reason);
  if (r.status == IoStatus::timeout) {
    if (op.timeout.count() > 0)
      throw TimeoutError(fmt::format("redis: {} timed out after {} ms ({})", op.what, op.timeout.count(), op.timeout_option));
    throw TimeoutError(fmt::format("redis: {} timed out: {} ({} is 0: the system's limit applies)", op.what, reason,
                                   op.timeout_option));
  }
  throw ConnectionError(fmt::format("redis: {} failed: {}", op.what, reason));
}

}  // namespace cachet::detail
