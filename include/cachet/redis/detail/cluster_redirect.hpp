#pragma once
// A cluster node's redirection: "MOVED <slot> <host>:<port>" (the slot lives
// there now: update the map) or "ASK <slot> <host>:<port>" (this key is being
// imported there: send ASKING and the command to it, once). Either means the
// command did not run, so any command may be re-sent.

#include <cachet/redis/detail/endpoint.hpp>
#include <cachet/redis/errors.hpp>

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace cachet::detail {

struct ClusterRedirect {
  enum Kind { moved, ask } kind = moved;
  std::uint16_t slot = 0;
  Endpoint to;
};

// Whether a server's error message is a redirect (MOVED or ASK), without parsing it.
constexpr bool is_cluster_redirect(std::string_view message) noexcept {
  return message.starts_with("MOVED ") || message.starts_with("ASK ");
}

// The redirect in a server's error message, or nullopt if the message is
// another error or a malformed redirect (which is then an ordinary ReplyError);
// a ProtocolError if it names a host that is not printable ASCII.
inline std::optional<ClusterRedirect> parse_cluster_redirect(std::string_view message, std::string_view answering_host) {
  ClusterRedirect r;
  if (message.starts_with("MOVED ")) {
    message.remove_prefix(6);
  } else if (message.starts_with("ASK ")) {
    r.kind = ClusterRedirect::ask;
    message.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto space = message.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  unsigned slot = 0;
  const std::string_view digits = message.substr(0, space);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), slot);
  if (ec != std::errc{} || end != digits.data() + digits.size() || slot > 16383) return std::nullopt;
  r.slot = static_cast<std::uint16_t>(slot);
  auto to = parse_endpoint(message.substr(space + 1), answering_host);
  if (!to) return std::nullopt;
  if (!printable_host(to->host)) throw ProtocolError("cluster redirect to a host that is not printable ASCII");
  r.to = std::move(*to);
  return r;
}

}  // namespace cachet::detail
