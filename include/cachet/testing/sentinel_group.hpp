#pragma once
// A throwaway Redis Sentinel group for tests: a master, two replicas and three
// sentinels, all on free loopback ports (never 6379), killed and removed with
// the object. Ready when every sentinel sees the master with both replicas and
// the two other sentinels. See docs/testing.md.
//
//   cachet::testing::SentinelGroup group;
//   cachet::Pool pool(group.connection_options());
//   group.failover();                                  // or group.kill_master()
//   group.wait_for_master_change(old_port, 20s);
//
// Sentinels run as `redis-server <conf> --sentinel` (Debian ships no redis-sentinel).

#include <cachet/redis/connection.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/sentinel_options.hpp>
#include <cachet/testing/detail/free_port.hpp>
#include <cachet/testing/detail/spawner.hpp>
#include <cachet/testing/redis_server.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace cachet::testing {

struct SentinelGroupOptions {
  std::string master_name = "cachet";
  std::chrono::milliseconds down_after{1000};        // sentinel down-after-milliseconds
  std::chrono::milliseconds failover_timeout{3000};  // sentinel failover-timeout
  std::chrono::milliseconds start_timeout{30'000};   // until every sentinel sees the whole group
  std::string executable{};  // default: $CACHET_REDIS_SERVER, else "redis-server"
};

class SentinelGroup {
 public:
  using clock = std::chrono::steady_clock;

  explicit SentinelGroup(SentinelGroupOptions options = {}) : options_(std::move(options)) {
    if (options_.executable.empty()) {
      const char* env = std::getenv("CACHET_REDIS_SERVER");
      options_.executable = env && *env ? env : "redis-server";
    }
    servers_.push_back(std::make_unique<RedisServer>(server_options({})));
    const std::string replicaof = "replicaof 127.0.0.1 " + std::to_string(servers_[0]->port());
    for (int i = 0; i < 2; ++i) servers_.push_back(std::make_unique<RedisServer>(server_options({replicaof})));
    for (int i = 0; i < 3; ++i) sentinels_.push_back(std::make_unique<Sentinel>(options_, servers_[0]->port()));
    wait_until_ready();
  }
  SentinelGroup(const SentinelGroup&) = delete;
  SentinelGroup& operator=(const SentinelGroup&) = delete;
  ~SentinelGroup() { sentinels_.clear(); }  // sentinels first: none fails over while the servers go

  const std::string& master_name() const noexcept { return options_.master_name; }

  // Options that reach the group's master (or, with `role`, a replica) through its sentinels.
  ConnectionOptions connection_options(SentinelRole role = SentinelRole::master) const {
    ConnectionOptions o;
    o.sentinel.master_name = options_.master_name;
    o.sentinel.role = role;
    for (const auto& s : sentinels_) o.sentinel.sentinels.push_back({"127.0.0.1", s->port});
    return o;
  }

  // The master's port, as the first sentinel that answers says.
  int master_port() const {
    for (const auto& s : sentinels_)
      if (auto port = s->master_port(options_.master_name)) return *port;
    throw Error("SentinelGroup: no sentinel answered GET-MASTER-ADDR-BY-NAME");
  }

  // The data servers (the first started as the master); kill, pause or slow them.
  const std::vector<std::unique_ptr<RedisServer>>& servers() const noexcept { return servers_; }
  RedisServer& server_at(int port) const {
    for (const auto& s : servers_)
      if (s->port() == port) return *s;
    throw Error("SentinelGroup: no server on port " + std::to_string(port));
  }
  std::vector<int> sentinel_ports() const {
    std::vector<int> ports;
    for (const auto& s : sentinels_) ports.push_back(s->port);
    return ports;
  }
  // SIGKILLs sentinel `i` (0..2), e.g. to check that clients skip it.
  void kill_sentinel(std::size_t i) { sentinels_.at(i)->kill(); }

  // SIGKILLs the master, as on a crash; returns its port. The sentinels fail over
  // after `down_after`.
  int kill_master() {
    const int port = master_port();
    server_at(port).kill();
    return port;
  }

  // SENTINEL FAILOVER: a replica is promoted and the master demoted, without
  // waiting for agreement. Retried while the sentinels refuse (INPROG, NOGOODSLAVE).
  void failover() {
    const auto deadline = clock::now() + options_.start_timeout;
    for (std::string last = "no sentinel answered";; std::this_thread::sleep_for(std::chrono::milliseconds(50))) {
      for (const auto& s : sentinels_) {
        try {
          s->connect().command({"SENTINEL", "FAILOVER", options_.master_name});
          return;
        } catch (const Error& e) {
          last = e.what();
        }
      }
      if (clock::now() > deadline) throw Error("SentinelGroup: SENTINEL FAILOVER refused: " + last);
    }
  }

  // Waits until every live sentinel names a master other than `old_port` and that
  // server answers ROLE as master; returns its port.
  int wait_for_master_change(int old_port, std::chrono::milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    for (;; std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
      if (auto port = agreed_master(); port && *port != old_port && is_master(*port)) return *port;
      if (clock::now() > deadline)
        throw Error("SentinelGroup: the master did not move from port " + std::to_string(old_port) + " within " +
                    std::to_string(timeout.count()) + " ms");
    }
  }

 private:
  struct Sentinel {
    Sentinel(const SentinelGroupOptions& o, int master_port) {
      make_dir();
      try {
        for (int attempt = 1;; ++attempt) {
          port = detail::free_port();
          write_config(o, master_port);
          pid = detail::Spawner::spawn({o.executable, dir + "/sentinel.conf", "--sentinel"}, dir + "/sentinel.out");
          if (wait_for_ping(o.start_timeout)) break;
          kill();
          if (attempt == 3) throw Error("SentinelGroup: a sentinel did not start; log:\n" + log());
        }
      } catch (...) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
        throw;
      }
    }
    ~Sentinel() {
      kill();
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
    void kill() noexcept {
      if (pid <= 0) return;
      ::kill(pid, SIGKILL);
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      pid = -1;
    }
    Connection connect() const {
      ConnectionOptions c;
      c.port = port;
      return Connection(c);
    }
    std::optional<int> master_port(const std::string& name) const {
      if (pid <= 0) return std::nullopt;
      try {
        Reply r = connect().command({"SENTINEL", "GET-MASTER-ADDR-BY-NAME", name});
        if (r.is_array() && r.size() == 2) return std::stoi(std::string(r[1].as_string()));
      } catch (const Error&) {
      }
      return std::nullopt;
    }
    // SENTINEL MASTER's fields, empty if it does not answer.
    std::map<std::string, std::string> master_fields(const std::string& name) const {
      std::map<std::string, std::string> fields;
      try {
        Reply r = connect().command({"SENTINEL", "MASTER", name});
        for (std::size_t i = 0; i + 1 < r.size(); i += 2)
          fields[std::string(r[i].as_string())] = std::string(r[i + 1].as_string());
      } catch (const Error&) {
      }
      return fields;
    }
    std::string log() const {
      std::ifstream in(dir + "/sentinel.log");
      return std::string(std::istreambuf_iterator<char>(in), {});
    }

    std::string dir;
    int port = 0;
    pid_t pid = -1;

   private:
    void make_dir() {
      std::string templ = "/tmp/cachet-sentinel-XXXXXX";
      if (!::mkdtemp(templ.data())) throw Error("SentinelGroup: mkdtemp failed");
      dir = templ;
    }
    void write_config(const SentinelGroupOptions& o, int master_port) const {
      std::ofstream conf(dir + "/sentinel.conf");
      const std::string& name = o.master_name;
      conf << "port " << port << "\nbind 127.0.0.1\ndaemonize no\n"
           << "dir " << dir << "\nlogfile " << dir << "/sentinel.log\n"
           << "sentinel monitor " << name << " 127.0.0.1 " << master_port << " 2\n"
           << "sentinel down-after-milliseconds " << name << " " << o.down_after.count() << "\n"
           << "sentinel failover-timeout " << name << " " << o.failover_timeout.count() << "\n"
           << "sentinel parallel-syncs " << name << " 2\n";
      if (!conf) throw Error("SentinelGroup: cannot write " + dir + "/sentinel.conf");
    }
    bool wait_for_ping(std::chrono::milliseconds timeout) const {
      const auto deadline = clock::now() + timeout;
      while (clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) return false;  // exited: a port taken first, say
        try {
          if (connect().command({"PING"}).is_status()) return true;
        } catch (const Error&) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return false;
    }
  };


  // A replica re-syncing after a failover starts at once (Redis waits 5 s by
  // default for more replicas to share a full sync).
  RedisServerOptions server_options(std::vector<std::string> config) const {
    config.push_back("repl-diskless-sync-delay 0");
    return {.tcp = true, .config = std::move(config), .executable = options_.executable};
  }

  // Every sentinel sees the master with 2 replicas and 2 other sentinels, and both replicas are linked.
  void wait_until_ready() {
    const auto deadline = clock::now() + options_.start_timeout;
    for (;; std::this_thread::sleep_for(std::chrono::milliseconds(50))) {
      if (group_seen() && replicas_linked()) return;
      if (clock::now() > deadline)
        throw Error("SentinelGroup: the sentinels did not see the whole group in time; a sentinel's log:\n" +
                    sentinels_[0]->log());
    }
  }

  bool group_seen() const {
    for (const auto& s : sentinels_) {
      auto f = s->master_fields(options_.master_name);
      if (f["flags"] != "master" || f["num-slaves"] != "2" || f["num-other-sentinels"] != "2") return false;
    }
    return true;
  }

  bool replicas_linked() const {
    for (std::size_t i = 1; i < servers_.size(); ++i) {
      try {
        Reply role = servers_[i]->connect().command({"ROLE"});
        if (role.size() < 4 || role[3].as_string() != "connected") return false;
      } catch (const Error&) {
        return false;
      }
    }
    return true;
  }

  std::optional<int> agreed_master() const {
    std::optional<int> agreed;
    for (const auto& s : sentinels_) {
      if (s->pid <= 0) continue;
      auto port = s->master_port(options_.master_name);
      if (!port || (agreed && *agreed != *port)) return std::nullopt;
      agreed = port;
    }
    return agreed;
  }

  bool is_master(int port) const {
    try {
      Reply role = server_at(port).connect().command({"ROLE"});
      return role.size() > 0 && role[0].as_string() == "master";
    } catch (const Error&) {
      return false;
    }
  }

  SentinelGroupOptions options_;
  std::vector<std::unique_ptr<RedisServer>> servers_;
  std::vector<std::unique_ptr<Sentinel>> sentinels_;  // last: destroyed before the servers
};

}  // namespace cachet::testing
