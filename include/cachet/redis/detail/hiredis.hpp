#pragma once
// The one place that includes hiredis and papers over 0.14 / 1.x differences.

#include <hiredis/hiredis.h>

#include <signal.h>

#include <memory>
#include <mutex>

#if !defined(HIREDIS_MAJOR)
#error "cachet needs hiredis.h to define HIREDIS_MAJOR"
#endif

namespace cachet::detail {

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// cachet's socket sends with MSG_NOSIGNAL, but a TLS library may write with
// write(2), and a write to a socket the server closed raises SIGPIPE, whose
// default action kills the process. Once per process, a SIGPIPE still at its
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

}  // namespace cachet::detail
