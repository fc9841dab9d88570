#pragma once
// RedisWriteQueue::Reader: a flusher's side of the write-behind queue (the
// queue, the writers' side, is store/write_queue.hpp, which includes this
// header last): one consumer of the group reading one partition, and the
// settle of what the database took.

#include <cachet/detail/hash_slot.hpp>
#include <cachet/redis/connection.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/pipeline_by_node.hpp>
#include <cachet/store/detail/write_queue_scripts.hpp>
#include <cachet/store/write_queue.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet {

// One consumer of the queue's group reading one partition, on its own
// connection. The group is created (with the stream) on first use, and again
// after NOGROUP (Redis lost its data). The connection does not reconnect on its
// own: an error is thrown at once, and the next call reconnects; the caller
// paces the retries. On a cluster the connection goes to the partition's
// master, asked of the pool again after any error (a MOVED, a dropped
// connection, a failover), and a settle's cache entries are settled through
// the pool on their own nodes.
class RedisWriteQueue::Reader {
 public:
  Reader(const RedisWriteQueue& queue, std::string group, std::string consumer, std::chrono::milliseconds block_max,
         std::size_t partition = 0)
      : pool_(&queue.store_.pool()), options_(blocking(pool_->connection_options(), block_max)),
        part_(queue.partition(partition)), group_(std::move(group)), consumer_(std::move(consumer)) {
    if (!pool_->cluster()) conn_.emplace(options_);  // one server: connects at once
  }

  // This consumer's pending entries after `after` ("0": from the first), up to `count`.
  std::vector<StreamEntry> read_own(std::string_view after, std::size_t count) {
    const Reply r = on_group([&] {
      return conn().command({"XREADGROUP", "GROUP", group_, consumer_, "COUNT", count, "STREAMS", part_.stream, after});
    });
    return r.is_nil() || r.size() == 0 ? std::vector<StreamEntry>{} : parse(r[0][1]);
  }

  // Up to `count` entries no consumer was given yet, waiting up to `block` for one.
  std::vector<StreamEntry> read_new(std::size_t count, std::chrono::milliseconds block) {
    const Reply r = on_group([&] {
      return conn().command({"XREADGROUP", "GROUP", group_, consumer_, "COUNT", count, "BLOCK", block.count(),
                             "STREAMS", part_.stream, ">"});
    });
    return r.is_nil() || r.size() == 0 ? std::vector<StreamEntry>{} : parse(r[0][1]);
  }

  struct Claimed {
    std::string cursor;  // "0-0": the pass is complete
    std::vector<StreamEntry> entries;
  };

  // XAUTOCLAIM: up to `count` entries other consumers left pending for `idle`,
  // scanning from `cursor` ("0-0": the start).
  Claimed claim_idle(std::chrono::milliseconds idle, std::string_view cursor, std::size_t count) {
    const Reply r = on_group([&] {
      return conn().command({"XAUTOCLAIM", part_.stream, group_, consumer_, idle.count(), cursor, "COUNT", count});
    });
    return {std::string(r[0].as_string()), parse(r[1])};
  }

  // Claims back, their idle time set to 0, those of `entries` still pending for
  // this consumer (one another consumer took over stays with it). Returns how many.
  template <class Entries>
  std::size_t keep_own(const Entries& entries) {
    std::vector<std::string_view> args{group_, consumer_};
    args.insert(args.end(), entries.begin(), entries.end());
    const std::vector<std::string_view> keys{part_.stream};
    const Reply r = on_group([&] { return detail::keep_own_script().run(conn(), keys, args); });
    return static_cast<std::size_t>(r.as_integer());
  }

  // Claims up to `count` entries stranded behind the group's read position in
  // no pending list: no read would ever deliver them.
  std::vector<StreamEntry> claim_stranded(std::size_t count) {
    const Reply r = on_group(
        [&] { return detail::claim_stranded_script().run(conn(), {part_.stream}, {group_, consumer_, count}); });
    return parse(r);
  }

  // Acknowledges and deletes `entries` (every write of the batch, superseded
  // ones included); `heads` are the writes the batch wrote (Settle::written) or
  // dead-letters with `error` (Settle::dead). See write_queue_scripts.hpp: one
  // script when the heads' cache keys share the partition's slot, else each
  // head's cache entry on its node first (one pipeline per node), then the
  // stream: a failure before leaves the whole batch pending for a retry.
  void settle(Settle how, std::string_view error, std::span<const std::string> entries,
              std::span<const SettledWrite> heads) {
    std::vector<std::string_view> k{part_.stream, part_.pending, part_.dead};
    const std::string count = std::to_string(entries.size());
    const std::string_view mode = how == Settle::dead ? "dead" : "written";
    std::vector<std::string_view> a{group_, mode, error, count};
    a.insert(a.end(), entries.begin(), entries.end());
    for (const SettledWrite& h : heads) {
      a.push_back(h.id);
      a.push_back(h.entry);
    }
    if (!apart(heads)) {
      for (const SettledWrite& h : heads) k.push_back(h.cache_key);
      on_group([&] { return detail::settle_script().run(conn(), k, a); });
      return;
    }
    settle_entries(heads, mode);
    on_group([&] { return detail::settle_stream_script().run(conn(), k, a); });
  }

 private:
  static ConnectionOptions blocking(ConnectionOptions o, std::chrono::milliseconds block_max) {
    o.command_timeout = std::max(o.command_timeout, block_max + std::chrono::seconds(1));  // XREADGROUP ... BLOCK
    o.reconnect = {std::chrono::milliseconds(0), std::chrono::milliseconds(0), 1.0, 0.0};  // the caller paces retries
    return o;
  }

  Connection& conn() {
    if (!conn_) conn_.emplace(partition_master());
    return *conn_;
  }

  // The options to reach the partition's master now. A command through the pool
  // first: it follows a MOVED, and after a failover it refreshes the pool's map.
  ConnectionOptions partition_master() const {
    pool_->run(part_.stream, [&](Connection& c) { c.command({"EXISTS", part_.stream}); }, Idempotent::yes);
    std::optional<ConnectionOptions> o = pool_->at_cluster_master(part_.stream, options_);
    if (!o) throw ConnectionError("cachet: no master serves " + part_.stream);
    return *std::move(o);
  }

  // Whether a settle of `heads` takes two steps: their cache keys are on other nodes.
  bool apart(std::span<const SettledWrite> heads) const {
    if (!pool_->cluster()) return false;
    const auto slot = detail::hash_slot(part_.stream);
    return std::any_of(heads.begin(), heads.end(),
                       [&](const SettledWrite& h) { return detail::hash_slot(h.cache_key) != slot; });
  }

  // The heads' cache entries, settled on their nodes (one pipeline per node);
  // throws the first error. Safe to run again: it acts on the entry only while
  // that holds the settled write.
  void settle_entries(std::span<const SettledWrite> heads, std::string_view mode) {
    std::vector<std::string_view> keys;
    std::vector<std::string> applied;
    applied.reserve(heads.size());
    for (const SettledWrite& h : heads) {
      keys.push_back(h.cache_key);
      applied.push_back(detail::applied_entry_key(h.write_version));
    }
    const Script& script = detail::settle_entry_script();
    const auto send = [&](Connection& c, std::span<const std::size_t> at, bool eval) {
      const std::string_view body = eval ? std::string_view(script.source()) : std::string_view(script.sha(c));
      for (std::size_t i : at)
        c.append({eval ? "EVAL" : "EVALSHA", body, "2", heads[i].cache_key, applied[i], heads[i].bytes, mode,
                  std::string_view(heads[i].entry)});
    };
    for (const Reply& r : pipeline_by_node(*pool_, keys, 1, send, Idempotent::yes)) r.throw_if_error();
  }

  // Runs `send` in the group, created first if need be; NOGROUP has it created
  // again next time. On a cluster any other error drops the connection, so the
  // next call asks where the partition lives now.
  template <class F>
  Reply on_group(F send) {
    try {
      if (!joined_) join();
      return send();
    } catch (const ReplyError& e) {
      if (e.is("NOGROUP")) joined_ = false;
      else drop_on_cluster();
      throw;
    } catch (const Error&) {
      drop_on_cluster();
      throw;
    }
  }

  void drop_on_cluster() {
    if (!pool_->cluster()) return;
    conn_.reset();
    joined_ = false;  // the new master may not have the group (a failover to a replica that lagged)
  }

  void join() {
    try {
      conn().command({"XGROUP", "CREATE", part_.stream, group_, "0", "MKSTREAM"});
    } catch (const ReplyError& e) {
      if (!e.is("BUSYGROUP")) throw;
    }
    joined_ = true;
  }

  // [[id, [field, value, ...]], ...]: stream entries with the fields k (id), c (cache key), v (bytes).
  static std::vector<StreamEntry> parse(ReplyView list) {
    std::vector<StreamEntry> out;
    for (ReplyView e : list) {
      StreamEntry entry;
      entry.entry = StreamId::parse(e[0].as_string());
      const ReplyView fields = e[1];
      entry.deleted = fields.is_nil();
      for (std::size_t i = 0; !entry.deleted && i + 1 < fields.size(); i += 2) {
        const std::string_view name = fields[i].as_string();
        std::string* to =
            name == "k" ? &entry.id : name == "c" ? &entry.cache_key : name == "v" ? &entry.bytes : nullptr;
        if (to) *to = std::string(fields[i + 1].as_string());
      }
      out.push_back(std::move(entry));
    }
    return out;
  }

  Pool* pool_;
  ConnectionOptions options_;
  std::optional<Connection> conn_;  // opened on first use on a cluster, and after an error there
  Partition part_;
  std::string group_, consumer_;
  bool joined_ = false;
};

inline RedisWriteQueue::Reader RedisWriteQueue::reader(std::string group, std::string consumer,
                                                       std::chrono::milliseconds block_max,
                                                       std::size_t partition) const {
  return Reader(*this, std::move(group), std::move(consumer), block_max, partition);
}

}  // namespace cachet
