#pragma once
// How a SessionStore behaves; every field has a default, so
// `make_session_store(pool, {.idle = 30min, .absolute = 12h})` is a whole configuration.

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace cachet {

struct SessionOptions {
  std::chrono::milliseconds idle{std::chrono::minutes(30)};     // unused this long: gone
  std::chrono::milliseconds absolute{std::chrono::hours(12)};   // after creation: gone, however used
  // A read renews the idle timeout only once this fraction of it has passed since
  // the last renewal, so most reads do not write (0: every read renews).
  double renew_after = 0.5;
  // How long a destroyed or regenerated id stays refused: longer than any request
  // that may still write to it runs.
  std::chrono::milliseconds tombstone{std::chrono::minutes(5)};
  std::size_t max_per_user = 0;  // 0: no limit; else the oldest sessions of a user beyond it are ended
  std::string prefix = "session";  // keys: <prefix>:{<anchor>}:<sha256 of the secret>, <prefix>:user:{<user>}
  // HMAC-SHA256 keys, newest first: ids are signed with the first and accepted
  // with any, so a secret can be rotated. Empty: ids are not signed.
  std::vector<std::string> secrets{};
};

}  // namespace cachet
