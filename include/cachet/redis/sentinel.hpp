#pragma once
// Following a Sentinel-managed master: a watch that listens for `+switch-master`
// on every sentinel and moves the shared resolver at once, so pools drop their
// connections to the old master and subscribers (tracking, the lock notifier)
// re-subscribe on the new one without waiting for a failed command.
//
// Pools and Tracking hold a watch (one per master name and sentinel list,
// shared); it stops when the last holder goes. See docs/sentinel.md.

#include <cachet/redis/detail/sentinel_resolver.hpp>
#include <cachet/redis/options.hpp>
#include <cachet/redis/subscriber.hpp>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace cachet {

class SentinelWatch {
 public:
  explicit SentinelWatch(std::shared_ptr<detail::SentinelResolver> resolver) : resolver_(std::move(resolver)) {
    const SentinelOptions& s = resolver_->options();
    for (const SentinelAddress& address : s.sentinels) {
      const ConnectionOptions o = detail::sentinel_connection_options(s, address);
      subscribers_.push_back(std::make_unique<Subscriber>(
          o, SubscriberOptions{.ping_interval = std::chrono::seconds(1)},
          Subscriber::Hooks{.setup = [](Connection& c) { c.command({"SUBSCRIBE", "+switch-master"}); },
                            .message = [this](const Reply& msg) { on_message(msg); },
                            .up = [] {},
                            .down = [] {}}));
    }
    for (auto& sub : subscribers_) sub->start();
  }

 private:
  // ["message", "+switch-master", "<name> <old ip> <old port> <new ip> <new port>"]
  void on_message(const Reply& msg) {
    if (!msg.is_array() || msg.size() != 3 || !msg[2].is_string()) return;
    std::istringstream words{std::string(msg[2].as_string())};
    std::string name, old_host, old_port, host, port;
    if (!(words >> name >> old_host >> old_port >> host >> port) || name != resolver_->options().master_name) return;
    if (const auto p = detail::parse_port(port)) resolver_->switched(host, *p);
  }

  std::shared_ptr<detail::SentinelResolver> resolver_;
  std::vector<std::unique_ptr<Subscriber>> subscribers_;  // last: joined before resolver_ goes
};

// The shared watch for these options' master, or null when Sentinel is off.
inline std::shared_ptr<void> watch_sentinels(const ConnectionOptions& options) {
  if (!options.sentinel.enabled()) return nullptr;
  auto resolver = detail::SentinelResolver::get(options.sentinel);
  return resolver->attach_once([&] { return std::make_shared<SentinelWatch>(resolver); });
}

}  // namespace cachet
