#pragma once
// Pool's Redis Cluster branch: a command goes to the master of its key's slot
// and follows the cluster's answers (see detail/cluster_reply.hpp): MOVED
// updates that slot and asks for a refresh; ASK sends f to the importing node
// once, with ASKING before each of its commands; TRYAGAIN, CLUSTERDOWN and LOADING back off with
// jitter within retry_within; READONLY waits for a refresh. A redirection means
// nothing ran, so f runs again; after an I/O error or a timeout only an
// Idempotent::yes f runs again, once, after a refresh. Each node times the
// commands sent to it (ClusterFigures::node_latency). Whatever uses a node holds
// it (a shared_ptr), so that a refresh may drop the pool of a departed node under it.

#include <cachet/detail/hash_slot.hpp>
#include <cachet/redis/detail/cluster_reply.hpp>
#include <cachet/redis/detail/cluster_topology.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace cachet::detail {

template <class NodePool>
class ClusterRouter {
  using Topology = ClusterTopology<NodePool>;
  using Node = typename Topology::Node;
  using clock = std::chrono::steady_clock;

 public:
  ClusterRouter(const ConnectionOptions& options, const PoolOptions& pool_options)
      : options_(options.cluster), topology_(options, pool_options) {}

  template <class F>
  decltype(auto) run(std::string_view key, F&& f, Idempotent again) {
    Attempt a;
    a.slot = hash_slot(key), a.deadline = clock::now() + options_.retry_within;
    for (;;) {
      const std::shared_ptr<Node> held = target(a);  // outlives the lease
      Node& node = *held;
      std::optional<typename NodePool::Lease> lease = lease_on(node, a);
      if (!lease) continue;
      try {
        AskingFor<std::remove_reference_t<decltype(**lease)>> asking(**lease, a.ask.has_value());
        const Timed timed(node);
        return f(**lease);
      } catch (const ClusterRedirectError&) {
        throw;
      } catch (const ReplyError& e) {
        follow(a, node, e);  // returns to try again, or rethrows
      } catch (const ConnectionError&) {
        topology_.node_error(node);
        if (again == Idempotent::no || std::exchange(a.io_retried, true)) throw;
        a.ask.reset();
        topology_.await_refresh(a.deadline);
      }
    }
  }

  template <class Send, class Receive>
  void run_grouped(std::span<const std::string_view> keys, Send&& send, Receive&& receive) {
    grouped(leased_groups(keys, Pick::master), send, receive);
  }

  // A plain read: on a replica of the slot's master, taken in turn, when
  // read_from_replicas is on and the map knows one; through run() on the master
  // when not, or when the replica cannot be reached or answers with a redirection.
  template <class F>
  decltype(auto) read(std::string_view key, F&& f) {
    if (!options_.read_from_replicas) return run(key, std::forward<F>(f), Idempotent::yes);  // no map copy on a hit
    {  // the map let go before run(), which may wait for a refresh
      const auto snap = topology_.snapshot();  // held: it holds the replica
      if (Node* replica = replica_for(*snap, hash_slot(key))) {
        try {
          auto lease = replica->pool->acquire();
          const Timed timed(*replica);
          return f(*lease);
        } catch (const ConnectionError&) {
          topology_.node_error(*replica);
        } catch (const ReplyError& e) {
          if (classify_cluster_error(e.server_message()) == ClusterAnswer::other) throw;
        }
      }
    }
    return run(key, std::forward<F>(f), Idempotent::yes);
  }

  // run_grouped for plain reads, on replicas as read() picks them; the whole
  // batch again on the masters when a replica cannot be reached (a redirected
  // reply is the caller's to retry, as in run_grouped).
  template <class Send, class Receive>
  void read_grouped(std::span<const std::string_view> keys, Send&& send, Receive&& receive) {
    if (options_.read_from_replicas) {
      try {
        return grouped(leased_groups(keys, Pick::replica), send, receive);
      } catch (const ConnectionError&) {  // counted against its node by grouped()
      }
    }
    run_grouped(keys, send, receive);
  }

  template <class F>
  void for_each_master(F&& f) {
    const auto snap = serving();  // held: it holds the masters
    for (const auto& node : snap->masters) {
      try {
        auto lease = node->pool->acquire();
        const Timed timed(*node);
        f(*lease);
      } catch (const ConnectionError&) {
        topology_.node_error(*node);
        throw;
      }
    }
  }

  // A connection to a master for keyless commands (PING), taken in turn; it
  // holds its node, which a refresh may drop meanwhile, for as long as it is held.
  typename NodePool::Lease acquire_any(std::chrono::milliseconds timeout) {
    const auto snap = serving();
    const std::shared_ptr<Node>& node = snap->masters[next_++ % snap->masters.size()];
    typename NodePool::Lease lease = node->pool->acquire(timeout);
    lease.hold(node);
    return lease;
  }

  std::string master_of(std::string_view key) const {
    const auto snap = topology_.snapshot();  // held: a reload may drop the node it names
    const Node* node = snap->master_of(hash_slot(key));
    return node ? node->name : "";
  }

  std::vector<std::string> masters() const { return topology_.master_names(); }
  std::uint64_t listen(std::function<void()> f) { return topology_.listen(std::move(f)); }
  void unlisten(std::uint64_t id) { topology_.unlisten(id); }
  void request_refresh() { topology_.request_refresh(); }
  void await_refresh(clock::time_point until) { topology_.await_refresh(until); }

  PoolStats stats() const { return topology_.pool_stats(); }
  ClusterFigures figures() const { return topology_.figures(); }
  std::uint64_t asks() const noexcept { return topology_.asks(); }

 private:
  // On the ASK target, every command f sends goes after ASKING (a script's
  // EVALSHA after SCRIPT LOAD, a pipeline), not only the first; off again after f.
  template <class Conn>
  struct AskingFor {
    Conn& conn;
    bool on;
    AskingFor(Conn& c, bool ask) noexcept : conn(c), on(ask) {
      if (on) conn.set_asking(true);
    }
    ~AskingFor() {
      if (on) conn.set_asking(false);
    }
  };

  // Observes, when it goes, how long the command it outlives took on its node.
  struct Timed {
    Node& node;
    clock::time_point started = clock::now();
    explicit Timed(Node& n) noexcept : node(n) {}
    Timed(const Timed&) = delete;
    Timed& operator=(const Timed&) = delete;
    ~Timed() { node.latency.observe(clock::now() - started); }
  };

  struct Attempt {
    std::uint16_t slot = 0;
    clock::time_point deadline{};
    int redirects = 0;
    std::uint32_t retries = 0;
    bool io_retried = false;
    std::optional<Endpoint> ask;  // the next try goes there, after ASKING
  };

  // The node for this try: the ASK target, else the slot's master (waiting
  // within the deadline for a map that has one).
  std::shared_ptr<Node> target(Attempt& a) {
    if (a.ask) return topology_.node(*a.ask);
    for (;;) {
      auto snap = topology_.snapshot();
      if (Node* node = snap->master_of(a.slot)) return held_by(std::move(snap), node);
      if (clock::now() >= a.deadline)
        throw ConnectionError("redis cluster: no reachable node serves slot " + std::to_string(a.slot) +
                              " (ClusterOptions::seeds; retried for retry_within)");
      topology_.await_refresh(std::min(a.deadline, clock::now() + pause(a.retries++)));
    }
  }

  // A connection to `node`, or nullopt to try again after a refresh: a node
  // that cannot be reached ran nothing, so any command may wait for its
  // replacement within retry_within.
  std::optional<typename NodePool::Lease> lease_on(Node& node, Attempt& a) {
    try {
      return node.pool->acquire();
    } catch (const ConnectionError&) {
      topology_.node_error(node);
      if (clock::now() >= a.deadline) throw;
      a.ask.reset();
      topology_.await_refresh(std::min(a.deadline, clock::now() + pause(a.retries++) + options_.refresh_min_interval));
      return std::nullopt;
    }
  }

  // Called from run()'s handler: prepares the next try, or rethrows the reply error.
  void follow(Attempt& a, Node& node, const ReplyError& e) {
    const ClusterAnswer answer = classify_cluster_error(e.server_message());
    auto& c = topology_.counters();
    if (answer == ClusterAnswer::moved || answer == ClusterAnswer::ask) {
      const auto redirect = parse_cluster_redirect(e.server_message(), node.at.host);
      if (!redirect) throw;  // malformed: an ordinary ReplyError
      if (++a.redirects > options_.max_redirects)
        throw ClusterRedirectError(a.slot, options_.max_redirects, e.server_message());
      a.ask.reset();
      if (answer == ClusterAnswer::moved) topology_.moved(redirect->slot, redirect->to);
      else ++c.ask, a.ask = redirect->to;
      return;
    }
    if (answer == ClusterAnswer::other) throw;
    ++(answer == ClusterAnswer::tryagain      ? c.tryagain
       : answer == ClusterAnswer::clusterdown ? c.clusterdown
       : answer == ClusterAnswer::loading     ? c.loading
                                              : c.readonly);
    back_off(a, answer, e);
  }

  // TRYAGAIN, CLUSTERDOWN, LOADING, READONLY: again after a pause (READONLY and
  // CLUSTERDOWN: after a refresh too), unless the deadline would pass first.
  void back_off(Attempt& a, ClusterAnswer answer, const ReplyError& e) {
    const auto until = clock::now() + pause(a.retries++);
    if (until >= a.deadline) throw;
    if (options_.on_retry) options_.on_retry(e);
    a.ask.reset();
    if (answer == ClusterAnswer::readonly || answer == ClusterAnswer::clusterdown) topology_.await_refresh(until);
    std::this_thread::sleep_until(until);
  }

  // 5 ms doubling to 200 ms, less up to half at random.
  std::chrono::milliseconds pause(std::uint32_t retries) {
    const long full = std::min<long>(200, 5L << std::min<std::uint32_t>(retries, 6));
    thread_local std::minstd_rand rng{std::random_device{}()};
    return std::chrono::milliseconds{full - std::uniform_int_distribution<long>(0, full / 2)(rng)};
  }

  // A map with a master for every slot, waiting up to retry_within for one.
  std::shared_ptr<const typename Topology::Snapshot> serving() {
    const auto deadline = clock::now() + options_.retry_within;
    for (std::uint32_t retries = 0;; ++retries) {
      auto snap = topology_.snapshot();
      if (snap->map.covers_all() && !snap->masters.empty()) return snap;
      if (clock::now() >= deadline)
        throw ConnectionError("redis cluster: no reachable node serves every slot (ClusterOptions::seeds)");
      topology_.await_refresh(std::min(deadline, clock::now() + pause(retries)));
    }
  }

  // `node`, kept alive by `snap`, its map (no count of its own to change).
  static std::shared_ptr<Node> held_by(std::shared_ptr<const typename Topology::Snapshot> snap, Node* node) noexcept {
    return std::shared_ptr<Node>(std::move(snap), node);
  }

  using Groups = std::vector<std::pair<std::shared_ptr<Node>, std::vector<std::size_t>>>;
  enum class Pick { master, replica };  // replica: one of the master's when read() would take one

  // A batch's groups: sent to every node before any is read.
  template <class Send, class Receive>
  void grouped(std::pair<Groups, std::vector<typename NodePool::Lease>> leased, Send& send, Receive& receive) {
    auto& [groups, leases] = leased;
    Node* at = nullptr;
    try {
      const auto started = clock::now();
      for (std::size_t g = 0; g < groups.size(); ++g) {
        at = groups[g].first.get();
        send(*leases[g], std::span<const std::size_t>(groups[g].second));
      }
      for (std::size_t g = 0; g < groups.size(); ++g) {
        at = groups[g].first.get();
        receive(*leases[g], std::span<const std::size_t>(groups[g].second));
        at->latency.observe(clock::now() - started);
      }
    } catch (const ConnectionError&) {
      topology_.node_error(*at);
      throw;
    }
  }

  // A replica of `slot`'s master, taken in turn, when reads may go to one and
  // the map knows one; `snap` holds it.
  Node* replica_for(const typename Topology::Snapshot& snap, std::uint16_t slot) {
    const auto* replicas = snap.replicas_of(slot);  // none unless read_from_replicas
    if (!replicas || replicas->empty()) return nullptr;
    return (*replicas)[next_++ % replicas->size()].get();
  }

  // The keys' indices by the node of their slot, ascending (waiting within
  // retry_within for a map that serves them all); nodes in one global order
  // (their address) so that two batches never wait on each other's leases.
  Groups group(std::span<const std::string_view> keys, Pick pick) {
    const auto deadline = clock::now() + options_.retry_within;
    for (std::uint32_t retries = 0;; ++retries) {
      const auto snap = topology_.snapshot();
      auto groups = group_in(snap, keys, pick);
      if (std::none_of(groups.begin(), groups.end(), [](const auto& g) { return g.first == nullptr; })) return groups;
      if (clock::now() >= deadline)
        throw ConnectionError("redis cluster: no reachable node serves some of the batch's slots (ClusterOptions::seeds)");
      topology_.await_refresh(std::min(deadline, clock::now() + pause(retries)));
    }
  }

  // The keys' groups and a connection to each node, taken before anything is
  // sent: a node that cannot be reached ran nothing, so the batch is grouped
  // again once, after a refresh, within retry_within (on replicas: not waited
  // for, the masters answer instead).
  std::pair<Groups, std::vector<typename NodePool::Lease>> leased_groups(std::span<const std::string_view> keys,
                                                                         Pick pick) {
    const auto deadline = clock::now() + options_.retry_within;
    for (bool again = false;; again = true) {
      std::pair<Groups, std::vector<typename NodePool::Lease>> out;
      out.first = group(keys, pick);
      out.second.reserve(out.first.size());
      Node* at = nullptr;
      try {
        for (auto& group : out.first) out.second.push_back((at = group.first.get())->pool->acquire());
        return out;
      } catch (const ConnectionError&) {
        topology_.node_error(*at);
        if (again || pick == Pick::replica || clock::now() >= deadline) throw;
      }
      out.second.clear();  // back to their pools before waiting
      topology_.await_refresh(deadline);
    }
  }

  // A group holds its node through `snap`, for as long as the batch runs: one
  // count more on the map per group, none per key.
  Groups group_in(const std::shared_ptr<const typename Topology::Snapshot>& snap, std::span<const std::string_view> keys,
                  Pick pick) {
    Groups groups;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const std::uint16_t slot = hash_slot(keys[i]);
      Node* node = pick == Pick::replica ? replica_for(*snap, slot) : nullptr;
      if (!node) node = snap->master_of(slot);
      auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first.get() == node; });
      if (it == groups.end()) {
        std::shared_ptr<Node> held;  // null: no node serves the slot in this map
        if (node) held = held_by(snap, node);
        it = groups.insert(groups.end(), {std::move(held), {}});
      }
      it->second.push_back(i);
    }
    std::sort(groups.begin(), groups.end(),
              [](const auto& x, const auto& y) { return std::less<>{}(x.first.get(), y.first.get()); });
    return groups;
  }

  const ClusterOptions options_;
  Topology topology_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace cachet::detail
