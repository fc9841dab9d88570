#pragma once
// How a test (or its worker process) looks at Redis behind cachet's back: one
// connection to the server, or on a cluster each command on the master of its
// key's slot. Tests write conn.command({"GET", key}) either way.
//
//   target address        "/tmp/.../redis.sock" (one server) or "cluster:127.0.0.1:7000,127.0.0.1:7001,..."
//   target_options(addr)  the ConnectionOptions a Pool takes, in the test and in its workers

#include <cachet/redis/connection.hpp>
#include <cachet/redis/pool.hpp>

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cachet::test {

inline constexpr std::string_view cluster_address_prefix = "cluster:";

// Options for a target address: a unix socket path, or "cluster:" and comma-separated seeds.
inline ConnectionOptions target_options(std::string_view address) {
  ConnectionOptions o;
  if (!address.starts_with(cluster_address_prefix)) {
    o.path = std::string(address);
    return o;
  }
  address.remove_prefix(cluster_address_prefix.size());
  for (std::size_t at = 0; at <= address.size();) {
    const std::size_t comma = std::min(address.find(',', at), address.size());
    o.cluster.seeds.emplace_back(address.substr(at, comma - at));
    at = comma + 1;
  }
  return o;
}

class Client {
 public:
  explicit Client(const ConnectionOptions& o) {
    if (o.cluster.enabled()) pool_ = std::make_unique<Pool>(o, PoolOptions{.size = 1});
    else conn_.emplace(o);
  }

  bool cluster() const noexcept { return pool_ != nullptr; }

  Reply command(std::initializer_list<Arg> args) {
    std::vector<std::string_view> argv;
    for (const Arg& a : args) argv.push_back(a.view());
    return send(argv);
  }
  template <ArgRange R>
  Reply command(const R& args) {
    std::vector<std::string_view> argv;
    for (auto&& a : args) argv.emplace_back(a);
    return send(argv);
  }

  // f(Connection&) on the server, or on every master.
  template <class F>
  void each_master(F&& f) {
    if (conn_) f(*conn_);
    else pool_->for_each_master(f);
  }

  // How many keys the server (every master) holds.
  long long key_count() {
    long long n = 0;
    each_master([&](Connection& c) { n += c.command({"DBSIZE"}).as_integer(); });
    return n;
  }

 private:
  // On a cluster: a keyed command on its key's master; a server-wide one
  // (FLUSHALL, CONFIG, SCRIPT) on every master, the last reply returned; any
  // other keyless one (TIME, PING, PUBLISH) on one master.
  Reply send(const std::vector<std::string_view>& argv) {
    if (conn_) return conn_->command(argv);
    const std::string name = upper(argv.at(0));
    if (name == "DBSIZE" || name == "INFO" || name == "DEBUG")
      throw std::logic_error("test::Client: " + name + " is per node on a cluster (key_count(), command_calls())");
    if (const auto key = key_of(name, argv)) return pool_->run(*key, [&](Connection& c) { return c.command(argv); });
    if (name == "FLUSHALL" || name == "CONFIG" || name == "SCRIPT") {
      std::optional<Reply> last;
      pool_->for_each_master([&](Connection& c) { last.emplace(c.command(argv)); });
      return std::move(*last);
    }
    return pool_->with([&](Connection& c) { return c.command(argv); });
  }

  static std::optional<std::string_view> key_of(const std::string& name, const std::vector<std::string_view>& argv) {
    if (name == "EVAL" || name == "EVALSHA")
      return argv.size() > 3 && argv[2] != "0" ? std::optional(argv[3]) : std::nullopt;
    if (name == "XGROUP") return argv.size() > 2 ? std::optional(argv[2]) : std::nullopt;  // XGROUP CREATE <key> ...
    if (name == "XINFO") return argv.size() > 2 ? std::optional(argv[2]) : std::nullopt;  // XINFO GROUPS|STREAM <key>
    if (name == "XREAD" || name == "XREADGROUP") {  // ... STREAMS <key> ... <id> ...
      // Past XREADGROUP's GROUP <g> <c>: a group or consumer may be named "streams".
      const auto from = argv.begin() + std::min<std::size_t>(argv.size(), name == "XREADGROUP" ? 4 : 1);
      const auto streams = std::find_if(from, argv.end(), [](std::string_view a) { return upper(a) == "STREAMS"; });
      return streams != argv.end() && streams + 1 != argv.end() ? std::optional(*(streams + 1)) : std::nullopt;
    }
    static constexpr std::string_view keyless[] = {"FLUSHALL", "CONFIG", "SCRIPT", "TIME",   "PING",
                                                   "PUBLISH",  "PUBSUB", "CLIENT", "CLUSTER", "SLOWLOG"};
    if (argv.size() < 2 || std::find(std::begin(keyless), std::end(keyless), name) != std::end(keyless))
      return std::nullopt;
    return argv[1];
  }

  static std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
  }

  std::optional<Connection> conn_;
  std::unique_ptr<Pool> pool_;
};

// How many times the server (every master) ran `command` (lower case) since the last CONFIG RESETSTAT.
inline long long command_calls(Connection& conn, const std::string& command) {
  const std::string stats = conn.command({"INFO", "commandstats"}).as_string();
  const std::string tag = "cmdstat_" + command + ":calls=";
  const auto at = stats.find(tag);
  return at == std::string::npos ? 0 : std::stoll(stats.substr(at + tag.size()));
}
inline long long command_calls(Client& client, const std::string& command) {
  long long n = 0;
  client.each_master([&](Connection& c) { n += command_calls(c, command); });
  return n;
}

}  // namespace cachet::test
