#pragma once
// The one place that includes hiredis and papers over 0.14 / 1.x differences.

#include <cachet/redis/errors.hpp>

#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>

#if !defined(HIREDIS_MAJOR)
#error "cachet needs hiredis.h to define HIREDIS_MAJOR"
#endif

namespace cachet::detail {

struct ContextDeleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// hiredis writes with write(2), so a server that closed the socket raises SIGPIPE,
// whose default action kills the process. Once per process, a SIGPIPE still at its
// default gets an empty handler: writes then fail with EPIPE. A handler, unlike
// SIG_IGN, is reset by exec, so programs the application starts are unaffected.
// A handler the application installed is left alone. Costs nothing per command.
inline void handle_default_sigpipe() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current{};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      struct sigaction handler{};
      handler.sa_handler = [](int) {};
      handler.sa_flags = SA_RESTART;
      sigemptyset(&handler.sa_mask);
      ::sigaction(SIGPIPE, &handler, nullptr);
    }
  });
}

// hiredis 1.x reports timeouts as REDIS_ERR_TIMEOUT; 0.14 as REDIS_ERR_IO with
// errno EAGAIN (read/write timeout) or ETIMEDOUT (connect timeout).
inline bool is_timeout(int err, const char* errstr, int saved_errno) noexcept {
#ifdef REDIS_ERR_TIMEOUT
  if (err == REDIS_ERR_TIMEOUT) return true;
#endif
  if (err != REDIS_ERR_IO) return false;
  if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT) return true;
  // errno may be clobbered by hiredis' clean-up; its message is not.
  return std::strcmp(errstr, std::strerror(EAGAIN)) == 0 || std::strcmp(errstr, std::strerror(ETIMEDOUT)) == 0;
}

// What failed, for the error message: "GET on 127.0.0.1:7001" or "connect to
// /run/redis.sock", and the timeout that applied with the option that sets it.
struct FailedOp {
  std::string_view what;
  std::chrono::milliseconds timeout;
  std::string_view timeout_option;  // e.g. "ConnectionOptions::command_timeout"
};

// Throws the typed error for a context in an error state (`c.err != 0`).
[[noreturn]] inline void throw_context_error(const redisContext& c, int saved_errno, const FailedOp& op) {
  const char* reason = c.errstr[0] ? c.errstr : "unknown error";
  if (is_timeout(c.err, c.errstr, saved_errno)) {
    if (op.timeout.count() > 0)
      throw TimeoutError(fmt::format("redis: {} timed out after {} ms ({})", op.what, op.timeout.count(), op.timeout_option));
    throw TimeoutError(fmt::format("redis: {} timed out: {} ({} is 0: the system's limit applies)", op.what, reason,
                                   op.timeout_option));
  }
  if (c.err == REDIS_ERR_PROTOCOL) throw ProtocolError(fmt::format("redis: {}: protocol error: {}", op.what, reason));
  if (c.err == REDIS_ERR_OOM) throw std::bad_alloc();
  throw ConnectionError(fmt::format("redis: {} failed: {}", op.what, reason));
}

}  // namespace cachet::detail
