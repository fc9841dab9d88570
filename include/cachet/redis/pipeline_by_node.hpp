#pragma once
// A batch of commands over many keys through Pool::run_grouped: one pipeline on
// one server, one per node on Redis Cluster; the replies in the caller's order.
// A key whose replies hold a cluster answer (a redirect: its slot moved, nothing
// ran; TRYAGAIN, CLUSTERDOWN, LOADING, READONLY) or NOSCRIPT (that node never
// loaded the script) runs again alone through Pool::run, which follows the
// redirect or backs off.

#include <cachet/redis/connection.hpp>
#include <cachet/redis/detail/cluster_reply.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/redis/redirect.hpp>
#include <cachet/redis/reply.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace cachet {

namespace detail {
// Reads `n` replies into `to`.
inline void read_replies(Connection& c, std::optional<Reply>* to, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) to[j].emplace(c.read_reply());
}

// An answer Pool::run() acts on (follows, or retries after a back-off).
inline bool cluster_answer(ReplyView r) {
  return r.is_error() && classify_cluster_error(r.error_message()) != ClusterAnswer::other;
}

inline bool must_rerun(const std::optional<Reply>& r) {
  return cluster_answer(*r) || (r->is_error() && r->error_message().starts_with("NOSCRIPT"));
}
}  // namespace detail

// send(Connection&, indices, eval) appends the `per_key` commands of each key at
// `indices` (a script by EVAL when `eval`: the node may not know its SHA1).
// Returns keys.size() * per_key replies, key i's at [i * per_key, (i + 1) * per_key).
// ReadFrom::replica: plain reads, which Pool::read_grouped may send to replicas.
enum class ReadFrom { master, replica };

template <class Send>
std::vector<Reply> pipeline_by_node(Pool& pool, std::span<const std::string_view> keys, std::size_t per_key,
                                    Send&& send, Idempotent again, ReadFrom from = ReadFrom::master) {
  std::vector<std::optional<Reply>> got(keys.size() * per_key);
  const auto send_group = [&](Connection& c, std::span<const std::size_t> at) {
    send(c, at, false);
    c.flush();
  };
  const auto receive_group = [&](Connection& c, std::span<const std::size_t> at) {
    for (std::size_t i : at) detail::read_replies(c, &got[i * per_key], per_key);
  };
  if (from == ReadFrom::replica) pool.read_grouped(keys, send_group, receive_group);
  else pool.run_grouped(keys, send_group, receive_group);
  std::vector<Reply> out;
  out.reserve(got.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    std::optional<Reply>* mine = &got[i * per_key];
    if (std::any_of(mine, mine + per_key, detail::must_rerun))
      pool.run(keys[i], [&](Connection& c) {
        send(c, std::span<const std::size_t>(&i, 1), true);
        detail::read_replies(c, mine, per_key);
        for (std::size_t j = 0; j < per_key; ++j)
          if (detail::cluster_answer(*mine[j])) mine[j]->throw_if_error();  // run() follows it or backs off
      }, again);
    for (std::size_t j = 0; j < per_key; ++j) out.push_back(std::move(*mine[j]));
  }
  return out;
}

}  // namespace cachet
