#pragma once
// Session ids: `<anchor>.<secret>` or, signed, `<anchor>.<secret>.<hmac>`, all
// lowercase hex. The anchor (64 random bits) is the Redis hash tag, so an id
// regenerated with the same anchor lands in the same cluster slot; the secret
// (256 random bits) is what makes the id unguessable; the HMAC-SHA256 lets a
// forged id be refused before Redis is asked.

#include <cachet/detail/random_hex.hpp>
#include <cachet/detail/sha256.hpp>
#include <cachet/session/errors.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace cachet::detail {

inline constexpr std::size_t anchor_hex = 16;  // 8 bytes
inline constexpr std::size_t secret_hex = 64;  // 32 bytes
inline constexpr std::size_t mac_hex = 64;     // HMAC-SHA256

// `n` bytes from OpenSSL's CSPRNG, in hex; a failing generator is an error, never a weak id.
inline std::string random_hex(std::size_t n) {
  try {
    return random_bytes_hex(n);
  } catch (const Error&) {
    throw SessionError("RAND_bytes failed: no session id can be drawn");
  }
}

inline bool is_hex(std::string_view s, std::size_t length) {
  return s.size() == length &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

inline std::string hmac_hex(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int length = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), mac.data(), &length) || length != 32)
    throw SessionError("HMAC-SHA256 failed in libcrypto");
  return to_hex(mac.data(), length);
}

// A handle as SessionStore::list() gives it: {<anchor>}:<sha256 hex>.
inline bool is_handle(std::string_view h) {
  return h.size() == anchor_hex + 3 + 64 && h.front() == '{' && h[anchor_hex + 1] == '}' && h[anchor_hex + 2] == ':' &&
         is_hex(h.substr(1, anchor_hex), anchor_hex) && is_hex(h.substr(anchor_hex + 3), 64);
}

// A parsed id: where it lives in Redis, never the secret itself.
struct SessionRef {
  std::string anchor;
  std::string handle;  // {<anchor>}:<sha256 of the secret>: a dump of Redis yields no usable id
};

class SessionTokens {
 public:
  explicit SessionTokens(std::vector<std::string> secrets) : secrets_(std::move(secrets)) {
    for (const auto& s : secrets_)
      if (s.empty()) throw SessionError("SessionOptions::secrets: an empty secret signs nothing");
  }

  // A new id; with `anchor`, in that anchor's slot (regeneration).
  std::string draw(std::string_view anchor = {}) const {
    std::string token = anchor.empty() ? random_hex(anchor_hex / 2) : std::string(anchor);
    token += '.';
    token += random_hex(secret_hex / 2);
    if (!secrets_.empty()) token += '.' + hmac_hex(secrets_.front(), token);
    return token;
  }

  // Checks an id's shape and signature; throws InvalidSessionId without asking Redis.
  SessionRef parse(std::string_view token) const {
    constexpr std::size_t body_size = anchor_hex + 1 + secret_hex;
    const bool sign = !secrets_.empty();
    if (token.size() != body_size + (sign ? 1 + mac_hex : 0) || token[anchor_hex] != '.' ||
        (sign && token[body_size] != '.'))
      throw InvalidSessionId("session id: malformed");
    const std::string_view anchor = token.substr(0, anchor_hex), secret = token.substr(anchor_hex + 1, secret_hex);
    if (!is_hex(anchor, anchor_hex) || !is_hex(secret, secret_hex)) throw InvalidSessionId("session id: malformed");
    if (sign && !signed_by_any(token.substr(0, body_size), token.substr(body_size + 1)))
      throw InvalidSessionId("session id: signature matches no secret (forged, or signed with a retired secret)");
    return {std::string(anchor), "{" + std::string(anchor) + "}:" + sha256_hex(secret)};
  }

 private:
  bool signed_by_any(std::string_view body, std::string_view mac) const {
    bool ok = false;
    for (const auto& secret : secrets_)  // every secret is tried: the time does not say which matched
      ok |= CRYPTO_memcmp(hmac_hex(secret, body).data(), mac.data(), mac_hex) == 0;
    return ok;
  }

  std::vector<std::string> secrets_;
};

}  // namespace cachet::detail
