#pragma once
// Redis key names, one layout for the whole library:
//
//   {ns}:{name}:{id}           a value
//   {ns}:{name}:v{N}:{id}      a value in version N of a versioned namespace
//   {ns}:tag:{tag}             a tag set
//   {ns}:tagv:{{tag}}          a tag's version counter (Redis Cluster; the tag is the hash tag)
//   {ns}:tagepoch              bumped by every tag invalidation; a tagged load checks it
//   {ns}:lock:{key}            the lock of a value key
//   {ns}:ver:{name}            a namespace's version counter
//   {ns}:wb:{queue}            a write-behind stream (and {ns}:wb:{queue}:... beside it)
//   {{ns}:wb:{queue}:p<i>}      partition i of it, when partitioned (a cluster's default: 16;
//                              store/detail/queue_partitions.hpp), its slot its own
//   {ns}:wv:{key}              the version of the last versioned write-through of a value key
//   {ns}:wseq:{name}           a sequence that write-through writers may draw versions from
//
// Ids come from users and may hold anything. Bytes that would make two different
// ids look alike, or make a key awkward to read in redis-cli, are %-escaped: ':'
// (the separator), '%' (the escape itself), '{' '}' (cluster hash tags), space,
// control bytes and DEL. The escaping is injective, so distinct ids give distinct
// keys. An id whose escaped form is longer than `max_id_length` (an LLM prompt,
// say) is replaced by "%H" + its SHA-256 in hex; "%H" cannot appear in an escaped
// id (an escape is '%' and two hex digits), so a hashed id never equals a plain one.
//
// Namespaces and names are the application's constants: they must be non-empty
// and free of the bytes above (std::invalid_argument otherwise).
//
// Redis Cluster: with HashTag::entity, a value key and its lock hash to one slot
// ({ns}:{name}:{{id}} and {ns}:lock:{ns}:{name}:{{id}}); with HashTag::ns every key of
// the namespace does ({{ns}}:...), which atomic multi-key scripts (tags, versioned
// namespaces) need, at the price of putting the namespace on one shard.

#include <cachet/detail/escape_scan.hpp>
#include <cachet/detail/sha256.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cachet {

enum class HashTag {
  none,    // plain keys (a single Redis, or keys never used together on a cluster)
  entity,  // a value key shares its slot with its lock
  ns,      // every key of the namespace shares one slot
};

struct KeyOptions {
  HashTag hash_tag = HashTag::none;
  std::size_t max_id_length = 128;  // longer escaped ids are hashed
};

class KeyBuilder {
 public:
  explicit KeyBuilder(std::string ns, KeyOptions options = {}) : ns_(std::move(ns)), options_(options) {
    check_constant(ns_, "namespace");
    if (options_.max_id_length < 66) options_.max_id_length = 66;  // room for "%H" + 64 hex digits
    prefix_ = options_.hash_tag == HashTag::ns ? "{" + ns_ + "}" : ns_;
  }

  // {ns}:{name}:{id}, or {ns}:{name}:v{N}:{id} with a namespace version.
  std::string value(std::string_view name, std::string_view id, std::optional<std::uint64_t> ns_version = {}) const {
    return value_in(name_prefix(name, ns_version), id);
  }

  // "{ns}:{name}:" (with "v{N}:"), for callers that build many keys of one name:
  // value_in(name_prefix(name), id) == value(name, id), without re-checking the name.
  std::string name_prefix(std::string_view name, std::optional<std::uint64_t> ns_version = {}) const {
    check_constant(name, "name");
    std::string p = prefix_ + ":" + std::string(name) + ":";
    if (ns_version) p += "v" + std::to_string(*ns_version) + ":";
    return p;
  }

  std::string value_in(std::string_view name_prefix, std::string_view id) const {
    std::string key;  // one buffer: this runs on every cache hit
    append_value(key, name_prefix, id);
    return key;
  }

  // value_in into `out` (a std::string, or detail::KeyBuffer to build it on the stack).
  template <class Out>
  void append_value(Out& out, std::string_view name_prefix, std::string_view id) const {
    out.reserve(out.size() + name_prefix.size() + id.size() + 4);
    out.append(name_prefix);
    const bool tag = options_.hash_tag == HashTag::entity;
    if (tag) out += '{';
    // An empty tag "{}" hashes the whole key, which would part it from its lock's
    // slot; "%E" is no escape's output (those are "%" and two hex digits, or "%H").
    if (tag && id.empty()) out.append("%E");
    else append_safe_id(out, id);
    if (tag) out += '}';
  }

  std::string tag(std::string_view tag) const { return prefix_ + ":tag:" + safe_id(tag); }

  // A tag's version counter on Redis Cluster: the escaped tag (no braces left) is
  // the hash tag, so the counters of a namespace spread over the nodes.
  std::string tag_version(std::string_view tag) const { return tag_version_of_safe(safe_id(tag)); }
  // The same for a tag already in its key form (safe_id), as an entry's stamps hold it.
  std::string tag_version_of_safe(std::string_view safe) const { return prefix_ + ":tagv:{" + std::string(safe) + "}"; }
  // Bumped by every tag invalidation; a tagged load reads it before its loader and
  // its write checks it (after stamping on Redis Cluster, in its script on one server).
  std::string tag_epoch() const { return prefix_ + ":tagepoch"; }

  // The lock of a value key, built by value(): in the key's slot under HashTag::entity.
  std::string lock(std::string_view value_key) const { return prefix_ + ":lock:" + std::string(value_key); }

  std::string version(std::string_view name) const {
    check_constant(name, "name");
    return prefix_ + ":ver:" + std::string(name);
  }

  // The version of the last versioned write of a value key (write-through): in
  // the key's slot under HashTag::entity, like its lock.
  std::string write_version(std::string_view value_key) const { return prefix_ + ":wv:" + std::string(value_key); }

  std::string write_sequence(std::string_view name) const {
    check_constant(name, "name");
    return prefix_ + ":wseq:" + std::string(name);
  }

  std::string write_behind(std::string_view queue) const {
    check_constant(queue, "queue");
    return prefix_ + ":wb:" + std::string(queue);
  }

  // Every value key of `name` (all versions) as a SCAN MATCH pattern.
  std::string pattern(std::string_view name) const {
    check_constant(name, "name");
    std::string p;
    for (char c : prefix_ + ":" + std::string(name)) {  // glob metacharacters are literal here
      if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') p += '\\';
      p += c;
    }
    return p + ":*";
  }

  // The id as it appears in keys: escaped, or hashed when long.
  std::string safe_id(std::string_view id) const {
    std::string out;
    append_safe_id(out, id);
    return out;
  }

  template <class Out>
  void append_safe_id(Out& out, std::string_view id) const {
    const std::size_t start = out.size();
    append_escaped(out, id);
    if (out.size() - start <= options_.max_id_length) return;
    out.resize(start);
    out.append("%H");
    out.append(detail::sha256_hex(id));
  }

  const std::string& ns() const noexcept { return ns_; }
  const KeyOptions& options() const noexcept { return options_; }

  static constexpr bool escaped_byte(unsigned char c) noexcept {
    return c == ':' || c == '%' || c == '{' || c == '}' || c <= 0x20 || c == 0x7f;
  }
  // escaped_byte as one table load: every read builds its key through it.
  static bool needs_escape(unsigned char c) noexcept {
    static constexpr auto table = [] {
      std::array<bool, 256> t{};
      for (unsigned b = 0; b < 256; ++b) t[b] = escaped_byte(static_cast<unsigned char>(b));
      return t;
    }();
    return table[c];
  }

  static std::string escape(std::string_view id) {
    std::string out;
    append_escaped(out, id);
    return out;
  }

  // Appends the runs of bytes that need no escape whole: one append per run,
  // not per byte (an id of 36 bytes was 36 calls on every lookup).
  template <class Out>
  static void append_escaped(Out& out, std::string_view id) {
    static constexpr char hex[] = "0123456789ABCDEF";
    for (;;) {
      const std::size_t clean = clean_run(id);
      out.append(std::string_view(id.data(), clean));
      if (clean == id.size()) return;
      const auto c = static_cast<unsigned char>(id[clean]);
      const char escaped[3] = {'%', hex[c >> 4], hex[c & 0xf]};
      out.append(std::string_view(escaped, 3));
      id.remove_prefix(clean + 1);
    }
  }

 private:
  // How many bytes at the start of `id` need no escape: sixteen at a time (one
  // vector compare each on x86-64 and ARM), then byte by byte from the first
  // block that holds one (or the tail).
  static std::size_t clean_run(std::string_view id) noexcept {
    std::size_t i = 0;
    while (i + 16 <= id.size() && !detail::block_needs_escape(id.data() + i)) i += 16;
    while (i < id.size() && !needs_escape(static_cast<unsigned char>(id[i]))) ++i;
    return i;
  }

  static void check_constant(std::string_view s, const char* what) {
    if (s.empty()) throw std::invalid_argument(std::string("cachet key ") + what + " is empty");
    for (char c : s)
      if (needs_escape(static_cast<unsigned char>(c)))
        throw std::invalid_argument(std::string("cachet key ") + what + " '" + std::string(s) +
                                    "' holds a separator, brace, space or control byte");
  }

  std::string ns_;
  KeyOptions options_;
  std::string prefix_;
};

}  // namespace cachet
