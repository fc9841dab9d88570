#pragma once
// TLS settings for a connection to a data server or to a sentinel (docs/tls.md).

#include <string>

namespace cachet {

enum class TlsVersion { v1_2, v1_3 };

// TLS through OpenSSL (see docs/tls.md). Off by default.
struct TlsOptions {
  bool enabled = false;
  // Trusted CAs: a PEM bundle and/or a hashed directory; both empty: the system store.
  std::string ca_file{};
  std::string ca_dir{};
  // SNI and the name the certificate must carry; empty: ConnectionOptions::host.
  std::string server_name{};
  bool verify_hostname = true;
  // Mutual TLS: the client's certificate chain and private key (PEM).
  std::string cert_file{};
  std::string key_file{};
  TlsVersion min_version = TlsVersion::v1_2;
  // DEVELOPMENT ONLY: accepts any certificate from anyone, so anyone on the path
  // can read and change the traffic. Never set it in production.
  bool dangerously_skip_verification = false;
};

}  // namespace cachet
