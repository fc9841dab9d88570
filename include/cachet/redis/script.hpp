#pragma once
// A Lua script run by EVALSHA. Its SHA1 comes from the server's own SCRIPT LOAD
// the first time it is needed; when the server answers NOSCRIPT (restarted, or
// SCRIPT FLUSH) the script is sent again with EVAL, which also re-caches it.

#include <cachet/redis/detail/argv.hpp>
#include <cachet/redis/arg.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/errors.hpp>

#include <atomic>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace cachet {

class Script {
 public:
  explicit Script(std::string source) : source_(std::move(source)) {}
  Script(const Script&) = delete;
  Script& operator=(const Script&) = delete;

  // Runs the script with KEYS and ARGV; an error reply (also one raised by the
  // script) throws ReplyError.
  Reply run(Connection& conn, std::initializer_list<Arg> keys = {}, std::initializer_list<Arg> args = {}) const {
    detail::Argv k(keys), a(args);
    return run_argv(conn, k, a);
  }
  template <ArgRange K, ArgRange A>
  Reply run(Connection& conn, const K& keys, const A& args) const {
    detail::Argv k, a;
    k.push_range(keys);
    a.push_range(args);
    return run_argv(conn, k, a);
  }

  const std::string& source() const noexcept { return source_; }

  // The SHA1 the server knows the script by (loads it on first use).
  const std::string& sha(Connection& conn) const {
    if (!has_sha_.load(std::memory_order_acquire)) {
      std::lock_guard lock(load_mutex_);
      if (!has_sha_.load(std::memory_order_relaxed)) {
        sha_ = std::string(conn.command({"SCRIPT", "LOAD", source_}).as_string());
        has_sha_.store(true, std::memory_order_release);
      }
    }
    return sha_;
  }

 private:
  Reply run_argv(Connection& conn, const detail::Argv& keys, const detail::Argv& args) const {
    const Arg numkeys(keys.size());
    try {
      detail::Argv argv;
      fill(argv, "EVALSHA", sha(conn), numkeys, keys, args);
      return conn.command_argv(argv);
    } catch (const ReplyError& e) {
      if (!e.is("NOSCRIPT")) throw;
    }
    detail::Argv argv;
    fill(argv, "EVAL", source_, numkeys, keys, args);
    return conn.command_argv(argv);
  }

  static void fill(detail::Argv& argv, std::string_view verb, std::string_view body, const Arg& numkeys,
                   const detail::Argv& keys, const detail::Argv& args) {
    argv.reserve(3 + keys.size() + args.size());
    argv.push(verb);
    argv.push(body);
    argv.push(numkeys.view());
    for (std::size_t i = 0; i < keys.size(); ++i) argv.push(keys[i]);
    for (std::size_t i = 0; i < args.size(); ++i) argv.push(args[i]);
  }

  std::string source_;
  mutable std::mutex load_mutex_;
  mutable std::atomic<bool> has_sha_{false};
  mutable std::string sha_;
};

}  // namespace cachet
