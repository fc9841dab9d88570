#pragma once
// The address of a Sentinel-managed master (or replica), shared process-wide by
// every connection with the same master name and sentinel list. It asks the
// sentinels in order, skipping (and asking last, later) ones that do not answer,
// and at most once per `rediscover_interval`. The generation counts moves of the
// master: a connection opened at an older one is stale (Connection::moved()).
//
// Sentinel queries go over a stream of their own (a Connection itself resolves
// through this class). Thread-safe.

#include <cachet/redis/detail/argv.hpp>
#include <cachet/redis/detail/format.hpp>
#include <cachet/redis/detail/hiredis.hpp>
#include <cachet/redis/detail/io_error.hpp>
#include <cachet/redis/detail/open_stream.hpp>
#include <cachet/redis/detail/reply_reader.hpp>
#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/sentinel_options.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cachet::detail {

// One sentinel, asked one question at a time on a fresh connection.
class SentinelClient {
 public:
  SentinelClient(const SentinelAddress& s, std::chrono::milliseconds timeout) : timeout_(timeout) {
    ConnectionOptions o;
    o.host = s.host;
    o.port = s.port;
    name_ = o.endpoint();
    stream_ = open_stream(o, deadline_after(timeout));
    reader_ = std::make_unique<ReplyReader>(o.max_reply_bytes);
  }

  ReplyPtr query(std::initializer_list<Arg> args) {
    std::string out;
    format_command(out, Argv(args));
    const Deadline deadline = deadline_after(timeout_);
    const std::string what = "a question to sentinel " + name_;  // FailedOp keeps a view of it
    const FailedOp op{what, timeout_, "ConnectionOptions::connect_timeout"};
    if (IoResult r = stream_->write_all(out.data(), out.size(), deadline); r.status != IoStatus::done) throw_io_error(r, op);
    for (ReplyPtr reply;;) {
      if (!reader_->next(reply)) throw ProtocolError("sentinel " + name_ + ": " + reader_->error());
      if (reply) return reply;
      char buffer[4096];
      const IoResult r = stream_->read_some(buffer, sizeof buffer, deadline);
      if (r.status != IoStatus::done) throw_io_error(r, op);
      if (!reader_->feed(buffer, r.bytes)) throw ProtocolError("sentinel " + name_ + ": " + reader_->error());
    }
  }
  const std::string& name() const noexcept { return name_; }

 private:
  std::chrono::milliseconds timeout_;
  std::string name_;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<ReplyReader> reader_;
};

struct SentinelTarget {
  std::string host;
  int port = 0;
  std::uint64_t generation = 0;  // of the master, when the address was given
};

class SentinelResolver {
 public:
  using clock = std::chrono::steady_clock;

  // The resolver for this master name and sentinel list (one per process).
  static std::shared_ptr<SentinelResolver> get(const SentinelOptions& options) {
    static std::mutex mutex;
    static std::map<std::string, std::weak_ptr<SentinelResolver>> all;
    std::string key = options.master_name;
    for (const auto& s : options.sentinels) key += fmt::format("|{}:{}", s.host, s.port);
    std::lock_guard lock(mutex);
    std::shared_ptr<SentinelResolver> found = all[key].lock();
    if (!found) all[key] = found = std::make_shared<SentinelResolver>(options);
    return found;
  }

  explicit SentinelResolver(SentinelOptions options) : options_(std::move(options)) {
    if (options_.sentinels.empty())
      throw ConfigError("cachet: SentinelOptions::sentinels is empty for master '" + options_.master_name + "'");
    failed_at_.resize(options_.sentinels.size());
  }

  // Where to connect for `role`; throws ConnectionError when no sentinel knows.
  SentinelTarget resolve(SentinelRole role, std::chrono::milliseconds timeout) {
    std::lock_guard lock(mutex_);
    const bool may_ask = clock::now() - asked_at_ >= options_.rediscover_interval;
    if (role == SentinelRole::master) {
      if (master_ && (!stale_ || !may_ask)) return {master_->first, master_->second, generation_};
      if (!may_ask) throw ConnectionError(fmt::format("sentinel: no address known yet for master '{}' (last error: {})",
                                                      options_.master_name, last_error_));
      discover_master(timeout);
      return {master_->first, master_->second, generation_};
    }
    if (replicas_.empty() || may_ask) discover_replicas(timeout);
    const auto& r = replicas_[next_replica_++ % replicas_.size()];
    return {r.first, r.second, generation_};
  }

  // A connection opened at `generation` failed, found a non-master, or got
  // READONLY: the next resolve() asks the sentinels (rate-limited).
  void invalidate(std::uint64_t generation) noexcept {
    std::lock_guard lock(mutex_);
    if (generation == generation_) stale_ = true;
  }

  // A sentinel announced the master at a new address (+switch-master).
  void switched(std::string host, int port) {
    {
      std::lock_guard lock(mutex_);
      if (master_ && master_->first == host && master_->second == port) return;
      master_ = {std::move(host), port};
      stale_ = false;
      replicas_.clear();
      ++generation_;
    }
    notify();
  }

  // Read on every pooled acquire and release: no lock.
  std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }
  const SentinelOptions& options() const noexcept { return options_; }

  // `f` runs (on whichever thread saw it) each time the master moves, until the
  // returned id is given to unlisten(), which waits out a call in progress.
  std::uint64_t listen(std::function<void()> f) {
    std::lock_guard lock(listeners_mutex_);
    listeners_.emplace_back(++next_listener_, std::move(f));
    return next_listener_;
  }
  void unlisten(std::uint64_t id) {
    std::lock_guard lock(listeners_mutex_);
    std::erase_if(listeners_, [&](const auto& l) { return l.first == id; });
  }

  // Keeps something (the +switch-master watch) alive while any resolver user holds it.
  std::shared_ptr<void> attach_once(const std::function<std::shared_ptr<void>()>& make) {
    std::lock_guard lock(listeners_mutex_);
    std::shared_ptr<void> w = watch_.lock();
    if (!w) watch_ = w = make();
    return w;
  }

 private:
  using Address = std::pair<std::string, int>;

  void notify() {
    std::lock_guard lock(listeners_mutex_);
    for (auto& l : listeners_) l.second();
  }

  // With mutex_ held: asks the sentinels for the master's address.
  void discover_master(std::chrono::milliseconds timeout) {
    std::optional<Address> found;
    ask_sentinels(timeout, [&](SentinelClient& c) {
      ReplyPtr r = c.query({"SENTINEL", "GET-MASTER-ADDR-BY-NAME", options_.master_name});
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        found = Address{r->element[0]->str, std::atoi(r->element[1]->str)};
        return true;
      }
      last_error_ = fmt::format("sentinel does not know master '{}'", options_.master_name);
      return false;
    });
    if (!found) throw ConnectionError(fmt::format("sentinel: no sentinel gave the address of master '{}' (last error: {})",
                                                  options_.master_name, last_error_));
    stale_ = false;
    if (master_ != found) {
      if (master_) ++generation_;
      master_ = std::move(found);
      replicas_.clear();
    }
  }

  // With mutex_ held: asks for the replicas that are up and linked to the master.
  void discover_replicas(std::chrono::milliseconds timeout) {
    std::vector<Address> found;
    ask_sentinels(timeout, [&](SentinelClient& c) {
      ReplyPtr r = c.query({"SENTINEL", "REPLICAS", options_.master_name});
      if (r->type != REDIS_REPLY_ARRAY) return false;
      for (std::size_t i = 0; i < r->elements; ++i)
        if (auto a = healthy_replica(*r->element[i])) found.push_back(std::move(*a));
      return true;
    });
    if (found.empty()) throw ConnectionError(fmt::format("sentinel: no replica of master '{}' is up (last error: {})",
                                                         options_.master_name, last_error_));
    replicas_ = std::move(found);
  }

  // One entry of SENTINEL REPLICAS (a flat field/value array), unless the sentinels see it down.
  static std::optional<Address> healthy_replica(const redisReply& entry) {
    // Not master-link-status: a sentinel refreshes it every 10 s, so a new replica reads "err" for that long.
    std::string ip, port, flags;
    for (std::size_t i = 0; i + 1 < entry.elements; i += 2) {
      const std::string field = entry.element[i]->str, value = entry.element[i + 1]->str;
      if (field == "ip") ip = value;
      else if (field == "port") port = value;
      else if (field == "flags") flags = value;
    }
    if (ip.empty() || port.empty() || flags.find("down") != std::string::npos ||
        flags.find("disconnected") != std::string::npos)
      return std::nullopt;
    return Address{ip, std::atoi(port.c_str())};
  }

  // With mutex_ held: runs `ask` on each sentinel until one returns true; sentinels
  // that failed lately are asked after the others.
  template <class F>
  void ask_sentinels(std::chrono::milliseconds timeout, F&& ask) {
    asked_at_ = clock::now();
    std::vector<std::size_t> order(options_.sentinels.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return failed_at_[a] < failed_at_[b]; });
    for (std::size_t i : order) {
      const SentinelAddress& s = options_.sentinels[i];
      try {
        SentinelClient c = open(s, timeout);
        if (ask(c)) {
          failed_at_[i] = {};
          return;
        }
      } catch (const Error& e) {
        last_error_ = e.what();
      }
      failed_at_[i] = clock::now();
    }
  }

  SentinelClient open(const SentinelAddress& s, std::chrono::milliseconds timeout) const {
    SentinelClient c(s, timeout);
    if (!options_.password.empty()) {
      ReplyPtr r = options_.user.empty() ? c.query({"AUTH", options_.password})
                                         : c.query({"AUTH", options_.user, options_.password});
      if (r->type == REDIS_REPLY_ERROR)  // the server's words, never the password
        throw ConnectionError(fmt::format("sentinel {} refused AUTH: {}", c.name(), r->str));
    }
    return c;
  }

  const SentinelOptions options_;
  mutable std::mutex mutex_;
  std::optional<Address> master_;
  bool stale_ = true;
  std::atomic<std::uint64_t> generation_{0};  // written with mutex_ held
  clock::time_point asked_at_{};
  std::vector<clock::time_point> failed_at_;  // per sentinel: when it last failed to answer ({}: never / answered)
  std::vector<Address> replicas_;
  std::size_t next_replica_ = 0;
  std::string last_error_ = "none";
  std::mutex listeners_mutex_;
  std::vector<std::pair<std::uint64_t, std::function<void()>>> listeners_;
  std::uint64_t next_listener_ = 0;
  std::weak_ptr<void> watch_;
};

}  // namespace cachet::detail
