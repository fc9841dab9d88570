#pragma once
// Something on a loopback TCP port that is not Redis, for the tests of what a
// client does with garbage, truncation, silence or a stale sentinel's answer.

#include <cachet/redis/options.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

namespace cachet::test {

class FakePeer {
 public:
  enum Mode {
    close_after,  // answers a client's first bytes with `answer`, then shuts its side
    hold,         // answers the first bytes, then keeps the socket open and silent
    every_read,   // answers every read with `answer` (a fake sentinel)
    silent,       // never accepts: the kernel completes the connect, nobody speaks
  };

  explicit FakePeer(std::string answer, Mode mode = close_after, int family = AF_INET)
      : fd_(::socket(family, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    REQUIRE(::pipe(stop_) == 0);
    bind_loopback(family);
    if (mode != silent) thread_ = std::thread([this, answer = std::move(answer), mode] { serve(answer, mode); });
  }
  ~FakePeer() {
    (void)!::write(stop_[1], "x", 1);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  FakePeer(const FakePeer&) = delete;
  FakePeer& operator=(const FakePeer&) = delete;

  int port() const noexcept { return port_; }
  int fd() const noexcept { return fd_; }  // the listening socket (silent: accept it yourself)

  ConnectionOptions options() const {
    ConnectionOptions o;
    o.port = port_;
    o.connect_timeout = o.command_timeout = std::chrono::milliseconds{10'000};  // the answers come at once
    return o;
  }

 private:
  void bind_loopback(int family) {
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (family == AF_INET6) {
      auto& a6 = reinterpret_cast<sockaddr_in6&>(addr);
      a6.sin6_family = AF_INET6;
      a6.sin6_addr = in6addr_loopback;
      len = sizeof a6;
    } else {
      auto& a4 = reinterpret_cast<sockaddr_in&>(addr);
      a4.sin_family = AF_INET;
      a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof a4;
    }
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    REQUIRE(::listen(fd_, 8) == 0);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(addr).sin6_port
                                     : reinterpret_cast<sockaddr_in&>(addr).sin_port);
  }

  // Waits for `fd` to be readable; false when the peer is being destroyed.
  bool readable(int fd) const {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    return ::poll(p, 2, 30'000) > 0 && (p[1].revents & POLLIN) == 0;
  }

  void serve(const std::string& answer, Mode mode) const {  // one client at a time
    while (readable(fd_)) {
      const int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      char buf[4096];
      if (mode == every_read) {
        while (readable(client) && ::read(client, buf, sizeof buf) > 0)
          [[maybe_unused]] const auto sent = ::write(client, answer.data(), answer.size());
      } else if (readable(client) && ::read(client, buf, sizeof buf) > 0) {
        [[maybe_unused]] const auto sent = ::write(client, answer.data(), answer.size());
        if (mode == close_after) ::shutdown(client, SHUT_WR);
        // Let the client close first, so it reads the whole answer (no reset from unread bytes).
        while (readable(client) && ::read(client, buf, sizeof buf) > 0) {
        }
      }
      ::close(client);
    }
  }

  int fd_;
  int stop_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
};

}  // namespace cachet::test
