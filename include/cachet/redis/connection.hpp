#pragma once
// One blocking connection to Redis: RAII over redisContext, commands through the
// argv API, pipelining, typed errors, and reconnection paced by back-off.
//
// A context that reported an error (I/O, timeout, protocol) is dropped at once and
// never reused: after a timeout a late reply could otherwise be read as the answer
// to the next command. The next command reconnects, unless the back-off since the
// last failed connect has not elapsed, in which case it fails fast.

#include <cachet/redis/detail/argv.hpp>
#include <cachet/detail/backoff.hpp>
#include <cachet/redis/detail/hiredis.hpp>
#include <cachet/redis/detail/sentinel_resolver.hpp>
#include <cachet/redis/arg.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/reply.hpp>
#include <cachet/redis/sentinel_errors.hpp>

#include <fmt/format.h>

#include <poll.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace cachet {

class Connection {
 public:
  using clock = std::chrono::steady_clock;

  // Connects at once; throws ConnectionError, TimeoutError or ReplyError (AUTH, SELECT).
  explicit Connection(ConnectionOptions options)
      : options_(std::move(options)), backoff_(options_.reconnect) {
    if (options_.sentinel.enabled()) sentinel_ = detail::SentinelResolver::get(options_.sentinel);
    connect();
  }

  // A moved-from connection is closed (broken) and reconnects on next use.
  Connection(Connection&& o) noexcept
      : options_(o.options_),  // copied: the moved-from connection can still reconnect
        ctx_(std::move(o.ctx_)),
        backoff_(std::move(o.backoff_)),
        pending_(std::exchange(o.pending_, 0)),
        last_error_(std::move(o.last_error_)),
        first_pending_(std::move(o.first_pending_)),
        sentinel_(o.sentinel_),
        generation_(o.generation_),
        demoted_(std::exchange(o.demoted_, false)) {}
  Connection& operator=(Connection&& o) noexcept {
    if (this != &o) {
      options_ = o.options_;
      ctx_ = std::move(o.ctx_);
      backoff_ = std::move(o.backoff_);
      pending_ = std::exchange(o.pending_, 0);
      last_error_ = std::move(o.last_error_);
      first_pending_ = std::move(o.first_pending_);
      sentinel_ = o.sentinel_;
      generation_ = o.generation_;
      demoted_ = std::exchange(o.demoted_, false);
    }
    return *this;
  }

  // Sends one command and returns its reply; an error reply throws ReplyError.
  Reply command(std::initializer_list<Arg> args) {
    detail::Argv argv(args);
    return command_argv(argv);
  }
  template <ArgRange R>
  Reply command(const R& args) {
    detail::Argv argv;
    argv.push_range(args);
    return command_argv(argv);
  }
  Reply command_argv(detail::Argv& argv) {
    if (pending_ != 0) throw std::logic_error("cachet::Connection: command() with pipelined replies unread");
    append_argv(argv);
    Reply r = read_reply();
    if (r.is_error() && is_readonly(r)) throw ReadOnlyError(std::string(r.error_message()));
    r.throw_if_error();
    return r;
  }

  // Pipelining: append N commands, then read N replies (error replies are returned,
  // not thrown, so one failed command does not hide the others' results).
  void append(std::initializer_list<Arg> args) {
    detail::Argv argv(args);
    append_argv(argv);
  }
  template <ArgRange R>
  void append(const R& args) {
    detail::Argv argv;
    argv.push_range(args);
    append_argv(argv);
  }
  void append_argv(detail::Argv& argv) {
    // Redis never answers an empty command: the read would wait for the timeout.
    if (argv.size() == 0) throw std::invalid_argument("cachet::Connection: empty command");
    if (pending_ == 0) leave_if_moved();
    ensure_connected();
    if (pending_ == 0) name_first_pending(argv);
    if (redisAppendCommandArgv(ctx_.get(), argv.argc(), argv.argv(), argv.lens()) != REDIS_OK) fail_command();
    ++pending_;
  }
  Reply read_reply() {
    if (pending_ == 0) throw std::logic_error("cachet::Connection: read_reply() with no command pending");
    void* raw = nullptr;
    if (redisGetReply(ctx_.get(), &raw) != REDIS_OK || raw == nullptr) fail_command();
    --pending_;
    Reply r(detail::ReplyPtr(static_cast<redisReply*>(raw)));
    if (r.is_error() && is_readonly(r)) leave_demoted_master();
    if (demoted_ && pending_ == 0) close();
    return r;
  }
  std::size_t pending() const noexcept { return pending_; }

  // For a connection in pub/sub mode (after SUBSCRIBE's reply was read): the
  // next pushed message, or nullopt if none arrived within `wait`, or if
  // `wake_fd` (when >= 0) became readable first (the caller drains it).
  std::optional<Reply> read_push(std::chrono::milliseconds wait, int wake_fd = -1) {
    if (!ctx_) throw ConnectionError("redis: read_push on a connection that is not connected");
    void* raw = nullptr;
    if (redisGetReplyFromReader(ctx_.get(), &raw) != REDIS_OK) fail("pub/sub read");  // one already buffered?
    if (raw == nullptr) {
      pollfd p[2] = {{ctx_->fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
      const int ready = ::poll(p, wake_fd >= 0 ? 2 : 1, static_cast<int>(wait.count()));
      if (ready < 0 && errno != EINTR) fail("pub/sub poll");
      if (ready <= 0 || (p[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) return std::nullopt;
      if (redisBufferRead(ctx_.get()) != REDIS_OK) fail("pub/sub read");
      if (redisGetReplyFromReader(ctx_.get(), &raw) != REDIS_OK) fail("pub/sub read");
      if (raw == nullptr) return std::nullopt;  // part of a message so far
    }
    return Reply(detail::ReplyPtr(static_cast<redisReply*>(raw)));
  }

  // For a connection in pub/sub mode: sends a command whose answer comes back as
  // a push (PING, a further SUBSCRIBE), to be read by read_push. Nothing is
  // counted as pending.
  void send(std::initializer_list<Arg> args) {
    if (!ctx_) throw ConnectionError("redis: send on a connection that is not connected");
    detail::Argv argv(args);
    if (redisAppendCommandArgv(ctx_.get(), argv.argc(), argv.argv(), argv.lens()) != REDIS_OK) fail("pub/sub send");
    for (int done = 0; !done;)
      if (redisBufferWrite(ctx_.get(), &done) != REDIS_OK) fail("pub/sub send");
  }

  // Drops the context: pending replies are forgotten and the next command reconnects.
  void close() noexcept {
    ctx_.reset();
    pending_ = 0;
    demoted_ = false;
  }

  // True when no usable context is held (never connected, failed, or closed).
  bool broken() const noexcept { return ctx_ == nullptr; }

  // Reconnects now if the back-off allows it; throws the connect error otherwise.
  void ensure_connected() {
    if (ctx_) return;
    const auto now = clock::now();
    if (!backoff_.ready(now)) {
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(backoff_.next_attempt() - now);
      throw ConnectionError("redis: not connected, next reconnect attempt in " + std::to_string(wait.count()) +
                            " ms (last error: " + last_error_ + ")");
    }
    connect();
  }

  // Keeps trying to reconnect, sleeping the back-off between attempts, until it
  // succeeds (true) or `within` has passed (false). Tries at least once.
  bool reconnect(std::chrono::milliseconds within) {
    const auto deadline = clock::now() + within;
    close();
    for (bool first = true;; first = false) {
      const auto next = std::max(backoff_.next_attempt(), clock::now());
      if (next <= deadline) std::this_thread::sleep_until(next);
      else if (!first) return false;  // the first attempt is made even inside the back-off
      try {
        connect();
        return true;
      } catch (const Error&) {
        if (clock::now() >= deadline) return false;
      }
    }
  }

  const ConnectionOptions& options() const noexcept { return options_; }

  // Through Sentinel: the master moved since this connection was opened (a
  // failover); it still talks to the old server, so pools and subscribers drop it.
  bool moved() const noexcept { return sentinel_ && !broken() && sentinel_->generation() != generation_; }
  redisContext* native_handle() noexcept { return ctx_.get(); }

 private:
  static timeval to_timeval(std::chrono::milliseconds ms) {
    return timeval{static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
  }

  void connect() {
    close();
    try {
      resolve_address();
      open_context();
      handshake();
      backoff_.reset();
    } catch (const std::exception& e) {
      close();
      if (sentinel_ && dynamic_cast<const ConnectionError*>(&e)) sentinel_->invalidate(generation_);
      last_error_ = e.what();
      backoff_.record_failure();
      throw;
    }
  }

  // Through Sentinel: the address to open is the current master's (or a replica's).
  void resolve_address() {
    if (!sentinel_) return;
    detail::SentinelTarget t = sentinel_->resolve(options_.sentinel.role, options_.connect_timeout);
    options_.host = std::move(t.host);
    options_.port = t.port;
    generation_ = t.generation;
  }

  // Through Sentinel: ROLE, read last in the handshake's round trip, must name
  // the role asked for (a stale answer can point at a demoted master).
  void check_role(const Reply& role) {
    const bool master = options_.sentinel.role == SentinelRole::master;
    const std::string_view want = master ? "master" : "slave";
    if (role.is_array() && role.size() > 0 && role[0].is_string() && role[0].as_string() == want) return;
    sentinel_->invalidate(generation_);
    throw ConnectionError(fmt::format("sentinel: {} is not a {} (ROLE); rediscovering", endpoint(), want));
  }

  // Through Sentinel, between commands: a connection left on the old master (a
  // failover keeps it writable for seconds) reconnects to the new one.
  void leave_if_moved() noexcept {
    if (moved()) close();
  }

  static bool is_readonly(const Reply& r) noexcept { return r.error_message().starts_with("READONLY"); }

  // A READONLY reply: the server was demoted. Through Sentinel the connection
  // closes once its pipeline is read, and the next one asks the sentinels.
  void leave_demoted_master() noexcept {
    if (!sentinel_) return;
    sentinel_->invalidate(generation_);
    demoted_ = true;
  }

  void open_context() {
    if (options_.handle_sigpipe) detail::handle_default_sigpipe();
    const timeval tv = to_timeval(options_.connect_timeout);
    const bool timed = options_.connect_timeout.count() > 0;
    redisContext* c = options_.uses_unix_socket()
        ? (timed ? redisConnectUnixWithTimeout(options_.path.c_str(), tv) : redisConnectUnix(options_.path.c_str()))
        : (timed ? redisConnectWithTimeout(options_.host.c_str(), options_.port, tv)
                 : redisConnect(options_.host.c_str(), options_.port));
    const int saved_errno = errno;
    if (c == nullptr) throw std::bad_alloc();
    ctx_.reset(c);
    if (c->err)
      detail::throw_context_error(*c, saved_errno, {"connect to " + endpoint(), options_.connect_timeout,
                                                    "ConnectionOptions::connect_timeout"});
    // Zero restores blocking without a limit (hiredis 0.14 keeps the connect timeout otherwise).
    if (redisSetTimeout(c, to_timeval(options_.command_timeout)) != REDIS_OK) fail("setting the command timeout");
    if (options_.keepalive && !options_.uses_unix_socket() && redisEnableKeepAlive(c) != REDIS_OK) fail("TCP keepalive");
  }

  // AUTH, SELECT and CLIENT SETNAME in one round trip.
  void handshake() {
    std::size_t sent = 0;
    if (!options_.password.empty()) {
      if (options_.user.empty()) append({"AUTH", options_.password});
      else append({"AUTH", options_.user, options_.password});
      ++sent;
    }
    if (options_.db != 0) {
      append({"SELECT", options_.db});
      ++sent;
    }
    if (!options_.client_name.empty()) {
      append({"CLIENT", "SETNAME", options_.client_name});
      ++sent;
    }
    if (sentinel_) append({"ROLE"});
    std::string first_error;
    for (std::size_t i = 0; i < sent; ++i) {
      Reply r = read_reply();
      if (r.is_error() && first_error.empty()) first_error = r.error_message();
    }
    if (sentinel_) check_role(read_reply());
    if (!first_error.empty()) throw ReplyError(first_error);
  }

  // Drops the failed context, then throws its typed error, naming `what` failed on which server.
  [[noreturn]] void fail(std::string_view what) {
    const int saved_errno = errno;
    if (sentinel_) sentinel_->invalidate(generation_);  // a lost server may be a failed master
    detail::ContextPtr failed = std::move(ctx_);
    close();
    const std::string op = fmt::format("{} on {}", what, endpoint());
    detail::throw_context_error(*failed, saved_errno, {op, options_.command_timeout, "ConnectionOptions::command_timeout"});
  }

  // A failed command or pipeline, named by the first command whose reply is awaited.
  [[noreturn]] void fail_command() {
    if (pending_ <= 1) fail(first_pending_);
    fail(fmt::format("{} (in a pipeline, {} replies unread)", first_pending_, pending_));
  }

  // Kept for error messages; a command name is short, so this does not allocate.
  void name_first_pending(detail::Argv& argv) {
    first_pending_.assign(argv.argv()[0], std::min<std::size_t>(argv.lens()[0], 15));
  }

  std::string endpoint() const {
    if (!sentinel_) return options_.endpoint();
    return fmt::format("{}:{} ({})", options_.host, options_.port, options_.endpoint());
  }

  ConnectionOptions options_;
  detail::ContextPtr ctx_;
  detail::Backoff backoff_;
  std::size_t pending_ = 0;
  std::string last_error_;
  std::string first_pending_;  // the name of the first command sent since the last reply read
  std::shared_ptr<detail::SentinelResolver> sentinel_;  // null unless through Sentinel
  std::uint64_t generation_ = 0;  // the master's generation when this connection was opened
  bool demoted_ = false;          // a READONLY came back: close once the pipeline is read
};

}  // namespace cachet
