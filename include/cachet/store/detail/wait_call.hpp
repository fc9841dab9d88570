#pragma once
// The WAIT a replicated write pipelines after itself (ScriptBatch::then), and
// the check of its answer.

#include <cachet/redis/reply.hpp>
#include <cachet/store/replication.hpp>

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

}  // namespace cachet::detail
