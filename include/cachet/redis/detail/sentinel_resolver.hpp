#pragma once
// The address of a Sentinel-managed master (or replica), shared process-wide by
// every connection with the same SentinelOptions. One thread at a time asks the
// sentinels (a round), without holding the lock, while the others use the last
// known address; rounds are at most one per `rediscover_interval`, counted from
// the end of the last. Sentinels that did not answer, or named a server that
// failed the role check, are asked last. When no sentinel answers, the last
// known master is kept (the connection's role check still guards it). The
// generation counts moves of the master: a connection opened at an older one is
// stale (Connection::moved()).
//
// Sentinel queries go over a stream of their own (a Connection itself resolves
// through this class). Thread-safe.

#include <cachet/redis/detail/argv.hpp>
#include <cachet/redis/detail/endpoint.hpp>
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
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cachet::detail {

// How to reach one sentinel: its address, the sentinels' AUTH and TLS.
inline ConnectionOptions sentinel_connection_options(const SentinelOptions& s, const SentinelAddress& address) {
  ConnectionOptions o;
  o.host = address.host;
  o.port = address.port;
  o.user = s.user;
  o.password = s.password;
  o.tls = s.tls;
  return o;
}

// A reply element that is a string (bulk or status); anything else is malformed here.
inline std::optional<std::string_view> string_of(const redisReply* e) noexcept {
  if (e == nullptr || (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS)) return std::nullopt;
  return std::string_view(e->str, e->len);
}

// One sentinel, asked a few questions on a fresh connection; `timeout` bounds
// the connect and every question together.
class SentinelClient {
 public:
  SentinelClient(const SentinelOptions& s, const SentinelAddress& address, std::chrono::milliseconds timeout)
      : timeout_(timeout), deadline_(deadline_after(timeout)) {
    const ConnectionOptions o = sentinel_connection_options(s, address);
    name_ = o.endpoint();
    stream_ = open_stream(o, deadline_);
    reader_ = std::make_unique<ReplyReader>(o.max_reply_bytes);
    if (o.password.empty()) return;
    ReplyPtr r = o.user.empty() ? query({"AUTH", o.password}) : query({"AUTH", o.user, o.password});
    if (r->type == REDIS_REPLY_ERROR)  // the server's words, never the password
      throw ConnectionError(fmt::format("sentinel {} refused AUTH: {}", name_, std::string_view(r->str, r->len)));
  }

  ReplyPtr query(std::initializer_list<Arg> args) {
    std::string out;
    format_command(out, Argv(args));
    const std::string what = "a question to sentinel " + name_;  // FailedOp keeps a view of it
    const FailedOp op{what, timeout_, "ConnectionOptions::connect_timeout"};
    if (IoResult r = stream_->write_all(out.data(), out.size(), deadline_); r.status != IoStatus::done) throw_io_error(r, op);
    for (ReplyPtr reply;;) {
      if (!reader_->next(reply)) throw ProtocolError("sentinel " + name_ + ": " + reader_->error());
      if (reply) return reply;
      char buffer[4096];
      const IoResult r = stream_->read_some(buffer, sizeof buffer, deadline_);
      if (r.status != IoStatus::done) throw_io_error(r, op);
      if (!reader_->feed(buffer, r.bytes)) throw ProtocolError("sentinel " + name_ + ": " + reader_->error());
    }
  }
  const std::string& name() const noexcept { return name_; }

 private:
  std::chrono::milliseconds timeout_;
  Deadline deadline_;
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

  // The resolver for these options (one per process and distinct options).
  static std::shared_ptr<SentinelResolver> get(const SentinelOptions& options) {
    static std::mutex mutex;
    static std::map<std::string, std::weak_ptr<SentinelResolver>> all;
    const std::string key = key_of(options);  // holds the password: kept in memory, never printed
    std::lock_guard lock(mutex);
    std::erase_if(all, [](const auto& entry) { return entry.second.expired(); });
    std::shared_ptr<SentinelResolver> found = all[key].lock();
    if (!found) all[key] = found = std::make_shared<SentinelResolver>(options);
    return found;
  }

  explicit SentinelResolver(SentinelOptions options) : options_(std::move(options)) {
    if (options_.sentinels.empty())
      throw ConfigError("cachet: SentinelOptions::sentinels is empty for master '" + options_.master_name + "'");
    failed_at_.resize(options_.sentinels.size());
  }

  // Where to connect for `role`; throws ConnectionError when no address is known.
  SentinelTarget resolve(SentinelRole role, std::chrono::milliseconds timeout) {
    const bool master = role == SentinelRole::master;
    // Another caller's round may use a longer timeout: wait for it no longer than this caller's own.
    const auto deadline = clock::now() + timeout * static_cast<int>(options_.sentinels.size());
    std::unique_lock lock(mutex_);
    for (;;) {
      const bool known = master ? master_.has_value() : !replicas_.empty();
      const bool wanted = !known || !master || stale_.load();
      const bool may_ask = !asking_ && clock::now() - ended_at_[master] >= options_.rediscover_interval;
      if (known && (!wanted || !may_ask)) return target(role);  // another thread asks, or not yet again
      if (may_ask) {
        round(lock, role, timeout);
        if (master ? master_.has_value() : !replicas_.empty()) return target(role);
      }
      if (!asking_ || !wait_for_round(lock, timeout.count() > 0 ? &deadline : nullptr))
        throw ConnectionError(fmt::format("sentinel: no {} address known for master '{}' (last error: {})",
                                          master ? "master" : "replica", options_.master_name, last_error_));
    }
  }

  // A connection opened at `generation` failed or got READONLY: the next
  // resolve() asks the sentinels (rate-limited). No lock: every failing command calls it.
  void invalidate(std::uint64_t generation) noexcept {
    if (generation == generation_.load(std::memory_order_acquire)) stale_.store(true);
  }

  // The server given at `generation` is not in the role asked for: as invalidate(),
  // and the sentinel that named it is asked last from now on.
  void wrong_role(std::uint64_t generation) {
    std::lock_guard lock(mutex_);
    if (generation != generation_) return;
    stale_ = true;
    if (named_by_ < failed_at_.size()) failed_at_[named_by_] = clock::now();
  }

  // A sentinel announced the master at a new address (+switch-master).
  void switched(std::string host, int port) {
    {
      std::lock_guard lock(mutex_);
      if (master_ && master_->first == host && master_->second == port) return;
      set_master({std::move(host), port}, no_sentinel);
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
  static constexpr std::size_t no_sentinel = static_cast<std::size_t>(-1);

  // A listener that throws must not fail the connect that saw the move.
  void notify() noexcept {
    std::lock_guard lock(listeners_mutex_);
    for (auto& l : listeners_) {
      try {
        l.second();
      } catch (...) {
      }
    }
  }

  // What one round learnt, gathered without the lock.
  struct Answer {
    std::optional<Address> master;
    std::vector<Address> replicas;
    std::size_t by = no_sentinel;     // the sentinel that answered
    std::vector<std::size_t> failed;  // the sentinels that did not
    std::string error;
  };

  // Every field, each prefixed by its length so no two option sets share a key.
  static std::string key_of(const SentinelOptions& o) {
    std::string key;
    auto add = [&](std::string_view field) { key += fmt::format("{}:{}|", field.size(), field); };
    add(o.master_name);
    for (const auto& s : o.sentinels) add(fmt::format("{}:{}", s.host, s.port));
    add(o.user);
    add(o.password);
    add(fmt::format("{}", o.rediscover_interval.count()));
    const TlsOptions& t = o.tls;
    add(fmt::format("{}{}{}{}", t.enabled, t.verify_hostname, static_cast<int>(t.min_version), t.dangerously_skip_verification));
    for (const std::string* f : {&t.ca_file, &t.ca_dir, &t.server_name, &t.cert_file, &t.key_file}) add(*f);
    return key;
  }

  SentinelTarget target(SentinelRole role) {
    if (role == SentinelRole::master) return {master_->first, master_->second, generation_};
    const auto& r = replicas_[next_replica_++ % replicas_.size()];
    return {r.first, r.second, generation_};
  }

  // The round in flight answers for this thread too; false when `deadline` (if any) passed first.
  bool wait_for_round(std::unique_lock<std::mutex>& lock, const clock::time_point* deadline) {
    if (!deadline) {
      done_.wait(lock, [&] { return !asking_; });
      return true;
    }
    return done_.wait_until(lock, *deadline, [&] { return !asking_; });
  }

  // With mutex_ held on entry and exit: asks the sentinels with it released.
  void round(std::unique_lock<std::mutex>& lock, SentinelRole role, std::chrono::milliseconds timeout) {
    const std::vector<std::size_t> order = ask_order();  // may throw: before the round is marked as running
    asking_ = true;
    const std::uint64_t generation = generation_;
    lock.unlock();
    Answer a;
    try {
      a = role == SentinelRole::master ? ask_master(order, timeout) : ask_replicas(order, timeout);
    } catch (...) {  // bad_alloc: let the next thread ask
      lock.lock();
      end_round(role);
      throw;
    }
    lock.lock();
    end_round(role);
    for (std::size_t i : a.failed) failed_at_[i] = clock::now();
    if (a.by != no_sentinel) failed_at_[a.by] = {};
    if (!a.error.empty()) last_error_ = a.error;
    if (role == SentinelRole::replica) {
      if (!a.replicas.empty() && generation == generation_) replicas_ = std::move(a.replicas);  // not pre-failover's
    } else if (a.master && generation == generation_) {  // a +switch-master during the round is newer
      if (set_master(std::move(*a.master), a.by)) {
        // Found by asking, not announced: subscribers must still leave the old master now.
        lock.unlock();
        notify();
        lock.lock();
      }
    }  // no answer: the last known master stays (stale, so the next round asks again)
  }

  void end_round(SentinelRole role) {
    asking_ = false;
    ended_at_[role == SentinelRole::master] = clock::now();
    done_.notify_all();
  }

  // With mutex_ held; true when the master moved (a new generation).
  bool set_master(Address found, std::size_t by) {
    stale_ = false;
    named_by_ = by;
    if (master_ == found) return false;
    const bool moved = master_.has_value();
    if (moved) generation_.fetch_add(1, std::memory_order_acq_rel);
    master_ = std::move(found);
    replicas_.clear();
    return moved;
  }

  // With mutex_ held: sentinels that failed lately last.
  std::vector<std::size_t> ask_order() const {
    std::vector<std::size_t> order(options_.sentinels.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return failed_at_[a] < failed_at_[b]; });
    return order;
  }

  Answer ask_master(const std::vector<std::size_t>& order, std::chrono::milliseconds timeout) const {
    return ask_sentinels(order, timeout, [&](SentinelClient& c, Answer& a) {
      ReplyPtr r = c.query({"SENTINEL", "GET-MASTER-ADDR-BY-NAME", options_.master_name});
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        a.error = fmt::format("sentinel {} does not know master '{}'", c.name(), options_.master_name);
        return false;
      }
      const auto host = string_of(r->element[0]), port_text = string_of(r->element[1]);
      const auto port = port_text ? parse_port(*port_text) : std::nullopt;
      if (!host || host->empty() || !port) {
        a.error = fmt::format("sentinel {} gave a malformed address for master '{}'", c.name(), options_.master_name);
        return false;
      }
      a.master = Address{std::string(*host), *port};
      return true;
    });
  }

  Answer ask_replicas(const std::vector<std::size_t>& order, std::chrono::milliseconds timeout) const {
    return ask_sentinels(order, timeout, [&](SentinelClient& c, Answer& a) {
      ReplyPtr r = c.query({"SENTINEL", "REPLICAS", options_.master_name});
      if (r->type != REDIS_REPLY_ARRAY) {
        a.error = fmt::format("sentinel {} does not know the replicas of master '{}'", c.name(), options_.master_name);
        return false;
      }
      for (std::size_t i = 0; i < r->elements; ++i)
        if (auto address = healthy_replica(r->element[i])) a.replicas.push_back(std::move(*address));
      if (a.replicas.empty()) a.error = fmt::format("sentinel {}: no replica of master '{}' is up", c.name(), options_.master_name);
      return !a.replicas.empty();
    });
  }

  // One entry of SENTINEL REPLICAS (a flat field/value array), unless the sentinels see it down.
  static std::optional<Address> healthy_replica(const redisReply* entry) {
    // Not master-link-status: a sentinel refreshes it every 10 s, so a new replica reads "err" for that long.
    if (entry == nullptr || entry->type != REDIS_REPLY_ARRAY) return std::nullopt;
    std::string_view ip, port, flags;
    for (std::size_t i = 0; i + 1 < entry->elements; i += 2) {
      const auto field = string_of(entry->element[i]), value = string_of(entry->element[i + 1]);
      if (!field || !value) return std::nullopt;
      if (*field == "ip") ip = *value;
      else if (*field == "port") port = *value;
      else if (*field == "flags") flags = *value;
    }
    const auto p = parse_port(port);
    if (ip.empty() || !p || flags.find("down") != std::string_view::npos ||
        flags.find("disconnected") != std::string_view::npos)
      return std::nullopt;
    return Address{std::string(ip), *p};
  }

  // No lock held: runs `ask` on each sentinel in `order` until one returns true.
  template <class F>
  Answer ask_sentinels(const std::vector<std::size_t>& order, std::chrono::milliseconds timeout, F&& ask) const {
    Answer a;
    for (std::size_t i : order) {
      try {
        SentinelClient c(options_, options_.sentinels[i], timeout);
        if (ask(c, a)) {
          a.by = i;
          return a;
        }
      } catch (const Error& e) {
        a.error = e.what();
      }
      a.failed.push_back(i);
    }
    return a;
  }

  const SentinelOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable done_;  // a round ended
  std::optional<Address> master_;
  std::size_t named_by_ = no_sentinel;  // the sentinel that gave master_ (none: +switch-master)
  std::atomic<bool> stale_{true};
  std::atomic<std::uint64_t> generation_{0};  // written with mutex_ held
  bool asking_ = false;                       // a round is in flight
  clock::time_point ended_at_[2]{};           // when the last round ended: [1] for the master, [0] replicas
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
