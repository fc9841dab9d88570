#pragma once
// AES-256-GCM encryption as a codec wrapper: Encrypted<JsonCodec<User>>, or
// Encrypted<Compressed<JsonCodec<User>>> (compress, then encrypt: ciphertext
// does not compress). OpenSSL's libcrypto (EVP), which cachet links for TLS.
//
// Layout (docs/encryption.md):
//
//   offset size  field
//        0    1  format (0xE1)
//        1    4  key id (uint32, little-endian)
//        5   12  nonce, random per value (RAND_bytes)
//       17    -  ciphertext of the inner codec's bytes
//     n-16   16  GCM tag
//
// Associated data: the first 5 bytes, then the `key` given (in a cache, the
// entry's binding: its Redis key and envelope metadata, codec/entry.hpp). A
// value copied under another key, altered in any byte, or sealed with a key
// this ring does not hold fails authentication: a DecodeError, which the
// cache counts as a miss.

#include <cachet/codec/concepts.hpp>
#include <cachet/codec/errors.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>

namespace cachet {

// A key that cannot be used: not 32 bytes, or an id given twice.
class KeyError : public Error {
 public:
  using Error::Error;
};

// The AES-256 keys by id. Encrypts with the newest (highest id: ids grow with
// each rotation, so every process agrees), decrypts with any. Key bytes are
// wiped when the ring goes; it is not copyable, so no copy escapes that.
class KeyRing {
 public:
  static constexpr std::size_t key_size = 32;
  using Key = std::array<unsigned char, key_size>;

  KeyRing() = default;
  KeyRing(std::uint32_t id, std::string_view key) { add(id, key); }
  KeyRing(const KeyRing&) = delete;
  KeyRing& operator=(const KeyRing&) = delete;
  KeyRing(KeyRing&&) noexcept = default;  // map nodes move: no key bytes are copied
  KeyRing& operator=(KeyRing&& other) noexcept {
    wipe();
    keys_ = std::move(other.keys_);
    return *this;
  }
  ~KeyRing() { wipe(); }

  // `key`: 32 raw bytes (not hex, not a passphrase). Throws KeyError.
  KeyRing& add(std::uint32_t id, std::string_view key) {
    if (key.size() != key_size)
      throw KeyError("cachet: an AES-256 key is 32 bytes, key " + std::to_string(id) + " has " +
                     std::to_string(key.size()));
    auto [it, inserted] = keys_.try_emplace(id);
    if (!inserted) throw KeyError("cachet: key id " + std::to_string(id) + " given twice");
    std::copy(key.begin(), key.end(), it->second.begin());
    return *this;
  }

  bool empty() const noexcept { return keys_.empty(); }
  // The key new values are sealed with. Throws KeyError when the ring is empty.
  std::pair<std::uint32_t, const Key*> newest() const {
    if (keys_.empty()) throw KeyError("cachet: the key ring is empty");
    const auto& [id, key] = *keys_.rbegin();
    return {id, &key};
  }
  // nullptr when the ring does not hold `id`.
  const Key* find(std::uint32_t id) const noexcept {
    const auto it = keys_.find(id);
    return it == keys_.end() ? nullptr : &it->second;
  }

 private:
  void wipe() noexcept {
    for (auto& [id, key] : keys_) OPENSSL_cleanse(key.data(), key.size());
  }

  std::map<std::uint32_t, Key> keys_;
};

namespace detail {

inline constexpr unsigned char sealed_format = 0xE1;
inline constexpr std::size_t sealed_header = 1 + 4;  // format, key id: authenticated
inline constexpr std::size_t nonce_size = 12, tag_size = 16;
inline constexpr std::size_t sealed_overhead = sealed_header + nonce_size + tag_size;

struct FreeCipher {
  void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, FreeCipher>;

// Zeroes a plaintext buffer when it goes, thrown past or not. A moved-from
// short string keeps its characters in its inline buffer: those are wiped too.
struct Wiped {
  std::string bytes;
  explicit Wiped(std::string&& b) noexcept : bytes(std::move(b)) { wipe(b); }
  Wiped(Wiped&& other) noexcept : bytes(std::move(other.bytes)) { wipe(other.bytes); }
  Wiped& operator=(Wiped&&) = delete;
  ~Wiped() { wipe(bytes); }

  // Over the whole capacity: resizing within it cannot reallocate.
  static void wipe(std::string& s) noexcept {
    s.resize(s.capacity());
    OPENSSL_cleanse(s.data(), s.size());
    s.clear();
  }
};

template <class E>
void check(int ok, const char* what) {
  if (ok != 1) throw E(std::string("cachet: AES-256-GCM ") + what + " failed");
}

// A GCM context started to seal or open, with `header` then `key_name` as associated data.
template <class E>
CipherContext gcm_start(bool seal, const KeyRing::Key& key, const unsigned char* nonce, std::string_view header,
                        std::string_view key_name) {
  CipherContext ctx(EVP_CIPHER_CTX_new());
  if (!ctx) throw std::bad_alloc();
  const auto init = seal ? EVP_EncryptInit_ex : EVP_DecryptInit_ex;
  const auto update = seal ? EVP_EncryptUpdate : EVP_DecryptUpdate;
  check<E>(init(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce), "init");
  int n = 0;
  for (std::string_view ad : {header, key_name}) {
    if (ad.size() > INT_MAX) throw E("cachet: AES-256-GCM associated data over 2 GiB");
    if (!ad.empty())
      check<E>(update(ctx.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(ad.data()), static_cast<int>(ad.size())),
               "associated data");
  }
  return ctx;
}

// Sealed bytes of `plain` for Redis key `key_name`, with the ring's newest key.
inline std::string seal(const KeyRing& ring, std::string_view plain, std::string_view key_name) {
  if (plain.size() > INT_MAX - sealed_overhead) throw EncodeError("cachet: value over 2 GiB, too long to encrypt");
  const auto [id, key] = ring.newest();
  std::string out(sealed_overhead + plain.size(), '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  o[0] = sealed_format;
  for (std::size_t i = 0; i < 4; ++i) o[1 + i] = static_cast<unsigned char>(id >> (8 * i));
  unsigned char* nonce = o + sealed_header;
  if (RAND_bytes(nonce, nonce_size) != 1) throw EncodeError("cachet: RAND_bytes failed, no nonce to encrypt with");
  CipherContext ctx = gcm_start<EncodeError>(true, *key, nonce, out.substr(0, sealed_header), key_name);
  unsigned char* body = nonce + nonce_size;
  int n = 0, last = 0;
  check<EncodeError>(EVP_EncryptUpdate(ctx.get(), body, &n, reinterpret_cast<const unsigned char*>(plain.data()),
                                       static_cast<int>(plain.size())),
                     "encrypt");
  check<EncodeError>(EVP_EncryptFinal_ex(ctx.get(), body + n, &last), "final");
  check<EncodeError>(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, tag_size, body + plain.size()), "tag");
  return out;
}

// The plaintext of `sealed` for Redis key `key_name`. Throws DecodeError when it does not authenticate.
inline Wiped open(const KeyRing& ring, std::string_view sealed, std::string_view key_name) {
  if (sealed.size() < sealed_overhead || sealed.size() > INT_MAX)
    throw DecodeError("cachet: encrypted value of " + std::to_string(sealed.size()) + " bytes, not a sealed value");
  const auto* s = reinterpret_cast<const unsigned char*>(sealed.data());
  if (s[0] != sealed_format) throw DecodeError("cachet: not an encrypted value (format byte)");
  std::uint32_t id = 0;
  for (std::size_t i = 0; i < 4; ++i) id |= std::uint32_t{s[1 + i]} << (8 * i);
  const KeyRing::Key* key = ring.find(id);
  if (!key) throw DecodeError("cachet: encrypted with key id " + std::to_string(id) + ", which the key ring lacks");
  const unsigned char* nonce = s + sealed_header;
  const std::size_t body_size = sealed.size() - sealed_overhead;
  CipherContext ctx = gcm_start<DecodeError>(false, *key, nonce, sealed.substr(0, sealed_header), key_name);
  Wiped plain(std::string(body_size, '\0'));
  auto* p = reinterpret_cast<unsigned char*>(plain.bytes.data());
  int n = 0, last = 0;
  check<DecodeError>(EVP_DecryptUpdate(ctx.get(), p, &n, nonce + nonce_size, static_cast<int>(body_size)), "decrypt");
  unsigned char tag[tag_size];
  std::copy(s + sealed.size() - tag_size, s + sealed.size(), tag);
  check<DecodeError>(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, tag_size, tag), "tag");
  if (EVP_DecryptFinal_ex(ctx.get(), p + n, &last) != 1)
    throw DecodeError("cachet: encrypted value does not authenticate (altered, moved to another key, or another key)");
  return plain;
}

}  // namespace detail

template <Codec Inner>
class Encrypted {
  static_assert(!KeyedCodec<Inner>, "cachet: Encrypted<Inner> wraps an unkeyed codec (encrypt once, outermost)");

 public:
  using value_type = typename Inner::value_type;
  static constexpr std::uint8_t id = Inner::id;

  // Throws KeyError for a null or empty ring.
  explicit Encrypted(std::shared_ptr<const KeyRing> keys, Inner inner = {}) : keys_(std::move(keys)), inner_(std::move(inner)) {
    if (!keys_ || keys_->empty()) throw KeyError("cachet: Encrypted needs a key ring with at least one key");
  }

  // Bound to Redis key `key`: only decode with the same key opens it. Throws EncodeError.
  std::string encode(const value_type& value, std::string_view key) const {
    const detail::Wiped plain(inner_.encode(value));
    return detail::seal(*keys_, plain.bytes, key);
  }
  // Throws DecodeError when the bytes do not authenticate for `key`, or the inner codec refuses them.
  value_type decode(std::string_view bytes, std::string_view key) const {
    const detail::Wiped plain = detail::open(*keys_, bytes, key);
    return inner_.decode(plain.bytes);
  }

  // Bound to no key (empty associated data), for use outside a cache; a cache always passes its key.
  std::string encode(const value_type& value) const { return encode(value, {}); }
  value_type decode(std::string_view bytes) const { return decode(bytes, {}); }

  const KeyRing& keys() const noexcept { return *keys_; }

 private:
  std::shared_ptr<const KeyRing> keys_;
  Inner inner_;
};

}  // namespace cachet
