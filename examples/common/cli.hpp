#pragma once
// What every example's command line shares, on CLI11: --help, usage errors (exit
// 2, one line saying what is wrong), the Redis address flags, a throwaway server
// (or with --cluster a throwaway local Redis Cluster) when none is given, and
// latency percentiles.

#include <cachet/redis/options.hpp>
#include <cachet/testing/redis_cluster.hpp>
#include <cachet/testing/redis_server.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace example {

class Cli {
 public:
  Cli(std::string program, std::string description) : app_(std::move(description), std::move(program)) {
    app_.get_formatter()->column_width(32);
    command_timeout_ms_ = redis_.command_timeout.count();
    CLI::Option* socket =
        app_.add_option("--socket", redis_.path, "Redis unix socket (default: a throwaway redis-server)");
    app_.add_option("--host", redis_.host, "Redis host")->excludes(socket);
    app_.add_option("--port", redis_.port, "Redis port")->check(CLI::Range(1, 65535))->excludes(socket);
    app_.add_option("--password", redis_.password, "Redis password");
    CLI::Option* seeds = app_.add_option("--cluster-seed", redis_.cluster.seeds, "a Redis Cluster node, host:port (repeatable)")
                             ->excludes(socket);
    app_.add_flag("--cluster", cluster_, "a throwaway local Redis Cluster (3 masters, 3 replicas) unless --cluster-seed is given")
        ->excludes(socket)
        ->excludes("--host")
        ->excludes("--port");
    seeds->excludes("--host")->excludes("--port");
    positive("--command-timeout", command_timeout_ms_, "Redis command timeout, ms");
  }

  // Add the example's own flags here before parse().
  CLI::App& app() noexcept { return app_; }

  // A flag that takes a positive integer, showing its default in --help.
  template <class T>
  CLI::Option* positive(const std::string& name, T& value, const std::string& help) {
    return app_.add_option(name, value, help)->check(positive_integer())->capture_default_str();
  }

  // Parses the command line, or exits: 0 after --help, 2 after a usage error.
  void parse(int argc, char** argv) {
    try {
      app_.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == 0) std::exit(app_.exit(e));  // --help
      fail(e.what());
    }
    for (const char* flag : {"--socket", "--host", "--port", "--password", "--cluster-seed"})
      if (app_.count(flag) != 0) own_server_ = false;
    redis_.command_timeout = std::chrono::milliseconds(command_timeout_ms_);
  }

  // A usage error found after parsing (flags that contradict each other).
  [[noreturn]] void fail(const std::string& error) const {
    std::fprintf(stderr, "%s: %s\nRun with --help for more information.\n", app_.get_name().c_str(), error.c_str());
    std::exit(2);
  }

  // The Redis to use: the one the flags named, or a throwaway server started now.
  cachet::ConnectionOptions redis() {
    if (!own_server_) return redis_;
    if (cluster_) return own_cluster();
    if (!server_) {
      server_ = std::make_unique<cachet::testing::RedisServer>();
      std::printf("started a throwaway redis-server on %s\n", server_->socket_path().c_str());
    }
    cachet::ConnectionOptions o = server_->connection_options();
    o.command_timeout = redis_.command_timeout;
    return o;
  }

 private:
  // Checked before conversion, so "zero" and "-5" get one clear line.
  static CLI::Validator positive_integer() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
          long v = 0;
          const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
          if (ec != std::errc{} || end != text.data() + text.size() || v <= 0)
            return "needs a positive integer, got '" + text + "'";
          return {};
        },
        "POSITIVE");
  }

  cachet::ConnectionOptions own_cluster() {
    if (!local_cluster_) {
      local_cluster_ = std::make_unique<cachet::testing::RedisCluster>();
      std::printf("started a throwaway Redis Cluster: 3 masters, 3 replicas, on 127.0.0.1 ports");
      for (const auto& node : local_cluster_->seeds()) std::printf(" %d", node.port);
      std::printf("\n");
    }
    cachet::ConnectionOptions o = local_cluster_->client_options();
    o.command_timeout = redis_.command_timeout;
    return o;
  }

  CLI::App app_;
  cachet::ConnectionOptions redis_;
  long command_timeout_ms_ = 0;
  bool own_server_ = true;
  bool cluster_ = false;
  std::unique_ptr<cachet::testing::RedisServer> server_;
  std::unique_ptr<cachet::testing::RedisCluster> local_cluster_;
};

// The p-th percentile (0..1) of `v`, which is reordered.
inline double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace example
