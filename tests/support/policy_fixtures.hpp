#pragma once
// What the write-policy tests and their worker processes share: the write-behind
// cache over the SQLite test database, its options, the refresh-ahead cache and
// its counting loader, and how to start a worker.

#include <cachet/codec/string.hpp>
#include <cachet/testing/detail/spawner.hpp>
#include <cachet/policy/refresh_ahead.hpp>
#include <cachet/policy/write_behind.hpp>

#include <support/client.hpp>
#include <support/guard_fixtures.hpp>
#include <support/sqlite_db.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace cachet::test {

// The batch writer: one transaction per batch into the SQLite file, on its own connection.
struct DbWriter {
  explicit DbWriter(const std::string& path, int busy_ms = 10'000) : db(std::make_shared<TestDb>(path, busy_ms)) {}
  void operator()(std::span<const PendingWrite<std::string>> batch) const { db->apply(batch); }
  std::shared_ptr<TestDb> db;
};

// Write-behind attached to a string cache (StringCache<NoGuard>).
using WriteBehindCache = WriteBehind<StringCache<NoGuard>, DbWriter>;

// The library's default keys (HashTag::none): on one server t:item:<id> and one
// stream, each write one script; on a cluster the values spread over slots
// (HashTag::entity) and the queue over 16 partitioned streams.
inline CacheOptions write_behind_options(std::string label = {}) { return guard_options(std::move(label)); }

// Keys {t}:item:<id>: the values and the queue's one stream share the namespace's
// slot, so on a cluster a write is one script, with tag sets, as on one server.
inline CacheOptions one_stream_options(std::string label = {}) {
  CacheOptions o = guard_options(std::move(label));
  o.keys.hash_tag = HashTag::ns;
  return o;
}

// A flusher that batches 20 ms of writes and reclaims entries idle for 500 ms.
inline WriteBehindOptions flusher_options() {
  WriteBehindOptions o;
  o.max_batch = 500;
  o.max_delay = std::chrono::milliseconds(20);
  o.poll = std::chrono::milliseconds(20);
  o.reclaim_idle = std::chrono::milliseconds(500);
  o.retry = {std::chrono::milliseconds(10), std::chrono::milliseconds(200), 2.0, 0.2};
  o.rejected = [](const std::exception& e) {  // a constraint refused the row; SQLITE_BUSY is an outage
    const auto* s = dynamic_cast<const sqlite::Error*>(&e);
    return s && s->code() == SQLITE_CONSTRAINT;
  };
  return o;
}

inline WriteBehindOptions queue_only() {
  WriteBehindOptions o = flusher_options();
  o.flusher = false;
  return o;
}

// Refresh-ahead: read every 10 ms for 10 s, fresh for 1 s and gone from Redis then.
inline constexpr std::chrono::seconds refresh_ahead_run{10};

inline CacheOptions refresh_ahead_options() {
  CacheOptions o = guard_options();
  o.name = "ahead";
  o.ttl = TtlPolicy({.fresh = std::chrono::seconds(1), .stale = std::chrono::milliseconds(0), .jitter = 0});
  return o;
}

// Counts its loads in Redis (INCR loads, RPUSH load_times <redis ms>) and returns "v<n>".
// Copyable, as the background refresh's copy of a loader must be.
class CountingLoader {
 public:
  explicit CountingLoader(const ConnectionOptions& redis) : state_(std::make_shared<State>(redis)) {}
  std::string operator()(std::string_view) const {
    std::lock_guard lock(state_->mutex);
    const long long n = state_->conn.command({"INCR", "loads"}).as_integer();
    state_->conn.command({"RPUSH", "load_times", redis_ms(state_->conn)});
    return "v" + std::to_string(n);
  }

 private:
  struct State {
    explicit State(const ConnectionOptions& redis) : conn(redis) {}
    std::mutex mutex;
    Client conn;
  };
  std::shared_ptr<State> state_;
};

using RefreshAheadCache = RefreshAhead<std::string, CountingLoader, StringCodec>;

#ifdef CACHET_POLICY_WORKER
// Starts `policy_worker <args...>`; its output goes to `log`. Returns its pid.
inline pid_t start_policy_worker(std::vector<std::string> args, const std::string& log) {
  args.insert(args.begin(), CACHET_POLICY_WORKER);
  return detail::Spawner::spawn(args, log);
}
#endif

}  // namespace cachet::test
