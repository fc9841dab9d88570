#pragma once
// Processes (Redis replicas) SIGSTOPped, and seen stopped, until the object goes:
// a stopped replica reads nothing and acknowledges nothing.

#include <signal.h>
#include <sys/types.h>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>

#include <chrono>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace cachet::test {

class Stopped {
 public:
  // All stopped first; a failed check resumes every one before it fails the case.
  explicit Stopped(std::vector<pid_t> pids) : pids_(std::move(pids)) {
    for (pid_t pid : pids_) ::kill(pid, SIGSTOP);
    try {
      for (pid_t pid : pids_) REQUIRE(eventually([&] { return state(pid) == 'T'; }, std::chrono::seconds(30)));
    } catch (...) {  // Catch2's REQUIRE throws no std::exception
      resume();
      throw;
    }
  }
  Stopped(const Stopped&) = delete;
  Stopped& operator=(const Stopped&) = delete;
  ~Stopped() { resume(); }

 private:
  static char state(pid_t pid) {  // /proc/<pid>/stat: "pid (comm) S ..."
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(in, line);
    const auto paren = line.rfind(')');
    return paren == std::string::npos || paren + 2 >= line.size() ? '?' : line[paren + 2];
  }
  void resume() const {
    for (pid_t pid : pids_) ::kill(pid, SIGCONT);
  }
  std::vector<pid_t> pids_;
};

}  // namespace cachet::test
