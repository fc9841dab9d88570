#pragma once
// The test binary's own Redis, started on first use and stopped at exit.
// server(): its redis-server. target(): the same server, or with
// CACHET_TEST_TARGET=cluster (the `<name>_cluster` CTest entries, see
// tests/CMakeLists.txt) a 3-master cluster. Suites written against target()
// run on both; a case that needs the one server itself (kills it, counts its
// keys as a whole) is tagged [single-server] and uses clean_server().

#include <cachet/redis/connection.hpp>
#include <cachet/testing/redis_cluster.hpp>
#include <cachet/testing/redis_server.hpp>

#include <support/client.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cachet::test {

// Whether this run's target is a cluster (CACHET_TEST_TARGET=cluster).
inline bool on_cluster() {
  static const bool yes = [] {
    const char* t = std::getenv("CACHET_TEST_TARGET");
    return t && std::string_view(t) == "cluster";
  }();
  return yes;
}

inline testing::RedisServer& server() {
  static testing::RedisServer instance;
  return instance;
}

// The shared server, emptied, so a test case sees no keys of an earlier one.
inline testing::RedisServer& clean_server() {
  auto& s = server();
  s.connect().command({"FLUSHALL"});
  return s;
}

class Target {
 public:
  Target() {
    if (!on_cluster()) server_ = &server();
    else cluster_ = std::make_unique<testing::RedisCluster>(testing::RedisClusterOptions{.replicas_per_master = 0});
  }

  // Where workers reach it: a socket path, or "cluster:" and the seeds (test::target_options).
  std::string address() const {
    if (server_) return server_->socket_path();
    std::string a(cluster_address_prefix);
    const ConnectionOptions options = cluster_->client_options();
    for (const std::string& seed : options.cluster.seeds) a += seed + ",";
    a.pop_back();
    return a;
  }
  // What a Pool takes: the server's socket, or the cluster's seeds.
  ConnectionOptions connection_options() const { return target_options(address()); }
  Client connect() const { return Client(connection_options()); }
  // A directory for the test's files (worker logs, databases).
  const std::string& directory() const {
    return server_ ? server_->directory() : cluster_->nodes().front()->directory();
  }

  bool cluster() const noexcept { return cluster_ != nullptr; }
  testing::RedisCluster& redis_cluster() const {
    if (!cluster_) throw std::logic_error("test::Target: not a cluster (CACHET_TEST_TARGET)");
    return *cluster_;
  }

  // FLUSHALL on the server, or on every master.
  void flush() const {
    if (server_) {
      server_->connect().command({"FLUSHALL"});
      return;
    }
    for (int port : cluster_->master_ports()) cluster_->node_at(port).connect().command({"FLUSHALL"});
  }

 private:
  testing::RedisServer* server_ = nullptr;
  std::unique_ptr<testing::RedisCluster> cluster_;
};

inline Target& target() {
  static Target instance;
  return instance;
}

// The shared target, emptied.
inline Target& clean_target() {
  auto& t = target();
  t.flush();
  return t;
}

inline Connection connect(const testing::RedisServer& s) { return Connection(s.connection_options()); }

// `s`'s options with a short command timeout, for tests that kill their own server.
inline ConnectionOptions quick_to_fail(const testing::RedisServer& s) {
  ConnectionOptions o = s.connection_options();
  o.command_timeout = std::chrono::milliseconds(100);
  return o;
}

}  // namespace cachet::test
