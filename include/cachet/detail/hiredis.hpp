#pragma once
// The one place that includes hiredis and papers over 0.14 / 1.x differences.

#include <cachet/redis/errors.hpp>

#include <hiredis/hiredis.h>

#include <signal.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>

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

// Throws the typed error for a context in an error state (`c.err != 0`).
[[noreturn]] inline void throw_context_error(const redisContext& c, int saved_errno, const std::string& where) {
  const std::string msg = "redis " + where + ": " + (c.errstr[0] ? c.errstr : "unknown error");
  if (is_timeout(c.err, c.errstr, saved_errno)) throw TimeoutError(msg);
  if (c.err == REDIS_ERR_PROTOCOL) throw ProtocolError(msg);
  if (c.err == REDIS_ERR_OOM) throw std::bad_alloc();
  throw ConnectionError(msg);
}

}  // namespace cachet::detail
