#pragma once
// A lock in Redis on one key, held under a unique token for a lease:
//
// - acquire: SET {lock} {token} NX PX {lease}: at most one holder at a time, in
//   any process; a holder that dies is replaced once its lease runs out;
// - release and extend are compare-and-delete / compare-and-PEXPIRE in Lua, so a
//   holder whose lease ran out can never delete or prolong its successor's lock;
// - fencing: the final cache write carries the lock's check (check(): a
//   LockCheck on a RedisStore::write), so the write is made, in the same script,
//   only while this token holds the lock, and a load that outlived its lease
//   cannot overwrite what its successor wrote. write_if_held and
//   write_and_release are that write.
//
// Replicated (RedisLockOptions::replication): acquired only once enough replicas
// have the lock; else released and ReplicationError thrown (docs/durability.md),
// as it is released, its error thrown, when the round trip fails after the SET.
//
// Keep the lock key in the value key's Redis Cluster slot (KeyBuilder::lock with
// HashTag::entity) so the fenced write is one script on one shard.

#include <cachet/detail/random_hex.hpp>
#include <cachet/redis/script.hpp>
#include <cachet/redis/script_batch.hpp>
#include <cachet/store/detail/wait_call.hpp>
#include <cachet/store/redis_store.hpp>
#include <cachet/store/replication.hpp>
#include <cachet/store/write.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>

namespace cachet {

struct RedisLockOptions {
  std::chrono::milliseconds lease{5000};  // how long a holder that stops renewing keeps the lock
  std::string notify_channel{};           // if set, each release PUBLISHes the lock key here
  // Acquired only once this many replicas have the lock (WAIT in the SET's round
  // trip), so that a failover to one of them keeps it; 0: no wait.
  Replication replication{};
};

class RedisLock {
 public:
  // The store must outlive the lock.
  RedisLock(RedisStore& store, std::string lock_key, RedisLockOptions options = {})
      : store_(&store), key_(std::move(lock_key)), options_(std::move(options)), token_(new_token()) {}
  RedisLock(const RedisLock&) = delete;
  RedisLock& operator=(const RedisLock&) = delete;

  // Releases the lock if it is still held; errors are swallowed (the lease bounds it).
  ~RedisLock() {
    if (!held_) return;
    try {
      release();
    } catch (...) {
    }
  }

  // Takes the lock if nobody holds it. Throws the Redis layer's errors.
  // A fresh token per acquisition, so a holder that lost the lock and took it
  // again is still fenced off from writes made under its old lease.
  // With `replication` on, a lock taken on the master but confirmed by too few
  // replicas is released (a failover could hand it to a second holder) and
  // ReplicationError thrown: not held, and not lost to another holder either.
  bool try_acquire() {
    token_ = new_token();
    if (!options_.replication.on()) {
      held_ = on_key([&](Connection& c) {
        return !c.command({"SET", key_, token_, "NX", "PX", options_.lease.count()}).is_nil();
      });
      return held_;
    }
    check_replication(options_.replication, store_->pool().connection_options());
    return on_key([&](Connection& c) { return acquire_replicated(c); });
  }

  // Gives the lock up; false if it was no longer ours (the lease ran out).
  bool release() {
    held_ = false;
    return on_key([&](Connection& c) { return release_on(c); });
  }

  // Renews the lease; false (and no longer held) if the lock was lost meanwhile.
  bool extend() {
    held_ = on_key([&](Connection& c) {
      return scripts().extend.run(c, {key_}, {token_, options_.lease.count()}).as_integer() == 1;
    });
    return held_;
  }

  // What a write attaches (StoreWrite::lock_check) to be made only while this
  // token holds the lock; with `release`, the write also releases it (and
  // PUBLISHes the release): then call released_by_write() once it was sent.
  // Views this lock's key, token and channel: valid until the next try_acquire.
  LockCheck check(bool release) const noexcept { return {key_, token_, release, options_.notify_channel}; }

  // A write carrying check(true) was sent: it released the lock, or found it
  // lost (or, if it failed, the lease bounds it); nothing is left to release.
  void released_by_write() noexcept { held_ = false; }

  // SET key value PX ttl, only while this token holds the lock; false if it did not.
  bool write_if_held(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
    const LockCheck held = check(false);
    return store_->write({.key = key, .bytes = value, .ttl = ttl, .lock_check = &held}) == WriteResult::written;
  }

  // write_if_held and release in one round trip: the waiters woken by the
  // release find the value already there.
  bool write_and_release(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
    const LockCheck held = check(true);
    released_by_write();
    return store_->write({.key = key, .bytes = value, .ttl = ttl, .lock_check = &held}) == WriteResult::written;
  }

  bool held() const noexcept { return held_; }  // as far as this object knows
  const std::string& key() const noexcept { return key_; }
  const std::string& token() const noexcept { return token_; }

 private:
  struct Scripts {
    // A lock lost to expiry publishes nothing: its successor's release will.
    Script release{
        "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end redis.call('DEL', KEYS[1]) "
        "if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], KEYS[1]) end return 1"};
    Script extend{
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"};
  };
  static Scripts& scripts() {
    static Scripts s;  // shared: each script's SHA is learned once per process
    return s;
  }

  // A command (or script) on the lock's key, through the pool; none is sent twice.
  template <class F>
  bool on_key(F&& f) {
    return store_->pool().run(key_, std::forward<F>(f));
  }

  // SET NX then WAIT: a lock confirmed by too few replicas is released (see
  // try_acquire), and so is one whose round trip failed in any other way once
  // the SET may have applied (a lost connection, a WAIT reply of another type).
  bool acquire_replicated(Connection& conn) {
    const std::string lease_ms = std::to_string(options_.lease.count());
    try {
      held_ = !detail::run_then_wait(conn, options_.replication, [&](ScriptBatch& b) {
                 b.add({"SET", key_, token_, "NX", "PX", lease_ms});
               }).is_nil();
      return held_;
    } catch (const ReplyError&) {  // the SET's own (a redirect included): nothing was written
      held_ = false;
      throw;
    } catch (const Error&) {
      held_ = false;
      try {
        release_on(conn);  // reconnects if the failure dropped the connection
      } catch (const Error&) {  // the lease bounds it
      }
      throw;
    }
  }

  bool release_on(Connection& conn) {
    return scripts().release.run(conn, {key_}, {token_, options_.notify_channel}).as_integer() == 1;
  }

  // 128 random bits from OpenSSL's CSPRNG, in hex: unguessable, so unique across processes.
  static std::string new_token() { return detail::random_bytes_hex(16); }

  RedisStore* store_;
  std::string key_;
  RedisLockOptions options_;
  std::string token_;
  std::atomic<bool> held_{false};  // the renewer's extend() may clear it from its thread
};

}  // namespace cachet
