#pragma once
// Many threads, several processes: the shapes the concurrency tests share.

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace cachet::test {

// How many operations a long concurrency test makes: `full`, or `sanitized`
// under the sanitizers (CACHET_TEST_SANITIZED), which slow each about tenfold.
constexpr int sized([[maybe_unused]] int full, [[maybe_unused]] int sanitized) {
#ifdef CACHET_TEST_SANITIZED
  return sanitized;
#else
  return full;
#endif
}

// Polls `pred()` every millisecond until it holds or `within` passes; returns its last answer.
template <class P>
bool eventually(P pred, std::chrono::milliseconds within = std::chrono::seconds(10)) {
  for (auto end = std::chrono::steady_clock::now() + within; std::chrono::steady_clock::now() < end;) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

// A test's thread. An exception leaving a std::thread's body calls std::terminate
// and ends the whole test binary (a Redis timeout on a loaded machine, say); this
// one keeps it and join() rethrows it in the test's thread, so Catch2 reports a
// failed test. Joins when destroyed unjoined, as std::jthread does, so a failure
// unwinding past it does not terminate either.
class Thread {
 public:
  template <class F, class... Args>
  explicit Thread(F f, Args... args)
      : error_(std::make_shared<std::exception_ptr>()),
        thread_([error = error_, f = std::move(f), ... args = std::move(args)]() mutable {
          try {
            f(args...);
          } catch (...) {
            *error = std::current_exception();
          }
        }) {}
  Thread(Thread&&) noexcept = default;
  Thread& operator=(Thread&&) = delete;
  ~Thread() {
    if (thread_.joinable()) thread_.join();
  }

  // Waits for the thread; rethrows what its body threw.
  void join() {
    thread_.join();
    if (*error_) std::rethrow_exception(std::exchange(*error_, nullptr));
  }

 private:
  std::shared_ptr<std::exception_ptr> error_;  // shared: the Thread may move while its body runs
  std::thread thread_;
};

// A reusable rendezvous: wait_for(n) returns once n arrive() calls were made
// since the last reset(), or false when `within` passes first (a thread that
// failed before arriving then fails the test instead of hanging it).
class Gate {
 public:
  void arrive() {
    std::lock_guard lock(mutex_);
    ++arrived_;
    changed_.notify_all();
  }
  [[nodiscard]] bool wait_for(std::size_t n, std::chrono::milliseconds within = std::chrono::seconds(60)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, within, [&] { return arrived_ >= n; });
  }
  void reset() {
    std::lock_guard lock(mutex_);
    arrived_ = 0;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t arrived_ = 0;
};

// Arrives at `gate` when its scope ends, however it ends: a failing check or a
// throw on the way there still releases the threads waiting on the gate.
class ArriveOnExit {
 public:
  explicit ArriveOnExit(Gate& gate) : gate_(gate) {}
  ArriveOnExit(const ArriveOnExit&) = delete;
  ArriveOnExit& operator=(const ArriveOnExit&) = delete;
  ~ArriveOnExit() { gate_.arrive(); }

 private:
  Gate& gate_;
};

// Raises `flag` when its scope ends, however it ends. Declared after a Thread
// that loops until the flag, so a failing check unwinds instead of joining a
// thread that never stops.
class RaiseOnExit {
 public:
  explicit RaiseOnExit(std::atomic<bool>& flag) : flag_(flag) {}
  RaiseOnExit(const RaiseOnExit&) = delete;
  RaiseOnExit& operator=(const RaiseOnExit&) = delete;
  ~RaiseOnExit() { flag_ = true; }

 private:
  std::atomic<bool>& flag_;
};

// Starts `n` threads running `f(i)`, joins them all, then rethrows the first
// exception one of them threw.
template <class F>
void in_threads(int n, F f) {
  std::vector<Thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back(f, i);
  std::exception_ptr first;
  for (auto& t : threads) {
    try {
      t.join();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

// The exit code of child `pid`, or -1 if it did not exit normally.
inline int wait_exit(pid_t pid) {
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Forks `n` children running `f(i)`, which returns the child's exit code (an
// exception is exit code 3, its message on stderr). A child must not start
// threads: a fork of a multi-threaded process may not, under ThreadSanitizer
// (exec a worker instead, as the guard tests do). Returns the exit codes, or
// -1 for a child that did not exit normally (killed, say).
template <class F>
std::vector<int> in_processes(int n, F f) {
  std::vector<pid_t> children;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      int code = 3;
      try {
        code = f(i);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", i, e.what());
      }
      std::fflush(stderr);
      ::_exit(code);  // no atexit handlers: they belong to the parent (its redis-server, say)
    }
    children.push_back(pid);
  }
  std::vector<int> codes;
  for (pid_t pid : children) codes.push_back(wait_exit(pid));
  return codes;
}

}  // namespace cachet::test
