#pragma once
// The OpenSSL SSL_CTX behind TLS connections: built once per distinct TlsOptions
// and shared (a pool of 8 reads its CA bundle and key once, not 8 times). The
// cache holds contexts weakly, so one no connection uses any more is freed, and
// certificate files rotated on disk are read again by the next connection.

#include <cachet/redis/errors.hpp>
#include <cachet/redis/options.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include <sys/stat.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

namespace cachet::detail {

// OpenSSL's oldest queued error as text ("" when none), clearing the queue. The
// text names a reason and a file, never a key's bytes.
inline std::string take_openssl_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return {};
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

// Set on an SSL when the server asked for a client certificate and we had none.
inline int tls_client_cert_requested_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

class TlsContextCache {
 public:
  using Ptr = std::shared_ptr<SSL_CTX>;

  // The shared context for `tls`; throws ConfigError naming the option whose file
  // cannot be used.
  static Ptr get(const TlsOptions& tls) {
    static TlsContextCache cache;
    return cache.find_or_build(tls);
  }

  // How many contexts were built so far (tests check the sharing).
  static int builds() noexcept { return builds_counter().load(); }

 private:
  // The options, and the files' stamps: a file rotated on disk gives new
  // connections a new context (connections still open keep theirs).
  using Key = std::tuple<std::string, std::string, std::string, std::string, int, bool, std::string>;

  // Modification time, size and inode of each file named (one stat() each, per connection opened).
  static std::string file_stamps(const TlsOptions& tls) {
    std::string stamps;
    for (const std::string* file : {&tls.ca_file, &tls.ca_dir, &tls.cert_file, &tls.key_file}) {
      struct stat st {};
      if (!file->empty() && ::stat(file->c_str(), &st) == 0)
        stamps += fmt::format("{}.{}/{}/{}", st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_size, st.st_ino);
      stamps += ';';
    }
    return stamps;
  }

  static std::atomic<int>& builds_counter() noexcept {
    static std::atomic<int> n{0};
    return n;
  }

  Ptr find_or_build(const TlsOptions& tls) {
    const Key key{tls.ca_file, tls.ca_dir, tls.cert_file, tls.key_file, static_cast<int>(tls.min_version),
                  tls.dangerously_skip_verification, file_stamps(tls)};
    std::lock_guard lock(mutex_);
    if (auto found = contexts_[key].lock()) return found;
    std::erase_if(contexts_, [](const auto& entry) { return entry.second.expired(); });  // options no longer used
    Ptr built = build(tls);
    ++builds_counter();
    contexts_[key] = built;
    return built;
  }

  static Ptr build(const TlsOptions& tls) {
    Ptr ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
    if (!ctx) throw ConfigError("redis: cannot create an OpenSSL TLS context: " + take_openssl_error());
    SSL_CTX_set_min_proto_version(ctx.get(), tls.min_version == TlsVersion::v1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    // A peer closing without close_notify is an ordinary closed connection here.
    SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_client_cert_cb(ctx.get(), [](SSL* ssl, X509**, EVP_PKEY**) {
      SSL_set_ex_data(ssl, tls_client_cert_requested_index(), ssl);  // any non-null mark
      return 0;                                                      // we have none to send
    });
    if (!tls.dangerously_skip_verification) {
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
      load_trust(ctx.get(), tls);
    }
    if (!tls.cert_file.empty() || !tls.key_file.empty()) load_client_identity(ctx.get(), tls);
    return ctx;
  }

  static void load_trust(SSL_CTX* ctx, const TlsOptions& tls) {
    if (tls.ca_file.empty() && tls.ca_dir.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx) != 1)
        throw ConfigError("redis: cannot load the system's trusted CAs (set TlsOptions::ca_file): " +
                          take_openssl_error());
      return;
    }
    if (!tls.ca_file.empty() && SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) != 1)
      throw ConfigError(fmt::format("redis: TlsOptions::ca_file '{}' cannot be read as PEM certificates: {}",
                                    tls.ca_file, take_openssl_error()));
    if (!tls.ca_dir.empty() && SSL_CTX_load_verify_locations(ctx, nullptr, tls.ca_dir.c_str()) != 1)
      throw ConfigError(fmt::format("redis: TlsOptions::ca_dir '{}' cannot be used: {}", tls.ca_dir,
                                    take_openssl_error()));
  }

  static void load_client_identity(SSL_CTX* ctx, const TlsOptions& tls) {
    if (tls.cert_file.empty() || tls.key_file.empty())
      throw ConfigError("redis: mutual TLS needs both TlsOptions::cert_file and TlsOptions::key_file");
    if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1)
      throw ConfigError(fmt::format("redis: TlsOptions::cert_file '{}' cannot be read as a PEM certificate: {}",
                                    tls.cert_file, take_openssl_error()));
    // An encrypted key would make OpenSSL prompt on the terminal: refuse it instead.
    SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });
    if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      throw ConfigError(fmt::format("redis: TlsOptions::key_file '{}' cannot be read as a PEM private key "
                                    "(or it is encrypted): {}", tls.key_file, take_openssl_error()));
    if (SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      throw ConfigError(fmt::format("redis: TlsOptions::key_file '{}' is not the key of TlsOptions::cert_file '{}'",
                                    tls.key_file, tls.cert_file));
    }
  }

  std::mutex mutex_;
  std::map<Key, std::weak_ptr<SSL_CTX>> contexts_;
};

}  // namespace cachet::detail
