#pragma once
// A private, throwaway redis-server for tests, examples and benchmarks: unix
// socket in its own temp dir (optionally a free TCP port on 127.0.0.1 too), no
// persistence, killed and removed when the object goes. It never uses port 6379.
//
//   cachet::testing::RedisServer server;            // started and answering PING
//   cachet::Pool pool(server.connection_options());
//
// With `tls`, it also serves TLS on a free port, with a throwaway CA and
// certificates made in its directory (see tls_certificates.hpp, docs/testing.md):
//
//   cachet::testing::RedisServer server({.tls = true});
//   cachet::Pool pool(server.tls_connection_options());  // trusts the test CA
//
// The executable is `redis-server` from PATH, or $CACHET_REDIS_SERVER.
// POSIX (Linux) only.

#include <cachet/testing/detail/free_port.hpp>
#include <cachet/testing/detail/spawner.hpp>
#include <cachet/testing/tls_certificates.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/pool.hpp>  // what a test opens on the server

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
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace cachet::testing {

// redis' tls-auth-clients: must a TLS client present a certificate the CA signed?
enum class TlsClientAuth { no, yes, optional };

// The password of the last `requirepass` among redis.conf lines; empty without one.
inline std::string requirepass_of(const std::vector<std::string>& config) {
  constexpr std::string_view directive = "requirepass ";
  std::string password;
  for (const auto& line : config)
    if (line.rfind(directive, 0) == 0) password = line.substr(directive.size());
  return password;
}

struct RedisServerOptions {
  bool tcp = false;                   // also listen on a free port on 127.0.0.1
  bool tls = false;                   // also serve TLS on a free port on 127.0.0.1
  TlsClientAuth tls_auth_clients = TlsClientAuth::no;
  // With `tls`: serve these (one CA for many servers, as RedisCluster's nodes)
  // instead of making a throwaway CA and certificates of its own.
  std::optional<TlsCertificateFiles> tls_certificates{};
  bool cluster = false;               // a Redis Cluster node (implies `tcp`); see RedisCluster
  std::vector<std::string> config{};  // extra redis.conf lines, e.g. "maxmemory 1mb"
  std::string executable{};           // default: $CACHET_REDIS_SERVER, else "redis-server"
  std::chrono::milliseconds start_timeout{10'000};
};

class RedisServer {
 public:
  explicit RedisServer(RedisServerOptions options = {}) : options_(std::move(options)) {
    if (options_.executable.empty()) {
      const char* env = std::getenv("CACHET_REDIS_SERVER");
      options_.executable = env && *env ? env : "redis-server";
    }
    make_dir();
    try {
      if (options_.tls) tls_files_ = options_.tls_certificates ? *options_.tls_certificates : make_tls_certificates(dir_);
      for (int attempt = 1;; ++attempt) {
        if (options_.tcp || options_.cluster) port_ = detail::free_port();
        if (options_.cluster) cluster_port_ = detail::free_port();  // the bus: not port + 10000, which may be taken
        if (options_.tls) tls_port_ = detail::free_port();
        write_config();
        try {
          start();
          break;
        } catch (const Error&) {  // another process took the free port first: pick again
          const bool port_taken = log().find("Address already in use") != std::string::npos;
          if (!(options_.tcp || options_.tls || options_.cluster) || attempt == 3 || !port_taken) throw;
        }
      }
    } catch (...) {
      remove_dir();
      throw;
    }
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  ~RedisServer() {
    kill();
    remove_dir();
  }

  const std::string& socket_path() const noexcept { return socket_; }
  int port() const noexcept { return port_; }  // 0 without `tcp`
  int tls_port() const noexcept { return tls_port_; }  // 0 without `tls`
  int cluster_port() const noexcept { return cluster_port_; }  // the cluster bus; 0 without `cluster`
  const TlsCertificateFiles& tls_files() const noexcept { return tls_files_; }  // empty without `tls`
  const std::string& directory() const noexcept { return dir_; }
  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0; }

  // Options that reach this server over its unix socket.
  ConnectionOptions connection_options() const {
    ConnectionOptions o;
    o.path = socket_;
    return o;
  }
  // Options that reach it over TCP (requires `tcp`).
  ConnectionOptions tcp_connection_options() const {
    ConnectionOptions o;
    o.host = "127.0.0.1";
    o.port = port_;
    return o;
  }
  // Options that reach it over TLS (requires `tls`): 127.0.0.1, trusting the
  // test CA, with the client certificate when tls_auth_clients is `yes`.
  ConnectionOptions tls_connection_options() const {
    ConnectionOptions o = tcp_connection_options();
    o.port = tls_port_;
    o.tls.enabled = true;
    o.tls.ca_file = tls_files_.ca_cert;
    if (options_.tls_auth_clients == TlsClientAuth::yes) {
      o.tls.cert_file = tls_files_.client_cert;
      o.tls.key_file = tls_files_.client_key;
    }
    return o;
  }
  // A fresh admin connection: no command timeout (so DEBUG commands can block),
  // authenticated with the `requirepass` of the extra config lines, if any.
  Connection connect() const {
    ConnectionOptions o = connection_options();
    o.command_timeout = std::chrono::milliseconds{0};
    o.password = admin_password();
    return Connection(o);
  }

  // SIGKILL: the server dies mid-flight, as on a crash.
  void kill() noexcept {
    sleepers_.clear();
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  // Starts again on the same socket (and port), with an empty data set.
  void restart() {
    kill();
    start();
  }

  // CLIENT PAUSE: the server stops answering clients for `d`.
  void pause(std::chrono::milliseconds d) { connect().command({"CLIENT", "PAUSE", d.count(), "ALL"}); }

  // DEBUG SLEEP: the server blocks for `d`. Returns as soon as the server is seen
  // not answering (a probe PING times out); the call does not wait for `d`.
  void slow(std::chrono::milliseconds d) {
    auto conn = std::make_unique<Connection>(connect());
    const std::string secs = std::to_string(static_cast<double>(d.count()) / 1000.0);
    conn->append({"DEBUG", "SLEEP", secs});
    conn->flush();  // written now; its reply is never read
    sleepers_.push_back(std::move(conn));
    ConnectionOptions probe = connection_options();
    probe.password = admin_password();
    probe.connect_timeout = probe.command_timeout = std::chrono::milliseconds{5};
    for (int i = 0; i < 200; ++i) {
      try {
        Connection(probe).command({"PING"});
      } catch (const TimeoutError&) {
        return;  // the server is asleep
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    throw Error("RedisServer::slow: the server kept answering");
  }

  // The server's log and its stdout/stderr, for diagnosing a failed start.
  std::string log() const {
    std::stringstream s;
    for (const char* file : {"/redis.out", "/redis.log"}) {
      std::ifstream in(dir_ + file);
      if (in) s << in.rdbuf();
    }
    return s.str();
  }

 private:
  std::string admin_password() const { return requirepass_of(options_.config); }

  void make_dir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = tmp && *tmp ? tmp : "/tmp";
    if (base.size() > 60) base = "/tmp";  // a unix socket path must fit in 108 bytes
    std::string templ = base + "/cachet-redis-XXXXXX";
    if (!::mkdtemp(templ.data())) throw Error("RedisServer: mkdtemp failed in " + base);
    dir_ = templ;
    socket_ = dir_ + "/redis.sock";
  }


  void write_config() const {
    std::ofstream conf(dir_ + "/redis.conf");
    conf << "port " << port_ << "\n"
         << "bind 127.0.0.1\n"
         << "unixsocket " << socket_ << "\n"
         << "unixsocketperm 700\n"
         << "dir " << dir_ << "\n"
         << "logfile " << dir_ << "/redis.log\n"
         << "daemonize no\n"
         << "save \"\"\n"
         << "appendonly no\n"
         << "enable-debug-command local\n";
    if (options_.tls) {
      constexpr const char* auth[] = {"no", "yes", "optional"};
      conf << "tls-port " << tls_port_ << "\n"
           << "tls-cert-file " << tls_files_.server_cert << "\n"
           << "tls-key-file " << tls_files_.server_key << "\n"
           << "tls-ca-cert-file " << tls_files_.ca_cert << "\n"
           // What it presents to the servers it connects to (its master, other
           // cluster nodes, whose bus always asks for a client certificate).
           << "tls-client-cert-file " << tls_files_.client_cert << "\n"
           << "tls-client-key-file " << tls_files_.client_key << "\n"
           << "tls-auth-clients " << auth[static_cast<int>(options_.tls_auth_clients)] << "\n";
    }
    if (options_.cluster)
      conf << "cluster-enabled yes\n"
           << "cluster-port " << cluster_port_ << "\n"
           << "cluster-config-file " << dir_ << "/nodes.conf\n";
    for (const auto& line : options_.config) conf << line << "\n";
    if (!conf) throw Error("RedisServer: cannot write " + dir_ + "/redis.conf");
  }

  void start() {
    std::filesystem::remove(socket_);
    pid_ = detail::Spawner::spawn({options_.executable, dir_ + "/redis.conf"}, dir_ + "/redis.out");
    if (pid_ < 0) throw Error("RedisServer: fork failed");
    wait_until_ready();
  }

  void remove_dir() noexcept {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void wait_until_ready() {
    const auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
    ConnectionOptions o = connection_options();
    o.connect_timeout = std::chrono::milliseconds{200};
    o.password = admin_password();
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
          throw Error("RedisServer: cannot run '" + options_.executable +
                      "' (install Debian's redis-server package, or set CACHET_REDIS_SERVER)");
        throw Error("RedisServer: redis-server exited at start; log:\n" + log());
      }
      if (std::filesystem::exists(socket_)) {
        try {
          if (Connection(o).command({"PING"}).is_status()) return;
        } catch (const Error&) {
        }
      }
      if (std::chrono::steady_clock::now() > deadline) {
        kill();
        throw Error("RedisServer: redis-server did not answer PING in time; log:\n" + log());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    }
  }

  RedisServerOptions options_;
  std::string dir_;
  std::string socket_;
  int port_ = 0;
  int tls_port_ = 0;
  int cluster_port_ = 0;
  TlsCertificateFiles tls_files_{};
  pid_t pid_ = -1;
  std::vector<std::unique_ptr<Connection>> sleepers_;  // connections with a DEBUG SLEEP in flight
};

}  // namespace cachet::testing
