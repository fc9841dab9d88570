#pragma once
// The WAIT a replicated write pipelines after itself (ScriptBatch::then), the
// check of its answer, and run_then_wait: one write and its WAIT in one round trip.

#include <cachet/redis/connection.hpp>
#include <cachet/redis/reply.hpp>
#include <cachet/redis/script_batch.hpp>
#include <cachet/store/replication.hpp>

#include <concepts>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace cachet::detail {

class WaitCall {
 public:
  explicit WaitCall(const Replication& r)
      : r_(r), replicas_(std::to_string(r.replicas)), timeout_(std::to_string(r.timeout.count())) {}
  WaitCall(const WaitCall&) = delete;  // argv() views its own strings
  WaitCall& operator=(const WaitCall&) = delete;

  std::vector<std::string_view> argv() const { return {"WAIT", replicas_, timeout_}; }

  // Throws ReplicationError when fewer replicas than asked confirmed the write,
  // WAIT's own error reply included: the write before it stands either way.
  void check(ReplyView reply) const {
    if (reply.is_error()) throw ReplicationError(r_.replicas, std::string(reply.error_message()));
    require_replicas(r_, reply.as_integer());
  }

 private:
  Replication r_;
  std::string replicas_, timeout_;
};

// The one call `add` puts in the batch (a script's or a command's), then WAIT
// when `r` is on, in one round trip; the call's reply, its error thrown. A nil
// reply wrote nothing and is not waited for. A ReplicationError is thrown, or
// kept in `unconfirmed` for the caller to throw (the write stands either way).
template <class Add>
  requires std::invocable<Add&, ScriptBatch&>
Reply run_then_wait(Connection& c, const Replication& r, Add&& add, std::exception_ptr* unconfirmed = nullptr) {
  const WaitCall wait(r);
  ScriptBatch batch(c);
  add(batch);
  if (r.on()) batch.then(wait.argv());
  Reply reply = std::move(batch.pipelined()[0]);
  reply.throw_if_error();
  if (r.on() && !reply.is_nil()) {
    try {
      wait.check(batch.then_reply());
    } catch (const ReplicationError&) {
      if (!unconfirmed) throw;
      *unconfirmed = std::current_exception();
    }
  }
  return reply;
}

// WAIT in a round trip of its own, after a write `c` made: for a write that
// WAIT follows only when it wrote (a WAIT pipelined after a no-op would still wait out its timeout).
inline void wait_for_replicas(Connection& c, const Replication& r) {
  const WaitCall wait(r);
  ScriptBatch batch(c);
  batch.add(wait.argv());
  wait.check(batch.pipelined()[0]);
}

}  // namespace cachet::detail
