#pragma once
// One blocking connection to Redis over a transport cachet owns (detail::Stream:
// a socket, or TLS over one), with hiredis parsing the replies: commands as
// argument lists, pipelining, typed errors, a deadline on every connect, write
// and read, and reconnection paced by back-off.
//
// A transport that reported an error (I/O, timeout, protocol) is dropped at once and
// never reused: after a timeout a late reply could otherwise be read as the answer
// to the next command. The next command reconnects, unless the back-off since the
// last failed connect has not elapsed, in which case it fails fast.

#include <cachet/redis/detail/argv.hpp>
#include <cachet/redis/detail/asking_prefix.hpp>
#include <cachet/detail/backoff.hpp>
#include <cachet/redis/detail/format.hpp>
#include <cachet/redis/detail/hiredis.hpp>
#include <cachet/redis/detail/handshake.hpp>
#include <cachet/redis/detail/sentinel_link.hpp>
#include <cachet/redis/detail/io_error.hpp>
#include <cachet/redis/detail/open_stream.hpp>
#include <cachet/redis/detail/reply_reader.hpp>
#include <cachet/redis/detail/stream.hpp>
#include <cachet/redis/arg.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/reply.hpp>
#include <cachet/redis/sentinel_errors.hpp>

#include <fmt/format.h>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
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
      : options_(std::move(options)), backoff_(options_.reconnect), sentinel_(options_.sentinel) {
    connect();
  }

  // A moved-from connection is closed (broken) and reconnects on next use. Not
  // noexcept: the options are copied (a bad_alloc must not terminate).
  Connection(Connection&& o) : options_(o.options_), backoff_(std::move(o.backoff_)), sentinel_(o.sentinel_) {
    take_transport(o);  // the options stay copied, so the moved-from one can still reconnect
  }
  Connection& operator=(Connection&& o) {
    if (this != &o) {
      options_ = o.options_;
      backoff_ = std::move(o.backoff_);
      sentinel_ = o.sentinel_;
      take_transport(o);
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
    if (asking_.on()) [[unlikely]]
      append_asking(argv);
    format_whole(argv);
    ++pending_;
  }
  // Writes what was appended first; command_timeout bounds the write, then the read.
  Reply read_reply() {
    if (pending_ == 0) throw std::logic_error("cachet::Connection: read_reply() with no command pending");
    if (!out_.empty()) flush_or_fail_command();  // pending commands imply a stream
    if (asking_.on()) [[unlikely]]
      skip_asking_reply();
    Reply r(receive_reply());
    if (r.is_error() && is_readonly(r)) leave_demoted_master();
    if (demoted_ && pending_ == 0) close();
    return r;
  }
  std::size_t pending() const noexcept { return pending_; }

  // Redis Cluster's ASK target (detail/asking_prefix.hpp): while on, each
  // command appended is preceded by ASKING, whose reply read_reply() drops.
  // Replies still pending when it changes would be misread: the transport is
  // dropped instead.
  void set_asking(bool on) noexcept {
    if (pending_ != 0) close();
    asking_.set(on);
  }

  // Writes the appended commands now, without reading their replies (they stay pending).
  void flush() {
    if (!out_.empty()) flush_or_fail_command();
  }

  // For a connection in pub/sub mode (after SUBSCRIBE's reply was read): the
  // next pushed message, or nullopt if none arrived within `wait`, or if
  // `wake_fd` (when >= 0) became readable first (the caller drains it).
  std::optional<Reply> read_push(std::chrono::milliseconds wait, int wake_fd = -1) {
    if (!stream_) throw ConnectionError("redis: read_push on a connection that is not connected");
    detail::ReplyPtr reply;
    if (next_reply(reply)) return Reply(std::move(reply));  // one already buffered
    if (!stream_->has_buffered_input()) {  // TLS may hold decrypted input a poll cannot see
      pollfd p[2] = {{stream_->fd(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
      const auto ms = std::clamp<std::chrono::milliseconds::rep>(wait.count(), 0, INT_MAX);  // poll takes an int
      const int ready = ::poll(p, wake_fd >= 0 ? 2 : 1, static_cast<int>(ms));
      if (ready < 0 && errno != EINTR) fail("pub/sub poll", {detail::IoStatus::failed, 0, std::strerror(errno)});
      if (ready <= 0 || (p[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) return std::nullopt;
    }
    const auto deadline = detail::deadline_after(options_.command_timeout);
    const std::size_t n = receive(deadline, [this](const detail::IoResult& r) { fail("pub/sub read", r); });
    if (!reader_->feed(buffer_, n)) fail_protocol("pub/sub read");
    if (!next_reply(reply)) return std::nullopt;  // part of a message so far
    return Reply(std::move(reply));
  }

  // For a connection in pub/sub mode: sends a command whose answer comes back as
  // a push (PING, a further SUBSCRIBE), to be read by read_push. Nothing is
  // counted as pending.
  void send(std::initializer_list<Arg> args) {
    if (!stream_) throw ConnectionError("redis: send on a connection that is not connected");
    detail::Argv argv(args);
    format_whole(argv);
    if (auto r = write_out(); r.status != detail::IoStatus::done) fail("pub/sub send", r);
  }

  // Drops the transport: pending replies are forgotten and the next command reconnects.
  void close() noexcept {
    stream_.reset();
    reader_.reset();
    out_.clear();
    pending_ = 0;
    demoted_ = false;
    asking_.reset();
  }

  // True when no usable transport is held (never connected, failed, or closed).
  bool broken() const noexcept { return stream_ == nullptr; }

  // Reconnects now if the back-off allows it; throws the connect error otherwise.
  void ensure_connected() {
    if (stream_) return;
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
  // The socket (for socket options, or to poll beside other descriptors); -1 when not connected.
  int fd() const noexcept { return stream_ ? stream_->fd() : -1; }

  // Through Sentinel: the master moved since this connection was opened (a
  // failover); it still talks to the old server, so pools and subscribers drop it.
  bool moved() const noexcept { return !broken() && sentinel_.moved(); }

 private:
  // The socket, reader and pending state of `o`, which is left closed (broken).
  void take_transport(Connection& o) noexcept {
    stream_ = std::move(o.stream_);
    reader_ = std::move(o.reader_);
    out_ = std::move(o.out_);
    pending_ = std::exchange(o.pending_, 0);
    last_error_ = std::move(o.last_error_);
    first_pending_ = std::move(o.first_pending_);
    demoted_ = std::exchange(o.demoted_, false);
    asking_ = std::exchange(o.asking_, {});
  }


  void connect() {
    close();
    try {
      sentinel_.resolve(options_);
      open_context();
      handshake();
      backoff_.reset();
    } catch (const std::exception& e) {
      close();
      if (dynamic_cast<const ConnectionError*>(&e)) sentinel_.invalidate();
      last_error_ = e.what();
      backoff_.record_failure();
      throw;
    }
  }

  // Appends `argv` to the output whole or not at all (bad_alloc): never half a command.
  void format_whole(detail::Argv& argv) {
    const std::size_t before = out_.size();
    try {
      detail::format_command(out_, argv);
    } catch (...) {
      out_.resize(before);
      throw;
    }
  }

  // The next reply off the stream, counted as read.
  detail::ReplyPtr receive_reply() {
    detail::ReplyPtr reply;
    const detail::Deadline deadline = detail::deadline_after(options_.command_timeout);
    while (!next_reply(reply)) {
      const std::size_t n = receive(deadline, [this](const detail::IoResult& r) { fail_command(r); });
      if (!reader_->feed(buffer_, n)) fail_protocol(command_name());
    }
    --pending_;
    return reply;
  }

  // Cold and out of line: inlined into append_argv, the asking mode pushed
  // format_command's appends out of line (+65 instructions a pipelined command).
  [[gnu::cold, gnu::noinline]] void append_asking(const detail::Argv& argv) {
    if (asking_.prefix(argv[0], out_)) ++pending_;
  }
  [[gnu::cold, gnu::noinline]] void skip_asking_reply() {
    if (asking_.take()) receive_reply();  // ASKING's +OK
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
    sentinel_.invalidate();
    demoted_ = true;
  }

  void open_context() {
    if (options_.handle_sigpipe) detail::handle_default_sigpipe();
    stream_ = detail::open_stream(options_, detail::deadline_after(options_.connect_timeout));
    reader_ = std::make_unique<detail::ReplyReader>(options_.max_reply_bytes);
  }

  // detail/handshake.hpp; through Sentinel, HELLO says whether the server has the role asked for.
  void handshake() {
    const std::optional<Reply> hello = detail::handshake(*this, options_, static_cast<bool>(sentinel_));
    if (sentinel_) sentinel_.check_role(*hello, options_.sentinel.role, endpoint());
  }

  // The next reply parsed from what was received (false: more input is needed).
  bool next_reply(detail::ReplyPtr& reply) {
    if (!reader_->next(reply)) fail_protocol(pending_ > 0 ? command_name() : std::string("pub/sub read"));
    return reply != nullptr;
  }

  // Reads what the stream has into buffer_ by `deadline`; `on_error` throws.
  template <class OnError>
  std::size_t receive(detail::Deadline deadline, OnError&& on_error) {
    const detail::IoResult r = closing_on_throw([&] { return stream_->read_some(buffer_, sizeof buffer_, deadline); });
    if (r.status != detail::IoStatus::done) on_error(r);
    return r.bytes;
  }

  detail::IoResult write_out() {
    const auto deadline = detail::deadline_after(options_.command_timeout);
    const detail::IoResult r = closing_on_throw([&] { return stream_->write_all(out_.data(), out_.size(), deadline); });
    out_.clear();
    return r;
  }

  // A stream may throw its own typed error (a TLS alert): the transport is then dropped, as on any failure.
  template <class Io>
  detail::IoResult closing_on_throw(Io&& io) {
    try {
      return io();
    } catch (...) {
      close();
      throw;
    }
  }
  void flush_or_fail_command() {
    if (auto r = write_out(); r.status != detail::IoStatus::done) fail_command(r);
  }

  // Drops the failed transport, then throws its typed error, naming `what` failed on which server.
  [[noreturn]] void fail(std::string_view what, const detail::IoResult& r) {
    sentinel_.invalidate();  // a lost server may be a failed master
    close();
    const std::string op = fmt::format("{} on {}", what, endpoint());
    detail::throw_io_error(r, {op, options_.command_timeout, "ConnectionOptions::command_timeout"});
  }

  // The server sent what is not RESP, or a reply over max_reply_bytes: never reused.
  [[noreturn]] void fail_protocol(std::string_view what) {
    const std::string why = reader_->error();
    const bool out_of_memory = reader_->out_of_memory();
    close();
    if (out_of_memory) throw std::bad_alloc();
    throw ProtocolError(fmt::format("redis: {} on {}: protocol error: {}", what, endpoint(), why));
  }

  // A failed command or pipeline, named by the first command whose reply is awaited.
  [[noreturn]] void fail_command(const detail::IoResult& r) { fail(command_name(), r); }
  std::string command_name() const {
    if (pending_ <= 1) return first_pending_;
    return fmt::format("{} (in a pipeline, {} replies unread)", first_pending_, pending_);
  }

  // Kept for error messages; a command name is short, so this does not allocate.
  void name_first_pending(const detail::Argv& argv) {
    first_pending_.assign(argv[0].substr(0, 15));
  }

  std::string endpoint() const {
    if (!sentinel_) return options_.endpoint();
    return fmt::format("{}:{} ({})", options_.host, options_.port, options_.endpoint());
  }

  ConnectionOptions options_;
  std::unique_ptr<detail::Stream> stream_;
  std::unique_ptr<detail::ReplyReader> reader_;
  std::string out_;  // commands appended and not yet written; its capacity is kept
  detail::Backoff backoff_;
  std::size_t pending_ = 0;
  std::string last_error_;
  std::string first_pending_;  // the name of the first command sent since the last reply read
  char buffer_[16 * 1024];     // what one read takes off the stream, as hiredis' own
  detail::SentinelLink sentinel_;  // off unless through Sentinel
  bool demoted_ = false;          // a READONLY came back: close once the pipeline is read
  detail::AskingPrefix asking_;   // set_asking(): ASKING before each command
};

}  // namespace cachet
