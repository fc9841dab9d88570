#include <cachet/codec/encrypted.hpp>
#include <cachet/codec/json.hpp>
#include <cachet/codec/string.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/store/redis_store.hpp>
#ifdef CACHET_HAS_ZSTD
#include <cachet/codec/compressed.hpp>
#endif

#include <catch2/catch.hpp>
#include <support/product.hpp>
#include <support/server.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;
using cachet::Event;
using cachet::test::Product;
using cachet::test::sample_product;

namespace {

std::string key_bytes(char fill) { return std::string(cachet::KeyRing::key_size, fill); }

std::shared_ptr<const cachet::KeyRing> ring(std::initializer_list<std::pair<std::uint32_t, char>> keys) {
  auto r = std::make_shared<cachet::KeyRing>();
  for (auto [id, fill] : keys) r->add(id, key_bytes(fill));
  return r;
}

std::uint32_t key_id_of(std::string_view sealed) {
  std::uint32_t id = 0;
  for (std::size_t i = 0; i < 4; ++i) id |= std::uint32_t{static_cast<unsigned char>(sealed[1 + i])} << (8 * i);
  return id;
}

using SecretCodec = cachet::Encrypted<cachet::JsonCodec<Product>>;

}  // namespace

TEST_CASE("encrypted values round trip, bound to their key, with a fresh nonce each time") {
  static_assert(cachet::KeyedCodec<SecretCodec>);
  static_assert(!cachet::KeyedCodec<cachet::JsonCodec<Product>>);
  const SecretCodec codec(ring({{1, 'a'}}));
  const Product p = sample_product(7);
  const std::string sealed = codec.encode(p, "shop:product:7");
  CHECK(codec.decode(sealed, "shop:product:7") == p);
  CHECK(sealed.find(p.name) == std::string::npos);  // the plaintext is not in the stored bytes
  CHECK(sealed.size() == cachet::JsonCodec<Product>{}.encode(p).size() + 33);
  CHECK(codec.encode(p, "shop:product:7") != sealed);  // a random nonce per value
  CHECK_THROWS_AS(codec.decode(sealed, "shop:product:8"), cachet::DecodeError);  // another key
  CHECK_THROWS_AS(codec.decode(sealed), cachet::DecodeError);                    // no key

  const cachet::Encrypted<cachet::StringCodec> strings(ring({{1, 'a'}}));
  CHECK(strings.decode(strings.encode("", "k"), "k").empty());
  CHECK(strings.decode(strings.encode("unbound")) == "unbound");  // outside a cache: bound to no key
}

TEST_CASE("flipping any single byte of an encrypted value fails authentication") {
  const cachet::Encrypted<cachet::StringCodec> codec(ring({{1, 'a'}}));
  const std::string sealed = codec.encode("card 4111 1111 1111 1111", "pay:card:1");
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xFF}) {
      std::string tampered = sealed;
      tampered[i] = static_cast<char>(tampered[i] ^ mask);
      INFO("byte " << i << " xor " << int(mask));
      CHECK_THROWS_AS(codec.decode(tampered, "pay:card:1"), cachet::DecodeError);
    }
  }
  for (std::size_t n = 0; n < sealed.size(); ++n) {  // every truncation
    INFO("prefix of " << n);
    CHECK_THROWS_AS(codec.decode(std::string_view(sealed).substr(0, n), "pay:card:1"), cachet::DecodeError);
  }
  CHECK_THROWS_AS(codec.decode(sealed + "x", "pay:card:1"), cachet::DecodeError);
}

TEST_CASE("keys rotate: old values still read, new ones sealed with the newest key") {
  const cachet::Encrypted<cachet::StringCodec> before(ring({{1, 'a'}}));
  const cachet::Encrypted<cachet::StringCodec> after(ring({{2, 'b'}, {1, 'a'}}));
  const std::string old_value = before.encode("v1", "k");
  CHECK(key_id_of(old_value) == 1);
  CHECK(after.decode(old_value, "k") == "v1");
  const std::string new_value = after.encode("v2", "k");
  CHECK(key_id_of(new_value) == 2);
  CHECK(after.decode(new_value, "k") == "v2");
  CHECK_THROWS_AS(before.decode(new_value, "k"), cachet::DecodeError);  // key 2 unknown to the old ring

  const cachet::Encrypted<cachet::StringCodec> retired(ring({{2, 'b'}}));
  CHECK_THROWS_WITH(retired.decode(old_value, "k"), Catch::Contains("key id 1"));  // a missing key
  const cachet::Encrypted<cachet::StringCodec> wrong(ring({{1, 'z'}}));
  CHECK_THROWS_WITH(wrong.decode(old_value, "k"), Catch::Contains("does not authenticate"));  // a wrong key
}

TEST_CASE("a key ring refuses keys that are not 32 bytes, and ids given twice") {
  cachet::KeyRing r;
  for (std::size_t n : {0, 16, 31, 33, 64}) CHECK_THROWS_AS(r.add(1, std::string(n, 'k')), cachet::KeyError);
  CHECK(r.empty());
  CHECK_THROWS_AS(r.newest(), cachet::KeyError);
  r.add(3, key_bytes('k'));
  CHECK_THROWS_AS(r.add(3, key_bytes('j')), cachet::KeyError);
  r.add(1, key_bytes('j'));
  CHECK(r.newest().first == 3);
  CHECK(r.find(2) == nullptr);
  CHECK_THROWS_AS(SecretCodec(nullptr), cachet::KeyError);
  CHECK_THROWS_AS(SecretCodec(std::make_shared<cachet::KeyRing>()), cachet::KeyError);
  CHECK_THROWS_AS(cachet::KeyRing(1, "short"), cachet::KeyError);
}

#ifdef CACHET_HAS_ZSTD
TEST_CASE("encryption composes with compression: compressed, then encrypted") {
  using Packed = cachet::Compressed<cachet::StringCodec>;
  const auto keys = ring({{1, 'a'}});
  const cachet::Encrypted<Packed> codec(keys, Packed({.threshold = 1}));
  const std::string text(20'000, 'z');
  const std::string sealed = codec.encode(text, "k");
  CHECK(sealed.size() < 1000);  // compressed before it was encrypted
  CHECK(codec.decode(sealed, "k") == text);
  const cachet::Encrypted<cachet::StringCodec> opener(keys);
  CHECK(Packed::is_compressed(opener.decode(sealed, "k")));  // inside is a zstd frame
  CHECK_THROWS_AS(codec.decode(sealed, "other"), cachet::DecodeError);
}
#endif

// ---- in a cache, against a real server ----

namespace {

cachet::CacheOptions options(std::string name, cachet::Format format = cachet::Format::envelope) {
  cachet::CacheOptions o;
  o.ns = "enc";
  o.name = std::move(name);
  o.format = format;
  o.ttl = cachet::TtlPolicy({.fresh = 1min, .stale = 1min, .negative = 30s});
  return o;
}

using SecretCache = cachet::CacheAside<Product, SecretCodec>;

}  // namespace

TEST_CASE("a cache stores encrypted values and reads them back") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  for (auto format : {cachet::Format::envelope, cachet::Format::plain}) {
    SecretCache cache(cachet::RedisStore(pool), options(format == cachet::Format::plain ? "plain" : "env", format),
                      SecretCodec(ring({{1, 'a'}})));
    int loads = 0;
    auto load = [&](std::string_view id) { return ++loads, sample_product(std::stoll(std::string(id))); };
    CHECK(cache.get_or_load("7", load) == sample_product(7));
    CHECK(cache.get("7") == sample_product(7));
    const std::string_view ids[] = {"7", "8"};
    const auto many = cache.get_many(ids, [&](std::span<const std::string_view> missing) {
      std::vector<std::optional<Product>> out;
      for (auto id : missing) out.push_back(load(id));
      return out;
    });
    CHECK(many[1] == sample_product(8));
    CHECK(cache.get("8") == sample_product(8));  // the batch write was bound to its own key
    cache.set("9", sample_product(9));
    CHECK(cache.get("9") == sample_product(9));
    CHECK(loads == 2);
    CHECK(cache.metrics().value(Event::decode_error) == 0);
    auto conn = server.connect();
    const std::string stored = conn.command({"GET", cache.key("7")}).as_string();
    CHECK(stored.find(sample_product(7).name) == std::string::npos);
  }
}

TEST_CASE("in a cache, a tampered byte anywhere in a stored value is a miss and a decode error") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  for (auto format : {cachet::Format::envelope, cachet::Format::plain}) {
    SecretCache cache(cachet::RedisStore(pool), options(format == cachet::Format::plain ? "tp" : "te", format),
                      SecretCodec(ring({{1, 'a'}})));
    cache.set("1", sample_product(1));
    const std::string k = cache.key("1");
    const std::string good = conn.command({"GET", k}).as_string();
    std::uint64_t errors = 0;
    for (std::size_t i = 0; i < good.size(); ++i) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ 0x01);
      conn.command({"SET", k, bad});
      INFO("format " << int(format) << ", byte " << i << " of " << good.size());
      CHECK_FALSE(cache.get("1").has_value());
      CHECK(cache.metrics().value(Event::decode_error) == ++errors);
    }
    conn.command({"SET", k, good});
    CHECK(cache.get("1") == sample_product(1));  // the untouched bytes still read
  }
}

TEST_CASE("in a cache, a value copied under another key is a miss") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  SecretCache cache(cachet::RedisStore(pool), options("moved"), SecretCodec(ring({{1, 'a'}})));
  cachet::CacheOptions other_name = options("other");
  SecretCache other(cachet::RedisStore(pool), other_name, SecretCodec(ring({{1, 'a'}})));
  cache.set("alice", sample_product(1));
  const std::string alice = conn.command({"GET", cache.key("alice")}).as_string();
  conn.command({"SET", cache.key("mallory"), alice});  // same cache, another id
  CHECK_FALSE(cache.get("mallory").has_value());
  conn.command({"SET", other.key("alice"), alice});  // another cache, same id
  CHECK_FALSE(other.get("alice").has_value());
  CHECK(cache.metrics().value(Event::decode_error) == 1);
  CHECK(other.metrics().value(Event::decode_error) == 1);
  CHECK(cache.get("alice") == sample_product(1));
}

TEST_CASE("in a cache, rotation reads old values, writes with the newest key, and a wrong key misses") {
  auto& server = cachet::test::clean_server();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  const auto sealed_key_id = [&](const std::string& k) {
    const std::string bytes = conn.command({"GET", k}).as_string();
    return key_id_of(std::string_view(bytes).substr(cachet::envelope::header_size));
  };
  {
    SecretCache v1(cachet::RedisStore(pool), options("rot"), SecretCodec(ring({{1, 'a'}})));
    v1.set("old", sample_product(1));
    CHECK(sealed_key_id(v1.key("old")) == 1);
  }
  {
    SecretCache v2(cachet::RedisStore(pool), options("rot"), SecretCodec(ring({{1, 'a'}, {2, 'b'}})));
    CHECK(v2.get("old") == sample_product(1));
    v2.set("new", sample_product(2));
    CHECK(sealed_key_id(v2.key("new")) == 2);
    CHECK(v2.metrics().value(Event::decode_error) == 0);
  }
  {
    SecretCache retired(cachet::RedisStore(pool), options("rot"), SecretCodec(ring({{2, 'b'}})));
    CHECK_FALSE(retired.get("old").has_value());  // key 1 missing
    CHECK(retired.get("new") == sample_product(2));
    CHECK(retired.metrics().value(Event::decode_error) == 1);
  }
  SecretCache wrong(cachet::RedisStore(pool), options("rot"), SecretCodec(ring({{2, 'x'}})));
  int loads = 0;
  CHECK(wrong.get_or_load("new", [&](std::string_view) { return ++loads, sample_product(2); }) == sample_product(2));
  CHECK(loads == 1);  // a wrong key is a miss: loaded, not served
  CHECK(wrong.metrics().value(Event::decode_error) == 1);
  CHECK(wrong.get("new") == sample_product(2));  // and rewritten with the key it has
}
