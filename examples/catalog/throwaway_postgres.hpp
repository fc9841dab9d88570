#pragma once
// A throwaway PostgreSQL server for the demo, started the way the tests start
// redis-server: initdb into a temporary directory, `postgres` listening only
// on a unix socket there (no TCP port to collide with), durability off (the
// data is generated and thrown away), stopped and removed at the end.
// PostgreSQL refuses to run as root, so under root the server runs as the
// `postgres` user the Debian package creates.

#include <libpq-fe.h>

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace catalog {

class ThrowawayPostgres {
 public:
  ThrowawayPostgres() {
    bin_ = find_bin_dir();
    char pattern[] = "/tmp/cachet-pg-XXXXXX";
    if (!mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    try {
      if (geteuid() == 0) run_as_postgres();
      run_and_wait({bin_ + "/initdb", "-D", dir_ + "/data", "-U", "cachet", "-A", "trust", "-E", "UTF8", "--no-sync"});
      pid_ = start({bin_ + "/postgres", "-D", dir_ + "/data", "-k", dir_, "-c", "listen_addresses=", "-c",
                    "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c",
                    "max_connections=200"});
      wait_ready();
    } catch (...) {
      stop();
      throw;
    }
  }
  ThrowawayPostgres(const ThrowawayPostgres&) = delete;
  ThrowawayPostgres& operator=(const ThrowawayPostgres&) = delete;
  ~ThrowawayPostgres() { stop(); }

  // A libpq connection string for the server's `postgres` database.
  std::string conninfo() const { return "host=" + dir_ + " user=cachet dbname=postgres"; }
  const std::string& directory() const noexcept { return dir_; }

 private:
  static std::string find_bin_dir() {
    for (const char* v : {"17", "16", "15", "14", "13"}) {
      const std::string dir = std::string("/usr/lib/postgresql/") + v + "/bin";
      if (std::filesystem::exists(dir + "/initdb") && std::filesystem::exists(dir + "/postgres")) return dir;
    }
    throw std::runtime_error(
        "no PostgreSQL server found: install it with `sudo apt-get install postgresql-15 libpq-dev` "
        "(./run demo does this)");
  }

  void run_as_postgres() {
    const passwd* pw = getpwnam("postgres");
    if (!pw) throw std::runtime_error("running as root, and there is no `postgres` user to run PostgreSQL as");
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
    if (chown(dir_.c_str(), uid_, gid_) != 0) throw std::runtime_error("chown " + dir_ + " failed");
  }

  pid_t start(const std::vector<std::string>& argv) const {
    const std::string log = dir_ + "/server.log";
    std::vector<char*> args;  // built before fork: no allocation in the child
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      if (uid_ != 0 && (setgid(gid_) != 0 || setuid(uid_) != 0)) _exit(126);
      // Only async-signal-safe calls between fork and exec: other threads may hold locks.
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(126);
      execv(args[0], args.data());
      _exit(127);
    }
    return pid;
  }

  void run_and_wait(const std::vector<std::string>& argv) const {
    const pid_t pid = start(argv);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      throw std::runtime_error(argv[0] + " failed; see " + dir_ + "/server.log");
  }

  void wait_ready() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (PQping(conninfo().c_str()) != PQPING_OK) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) throw std::runtime_error("postgres exited; see " + dir_ + "/server.log");
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("postgres did not start within 30 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGINT);  // "fast" shutdown: disconnects clients and exits
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  std::string bin_, dir_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  pid_t pid_ = -1;
};

}  // namespace catalog
