#pragma once
// Several commands, some of them Lua scripts by EVALSHA, in one round trip: a
// pipeline (each command on its own) or a MULTI/EXEC (all or none). The one
// place a batch answers NOSCRIPT (a server restarted, or SCRIPT FLUSH):
//
// - pipelined, the script calls that answered NOSCRIPT did nothing and are run
//   again with EVAL (one more round trip for all of them);
// - in a transaction, scripts go by EVAL with their source: a server that knows
//   some of them but not others (a restarted or promoted one) would otherwise
//   run part of the transaction and refuse the rest, which no re-run can undo.
//   Transactions are the rare path (a write with an invalidation); the cost is
//   the source's bytes.
//
// The scripts' SHAs are learned before anything is queued, so no SCRIPT LOAD's
// reply can be read as a queued command's.
//
// then() adds a command sent after the batch in the same round trip, and again
// after any re-run, so that it always follows every call that ran (WAIT).

#include <cachet/redis/connection.hpp>
#include <cachet/redis/pipeline.hpp>
#include <cachet/redis/script.hpp>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

class ScriptBatch {
 public:
  explicit ScriptBatch(Connection& conn) noexcept : conn_(&conn) {}
  ScriptBatch(const ScriptBatch&) = delete;
  ScriptBatch& operator=(const ScriptBatch&) = delete;

  // A plain command. Views its arguments, which must outlive the run.
  ScriptBatch& add(std::vector<std::string_view> argv) {
    calls_.push_back({nullptr, std::move(argv)});
    return *this;
  }

  // A script call, as argv for EVALSHA: {"EVALSHA", any, numkeys, KEYS..., ARGV...};
  // the batch puts the SHA (or, run again, EVAL and the source) in the first two.
  ScriptBatch& add(const Script& script, std::vector<std::string_view> evalsha_argv) {
    calls_.push_back({&script, std::move(evalsha_argv)});
    return *this;
  }

  // The command sent last (after EXEC in a transaction), and again after a
  // re-run; its reply is then_reply(). Views its arguments, as add() does.
  ScriptBatch& then(std::vector<std::string_view> argv) {
    then_ = std::move(argv);
    return *this;
  }
  // The reply to then()'s command, once the batch has run; std::logic_error
  // when there is none (no then(), or the batch has not run).
  ReplyView then_reply() const {
    if (!then_reply_) throw std::logic_error("cachet::ScriptBatch: then_reply() without a then() command that ran");
    return *then_reply_;
  }

  std::size_t size() const noexcept { return calls_.size(); }

  // One pipeline; the replies in order, errors in place (not thrown).
  std::vector<Reply> pipelined() {
    std::vector<Reply> replies = send(false);
    std::vector<std::size_t> again;
    for (std::size_t i = 0; i < replies.size(); ++i)
      if (calls_[i].script && noscript(replies[i])) again.push_back(i);
    if (again.empty()) return replies;
    Pipeline p(*conn_);
    for (std::size_t i : again) p.add(eval_argv(calls_[i]));
    if (!then_.empty()) p.add(then_);
    std::size_t at = 0;
    p.execute([&](Reply&& r) {
      if (at < again.size()) replies[again[at++]] = std::move(r);
      else then_reply_ = std::move(r);
    });
    return replies;
  }

  // One MULTI/EXEC; EXEC's reply (an array of the replies, errors in place).
  // Throws ReplyError when the transaction was refused: with the queued
  // command's error that made EXEC abort (a cluster's MOVED, ASK or TRYAGAIN,
  // which Pool::run() follows), else EXEC's own (EXECABORT, MOVED).
  Reply atomically() {
    std::vector<Reply> replies = send(true);
    replies.back().throw_if_error();
    return std::move(replies.back());
  }

 private:
  struct Call {
    const Script* script;  // nullptr: a plain command
    std::vector<std::string_view> argv;
  };

  static bool noscript(ReplyView r) { return r.is_error() && r.error_message().starts_with("NOSCRIPT"); }

  std::vector<Reply> send(bool transaction) {
    for (Call& c : calls_)
      if (c.script) {
        if (transaction) c.argv[0] = "EVAL", c.argv[1] = c.script->source();
        else c.argv[0] = "EVALSHA", c.argv[1] = c.script->sha(*conn_);  // before anything is queued
      }
    Pipeline p(*conn_);
    if (transaction) p.add({"MULTI"});
    for (const Call& c : calls_) p.add(c.argv);
    if (transaction) p.add({"EXEC"});
    if (!then_.empty()) p.add(then_);
    std::vector<Reply> replies = p.execute();
    if (!then_.empty()) {
      then_reply_ = std::move(replies.back());
      replies.pop_back();
    }
    if (transaction) {
      if (replies.back().is_error())
        for (std::size_t i = 1; i + 1 < replies.size(); ++i) replies[i].throw_if_error();  // the abort's cause
      replies.erase(replies.begin(), replies.end() - 1);  // +OK and +QUEUED
    }
    return replies;
  }

  static std::vector<std::string_view> eval_argv(const Call& c) {
    std::vector<std::string_view> argv = c.argv;
    argv[0] = "EVAL";
    argv[1] = c.script->source();
    return argv;
  }

  Connection* conn_;
  std::vector<Call> calls_;
  std::vector<std::string_view> then_;
  std::optional<Reply> then_reply_;
};

}  // namespace cachet
