#pragma once
// A Stream over a socket cachet opens itself: TCP (host names, IPv4, IPv6) or a
// unix socket. Connect is non-blocking and bounded by its deadline. After it, the
// socket blocks with SO_RCVTIMEO/SO_SNDTIMEO = command_timeout, so that the usual
// read or write is one system call (as hiredis' own); when less time is left
// than that, the call polls for what remains, so every deadline holds.

#include <cachet/redis/detail/io_error.hpp>
#include <cachet/redis/detail/stream.hpp>
#include <cachet/redis/options.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

namespace cachet::detail {

class SocketStream final : public Stream {
 public:
  using clock = std::chrono::steady_clock;

  // Connects to options.path or host:port by connect_timeout's `deadline`;
  // throws ConnectionError or TimeoutError naming the server.
  static std::unique_ptr<SocketStream> connect(const ConnectionOptions& o, Deadline deadline) {
    const std::string what = "connect to " + o.endpoint();
    const FailedOp op{what, o.connect_timeout, "ConnectionOptions::connect_timeout"};
    IoResult last{IoStatus::failed, 0, "no address"};
    if (o.uses_unix_socket()) {
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      if (o.path.size() >= sizeof addr.sun_path) throw ConnectionError("redis: " + what + " failed: path too long");
      std::memcpy(addr.sun_path, o.path.data(), o.path.size());
      if (auto s = try_connect(AF_UNIX, reinterpret_cast<const sockaddr*>(&addr), sizeof addr, deadline, last)) {
        s->ready(o);
        return s;
      }
      throw_io_error(last, op);
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(o.host.c_str(), std::to_string(o.port).c_str(), &hints, &found);
    if (rc != 0) throw ConnectionError("redis: " + what + " failed: " + ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next)  // each address in turn, as hiredis does
      if (auto s = try_connect(a->ai_family, a->ai_addr, a->ai_addrlen, deadline, last)) {
        s->ready(o);
        return s;
      }
    throw_io_error(last, op);
  }

  ~SocketStream() override { ::close(fd_); }
  SocketStream(const SocketStream&) = delete;
  SocketStream& operator=(const SocketStream&) = delete;

  IoResult write_all(const char* data, std::size_t size, Deadline deadline) override {
    while (size > 0) {
      const ssize_t n = ::send(fd_, data, size, MSG_NOSIGNAL | flags_for(deadline));
      if (n > 0) {
        data += n;
        size -= static_cast<std::size_t>(n);
      } else if (errno == EPIPE || errno == ECONNRESET) {
        return {IoStatus::closed, 0, std::strerror(errno)};
      } else if (IoResult r = wait_unless_fatal(POLLOUT, deadline); r.status != IoStatus::done) {
        return r;
      }
    }
    return {};
  }

  IoResult read_some(char* buffer, std::size_t capacity, Deadline deadline) override {
    for (;;) {
      const ssize_t n = ::recv(fd_, buffer, capacity, flags_for(deadline));
      if (n > 0) return {IoStatus::done, static_cast<std::size_t>(n)};
      if (n == 0) return {IoStatus::closed, 0, "Server closed the connection"};
      if (errno == ECONNRESET) return {IoStatus::closed, 0, std::strerror(errno)};
      if (IoResult r = wait_unless_fatal(POLLIN, deadline); r.status != IoStatus::done) return r;
    }
  }

  int fd() const noexcept override { return fd_; }

 private:
  SocketStream(int fd, bool tcp) noexcept : fd_(fd), tcp_(tcp) {}

  // One address: a non-blocking connect, then a poll until `deadline`. Null (and
  // `last` set) when it failed.
  static std::unique_ptr<SocketStream> try_connect(int family, const sockaddr* addr, socklen_t len, Deadline deadline,
                                                   IoResult& last) {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = {IoStatus::failed, 0, std::strerror(errno)};
      return nullptr;
    }
    std::unique_ptr<SocketStream> s(new SocketStream(fd, family != AF_UNIX));
    int rc = ::connect(fd, addr, len);
    if (rc != 0 && (errno == EINPROGRESS || errno == EINTR)) {
      last = s->wait(POLLOUT, deadline);
      if (last.status != IoStatus::done) return nullptr;
      socklen_t size = sizeof rc;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &size) != 0) rc = errno;
      errno = rc;
    }
    if (rc != 0) {
      // The kernel's own connect timeout (connect_timeout 0) is a timeout too.
      last = {errno == ETIMEDOUT ? IoStatus::timeout : IoStatus::failed, 0, std::strerror(errno)};
      return nullptr;
    }
    return s;
  }

  // Connected: blocking from here on, with the command timeout as the socket's
  // own (see the top), Nagle off and keepalive as asked.
  void ready(const ConnectionOptions& o) {
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
    timeout_ = o.command_timeout;
    const timeval tv{static_cast<time_t>(timeout_.count() / 1000), static_cast<suseconds_t>(timeout_.count() % 1000 * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (tcp_) {
      set(IPPROTO_TCP, TCP_NODELAY, 1);
      if (o.keepalive) {
        // hiredis' redisEnableKeepAlive values: probes after 15 s idle, every 5 s, 3 of them.
        set(SOL_SOCKET, SO_KEEPALIVE, 1);
        set(IPPROTO_TCP, TCP_KEEPIDLE, 15);
        set(IPPROTO_TCP, TCP_KEEPINTVL, 5);
        set(IPPROTO_TCP, TCP_KEEPCNT, 3);
      }
    }
  }

  void set(int level, int name, int value) noexcept { ::setsockopt(fd_, level, name, &value, sizeof value); }

  // A blocking call (one system call) when the socket's own timeout ends by the
  // deadline (a millisecond of slack: the deadline was taken just before);
  // otherwise a non-blocking one, and wait() polls for the time that is left.
  int flags_for(Deadline deadline) const noexcept {
    if (deadline == Deadline::max()) return timeout_.count() == 0 ? 0 : MSG_DONTWAIT;
    if (timeout_.count() == 0) return MSG_DONTWAIT;
    return clock::now() + timeout_ <= deadline + std::chrono::milliseconds(1) ? 0 : MSG_DONTWAIT;
  }

  // After a failed call: EINTR retries, EAGAIN waits for `events`, anything else fails.
  IoResult wait_unless_fatal(short events, Deadline deadline) const {
    if (errno == EINTR) return {};
    if (errno != EAGAIN && errno != EWOULDBLOCK) return {IoStatus::failed, 0, std::strerror(errno)};
    return wait(events, deadline);
  }

  // Polls until the socket is ready for `events` or `deadline` passes.
  IoResult wait(short events, Deadline deadline) const {
    switch (poll_until(fd_, events, deadline)) {
      case IoStatus::timeout: return {IoStatus::timeout, 0, "deadline passed"};
      case IoStatus::failed: return {IoStatus::failed, 0, std::strerror(errno)};
      default: return {};  // readable, writable, or an error the next call reports
    }
  }

  int fd_;
  bool tcp_;
  std::chrono::milliseconds timeout_{0};
};

}  // namespace cachet::detail
