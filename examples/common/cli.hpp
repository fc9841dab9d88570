#pragma once
// What every example's command line shares: usage errors (exit 2), positive
// integer flags, the Redis address flags, a throwaway server when none is
// given, and latency percentiles.

#include <cachet/redis/options.hpp>
#include <cachet/testing/redis_server.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace example {

class Cli {
 public:
  // `usage` is printed after "usage: " on errors and for --help.
  Cli(std::string program, std::string usage) : program_(std::move(program)), usage_(std::move(usage)) {}

  [[noreturn]] void fail(const std::string& error) const {
    if (!error.empty()) std::fprintf(stderr, "%s: %s\n", program_.c_str(), error.c_str());
    std::fprintf(stderr, "usage: %s %s\n", program_.c_str(), usage_.c_str());
    std::exit(error.empty() ? 0 : 2);
  }

  // Calls `handle(flag, value)` for each "--flag value" pair that is not a Redis
  // flag; `handle` returns false for a flag it does not know. --help prints the usage.
  template <class Handle>
  void each_flag(int argc, char** argv, Handle&& handle) {
    for (int i = 1; i < argc; ++i) {
      const std::string_view flag = argv[i];
      if (flag == "--help" || flag == "-h") fail("");
      if (flag.rfind("--", 0) != 0) fail("unexpected argument '" + std::string(flag) + "'");
      if (i + 1 >= argc) fail("missing value after " + std::string(flag));
      const std::string_view value = argv[++i];
      if (!redis_flag(flag, value) && !handle(flag, value)) fail("unknown flag " + std::string(flag));
    }
  }

  int positive(std::string_view flag, std::string_view text) const {
    int v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v <= 0)
      fail(std::string(flag) + " needs a positive integer, got '" + std::string(text) + "'");
    return v;
  }

  // A number in [min, max].
  double number(std::string_view flag, std::string_view text, double min, double max) const {
    double v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v < min || v > max)
    {
      char range[64];
      std::snprintf(range, sizeof range, " needs a number from %g to %g, got '", min, max);
      fail(std::string(flag) + range + std::string(text) + "'");
    }
    return v;
  }

  // --socket, --host, --port, --password: true if `flag` was one of them.
  bool redis_flag(std::string_view flag, std::string_view value) {
    if (flag == "--socket") redis_.path = value;
    else if (flag == "--host") redis_.host = value;
    else if (flag == "--port") redis_.port = positive(flag, value);
    else if (flag == "--password") redis_.password = value;
    else return false;
    own_server_ = false;
    return true;
  }

  // The Redis to use: the one the flags named, or a throwaway server started now.
  cachet::ConnectionOptions redis() {
    if (!own_server_) return redis_;
    if (!server_) {
      server_ = std::make_unique<cachet::testing::RedisServer>();
      std::printf("started a throwaway redis-server on %s\n", server_->socket_path().c_str());
    }
    return server_->connection_options();
  }

 private:
  std::string program_, usage_;
  cachet::ConnectionOptions redis_;
  bool own_server_ = true;
  std::unique_ptr<cachet::testing::RedisServer> server_;
};

// The p-th percentile (0..1) of `v`, which is reordered.
inline double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace example
