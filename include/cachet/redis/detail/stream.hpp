#pragma once
// The byte transport under a Connection: a plain socket (TCP or unix), or TLS
// over one. cachet owns it (hiredis 0.14's context does its own read/write, so
// TLS cannot go under it): hiredis only parses replies. Every call takes a
// deadline, so connect, handshake, write and read are each bounded.

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <string>

namespace cachet::detail {

using Deadline = std::chrono::steady_clock::time_point;  // Deadline::max(): no limit

enum class IoStatus {
  done,     // all written / at least one byte read
  timeout,  // the deadline passed first
  closed,   // the peer closed the connection
  failed,   // the OS or the TLS library reported an error (see `reason`)
};

struct IoResult {
  IoStatus status = IoStatus::done;
  std::size_t bytes = 0;  // read_some: how many bytes were read (> 0 when done)
  std::string reason{};   // closed/failed: what went wrong, for the error message
};

// A connected stream. A failure that has a typed error of its own (a TLS alert
// saying the server wants a client certificate) may be thrown instead of
// returned; the Connection drops the stream on any failure either way.
class Stream {
 public:
  virtual ~Stream() = default;
  // Writes all `size` bytes, or fails.
  virtual IoResult write_all(const char* data, std::size_t size, Deadline deadline) = 0;
  // Reads between 1 and `capacity` bytes, waiting until `deadline` for the first.
  virtual IoResult read_some(char* buffer, std::size_t capacity, Deadline deadline) = 0;
  // The socket, for a caller that polls it beside other descriptors.
  virtual int fd() const noexcept = 0;
  // Input already taken off the socket but not yet returned (decrypted TLS
  // records): a poll() on fd() cannot see it, so check this first.
  virtual bool has_buffered_input() const noexcept { return false; }
};

// Waits until `fd` is ready for `events` or `deadline` passes (retrying EINTR);
// failed leaves poll's errno.
inline IoStatus poll_until(int fd, short events, Deadline deadline) {
  for (;;) {
    int wait_ms = -1;
    if (deadline != Deadline::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return IoStatus::timeout;
      wait_ms = static_cast<int>(std::min<long long>(left.count(), INT_MAX));
    }
    pollfd p{fd, events, 0};
    const int ready = ::poll(&p, 1, wait_ms);
    if (ready > 0) return IoStatus::done;  // ready, or POLLHUP/POLLERR: the next call tells which
    if (ready < 0 && errno != EINTR) return IoStatus::failed;
  }
}

}  // namespace cachet::detail
