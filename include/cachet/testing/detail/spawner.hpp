#pragma once
// Starts child processes from one long-lived thread. PR_SET_PDEATHSIG kills a
// child when the *thread* that forked it exits, so forking from whichever thread
// asked would kill a server as soon as, say, a test's worker thread ends; forking
// from a thread that lives as long as the process ties the child to the process.
// Linux/POSIX only.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cachet::detail {

class Spawner {
 public:
  // Runs `argv[0]` (looked up in PATH) with stdin from /dev/null and stdout and
  // stderr to `output_path`; returns the child's pid, or -1 if fork failed.
  static pid_t spawn(const std::vector<std::string>& argv, const std::string& output_path) {
    return instance().run([&] { return fork_exec(argv, output_path); });
  }

 private:
  static Spawner& instance() {
    static Spawner* s = new Spawner;  // never destroyed: its thread must outlive every child
    return *s;
  }

  Spawner() {
    std::thread([this] { loop(); }).detach();
  }

  pid_t run(std::function<pid_t()> job) {
    std::unique_lock lock(mutex_);
    const std::uint64_t ticket = ++submitted_;
    jobs_.push_back({ticket, std::move(job)});
    wake_.notify_all();
    done_.wait(lock, [&] { return results_.count(ticket) != 0; });
    const pid_t pid = results_[ticket];
    results_.erase(ticket);
    return pid;
  }

  void loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return !jobs_.empty(); });
      Job next = std::move(jobs_.front());
      jobs_.erase(jobs_.begin());
      const std::uint64_t ticket = next.ticket;
      auto job = std::move(next.job);
      lock.unlock();
      const pid_t pid = job();
      lock.lock();
      results_[ticket] = pid;
      done_.notify_all();
    }
  }

  static pid_t fork_exec(const std::vector<std::string>& args, const std::string& output_path) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int out = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const long max_fd = ::sysconf(_SC_OPEN_MAX);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {  // child: async-signal-safe calls only, until exec
#ifdef __linux__
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) _exit(126);  // the parent died before prctl took effect
#endif
      if (in >= 0) ::dup2(in, STDIN_FILENO);
      if (out >= 0) {
        ::dup2(out, STDOUT_FILENO);
        ::dup2(out, STDERR_FILENO);
      }
      // Inherit nothing else: an inherited client socket would keep another server's
      // connection open after the test closed it.
#if defined(__linux__) && defined(SYS_close_range)
      if (::syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
        for (long fd = 3; fd < max_fd; ++fd) ::close(static_cast<int>(fd));
      ::execvp(argv[0], argv.data());
      _exit(127);
    }
    if (out >= 0) ::close(out);
    if (in >= 0) ::close(in);
    return pid;
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  struct Job {
    std::uint64_t ticket;
    std::function<pid_t()> job;
  };
  std::vector<Job> jobs_;
  std::uint64_t submitted_ = 0;
  std::map<std::uint64_t, pid_t> results_;
};

}  // namespace cachet::detail
