#pragma once
// The coherence test's record of another process's writes, in a file both
// processes map: per hot key, the last write that completed, and when each
// write was sent and when it returned (steady clock: CLOCK_MONOTONIC, one
// clock for every process on the machine). Lock-free 64-bit atomics are
// address-free, so they work across processes on shared memory.

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

namespace cachet::test {

inline std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct WriteLog {
  static constexpr std::size_t keys = 16;
  static constexpr std::size_t max_writes = 8192;  // per key

  std::array<std::atomic<std::uint64_t>, keys> completed;  // write n of key k returned (values are 1, 2, ...)
  std::array<std::array<std::atomic<std::int64_t>, max_writes>, keys> sent_ns, done_ns;  // [k][n]

  static std::string key(std::size_t k) { return "hot" + std::to_string(k); }
};

// The log in the file at `path`: made anew by the process that creates it
// (before it starts the other), mapped as it is by the other. Unmapped when this goes.
class SharedWriteLog {
 public:
  SharedWriteLog(const std::string& path, bool create) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0 || (create && ::ftruncate(fd, sizeof(WriteLog)) != 0)) throw std::runtime_error("cannot open " + path);
    void* p = ::mmap(nullptr, sizeof(WriteLog), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw std::runtime_error("cannot map " + path);
    log_ = create ? ::new (p) WriteLog() : static_cast<WriteLog*>(p);
  }
  SharedWriteLog(const SharedWriteLog&) = delete;
  SharedWriteLog& operator=(const SharedWriteLog&) = delete;
  ~SharedWriteLog() { ::munmap(log_, sizeof(WriteLog)); }
  WriteLog* operator->() const noexcept { return log_; }

 private:
  WriteLog* log_;
};

}  // namespace cachet::test
