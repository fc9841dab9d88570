#pragma once
// Runs redis-cli to its end for RedisCluster (--cluster create, rebalance),
// its output kept in a file that a failure quotes.

#include <cachet/error.hpp>
#include <cachet/testing/detail/spawner.hpp>

#include <sys/wait.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace cachet::detail {

// `cli` with `args`, and `-a password` when there is one; throws an Error naming
// `what` with the output (written to `out`) unless it exits 0.
inline void run_redis_cli(const std::string& cli, std::vector<std::string> args, const std::string& password,
                          const std::string& out, const std::string& what) {
  args.insert(args.begin(), cli);
  if (!password.empty()) args.insert(args.end(), {"-a", password, "--no-auth-warning"});
  const pid_t pid = Spawner::spawn(args, out);
  if (pid < 0) throw Error("RedisCluster: fork failed");
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  std::ifstream in(out);
  const std::string log(std::istreambuf_iterator<char>(in), {});
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    throw Error("RedisCluster: cannot run '" + cli + "' (install Debian's redis-tools, or set CACHET_REDIS_CLI)");
  throw Error("RedisCluster: redis-cli --cluster " + what + " failed:\n" + log);
}

}  // namespace cachet::detail
