#pragma once
// Whether a reply read from a pipeline is a Redis Cluster redirect (MOVED or
// ASK): the command did not run, and the caller sends it again through
// Pool::run, which follows the redirect.

#include <cachet/redis/detail/cluster_redirect.hpp>
#include <cachet/redis/reply.hpp>

namespace cachet {

inline bool redirected(ReplyView r) { return r.is_error() && detail::is_cluster_redirect(r.error_message()); }

}  // namespace cachet
