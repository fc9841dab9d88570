#pragma once
// Host and port as a server writes them (sentinel answers, cluster redirects):
// digits-only ports in 1..65535, and "host:port" split at the last ':' so that
// an IPv6 address ("::1:7000") keeps its colons.

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace cachet::detail {

inline std::optional<int> parse_port(std::string_view text) noexcept {
  int port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc{} || end != text.data() + text.size() || port < 1 || port > 65535) return std::nullopt;
  return port;
}

struct Endpoint {
  std::string host;
  int port = 0;
  bool operator==(const Endpoint&) const = default;
};

// A host a server named is only printable ASCII: anything else (a byte 0xff)
// would reach metrics labels and resolvers, so callers refuse it as a ProtocolError.
constexpr bool printable_host(std::string_view host) noexcept {
  for (const char c : host)
    if (c <= ' ' || c > '~') return false;
  return true;
}

// "host:port" -> Endpoint; an empty host (Redis 7's unknown endpoint, ":7000")
// means the host of the server that answered.
inline std::optional<Endpoint> parse_endpoint(std::string_view text, std::string_view answering_host) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const auto port = parse_port(text.substr(colon + 1));
  if (!port) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return Endpoint{std::string(host.empty() ? answering_host : host), *port};
}

}  // namespace cachet::detail
