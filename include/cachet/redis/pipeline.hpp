#pragma once
// N commands in one round trip: queue them, then execute() sends them all and
// reads all N replies. Error replies are returned in place, not thrown.

#include <cachet/redis/connection.hpp>

#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <vector>

namespace cachet {

class Pipeline {
 public:
  explicit Pipeline(Connection& conn) noexcept : conn_(&conn) {}
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Queued commands that were never executed must not be read as someone else's
  // replies, so the connection is dropped (it reconnects on next use).
  ~Pipeline() {
    if (queued_ != 0) conn_->close();
  }

  Pipeline& add(std::initializer_list<Arg> args) {
    conn_->append(args);
    ++queued_;
    return *this;
  }
  template <ArgRange R>
  Pipeline& add(const R& args) {
    conn_->append(args);
    ++queued_;
    return *this;
  }

  std::size_t size() const noexcept { return queued_; }

  // Sends every queued command and returns their replies in order.
  std::vector<Reply> execute() {
    std::vector<Reply> replies;
    replies.reserve(queued_);
    execute([&](Reply&& r) { replies.push_back(std::move(r)); });
    return replies;
  }

  // Sends every queued command and hands each reply to `on_reply(Reply&&)` as it
  // is read, so a large batch is processed without holding all replies at once.
  template <class F>
    requires std::invocable<F&, Reply&&>
  void execute(F&& on_reply) {
    try {
      for (; queued_ != 0; --queued_) on_reply(conn_->read_reply());
    } catch (...) {
      // A reply not read yet must never be read as the answer to a later command.
      queued_ = 0;
      conn_->close();
      throw;
    }
  }

 private:
  Connection* conn_;
  std::size_t queued_ = 0;
};

}  // namespace cachet
