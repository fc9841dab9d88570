#pragma once
// Throwaway certificates for TLS tests, made in-process with libcrypto (no
// `openssl` command needed): a CA, a server certificate it signs (for
// IP:127.0.0.1 and DNS:localhost), a client certificate it signs (mutual TLS),
// and a second, unrelated CA whose bundle trusts none of them (the wrong-CA case).
// EC P-256 keys, valid for a day. Never use them for anything but tests.
//
//   auto files = cachet::testing::make_tls_certificates("/tmp/my-test-dir");
//   // files.ca_cert, files.server_cert, files.server_key, files.client_cert, ...

#include <cachet/error.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

namespace cachet::testing {

struct TlsCertificateFiles {
  std::string ca_cert;      // trusts server_cert and client_cert
  std::string server_cert;  // SAN IP:127.0.0.1, DNS:localhost
  std::string server_key;
  std::string client_cert;  // CN=cachet-test-client
  std::string client_key;
  std::string other_ca_cert;  // an unrelated CA: trusts none of the above
};

namespace tls_detail {

struct KeyFree {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const noexcept { X509_free(c); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

inline Key make_key() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) throw Error("make_tls_certificates: cannot generate a key");
  return key;
}

inline void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext || X509_add_ext(cert, ext, -1) != 1) throw Error("make_tls_certificates: bad extension");
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`, signed by `issuer_key` (self-signed when
// `issuer` is null), with `extensions` as {nid, value} pairs.
inline Cert make_cert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, long serial,
                      std::initializer_list<std::pair<int, const char*>> extensions) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509* signer = issuer ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  for (const auto& [nid, value] : extensions) add_extension(cert.get(), signer, nid, value);
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) throw Error("make_tls_certificates: cannot sign");
  return cert;
}

template <class Write>
void write_pem(const std::string& path, Write write) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "w"), std::fclose);
  if (!f || write(f.get()) != 1) throw Error("make_tls_certificates: cannot write " + path);
}

inline void write_cert(const std::string& path, X509* cert) {
  write_pem(path, [&](FILE* f) { return PEM_write_X509(f, cert); });
}
inline void write_key(const std::string& path, EVP_PKEY* key) {
  write_pem(path, [&](FILE* f) { return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr); });
}

}  // namespace tls_detail

// Writes the files into `dir` (which must exist) and returns their paths.
inline TlsCertificateFiles make_tls_certificates(const std::string& dir) {
  using namespace tls_detail;
  const std::initializer_list<std::pair<int, const char*>> ca_ext = {
      {NID_basic_constraints, "critical,CA:TRUE"}, {NID_key_usage, "critical,keyCertSign,cRLSign"},
      {NID_subject_key_identifier, "hash"}};
  Key ca_key = make_key(), other_key = make_key(), server_key = make_key(), client_key = make_key();
  Cert ca = make_cert(ca_key.get(), "cachet test CA", nullptr, ca_key.get(), 1, ca_ext);
  Cert other = make_cert(other_key.get(), "cachet unrelated CA", nullptr, other_key.get(), 1, ca_ext);
  Cert server = make_cert(server_key.get(), "localhost", ca.get(), ca_key.get(), 2,
                          {{NID_basic_constraints, "CA:FALSE"},
                           {NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"},
                           {NID_ext_key_usage, "serverAuth"}});
  Cert client = make_cert(client_key.get(), "cachet-test-client", ca.get(), ca_key.get(), 3,
                          {{NID_basic_constraints, "CA:FALSE"}, {NID_ext_key_usage, "clientAuth"}});
  TlsCertificateFiles files{dir + "/ca.crt",     dir + "/server.crt", dir + "/server.key",
                            dir + "/client.crt", dir + "/client.key", dir + "/other-ca.crt"};
  write_cert(files.ca_cert, ca.get());
  write_cert(files.other_ca_cert, other.get());
  write_cert(files.server_cert, server.get());
  write_key(files.server_key, server_key.get());
  write_cert(files.client_cert, client.get());
  write_key(files.client_key, client_key.get());
  return files;
}

}  // namespace cachet::testing
