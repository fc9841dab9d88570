#include <cachet/codec/entry.hpp>
#include <cachet/codec/json.hpp>
#include <cachet/codec/msgpack.hpp>
#include <cachet/codec/string.hpp>
#ifdef CACHET_HAS_ZSTD
#include <cachet/codec/compressed.hpp>
#endif

#include <cachet/ttl.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>
#include <support/product.hpp>

#include <chrono>

using namespace std::chrono_literals;
using cachet::test::Product;
using cachet::test::sample_product;

namespace {
cachet::EntryMeta meta_at(std::chrono::system_clock::time_point t) {
  cachet::EntryMeta m;
  m.created_at = t;
  m.fresh_until = t + 1min;
  m.compute_time = 15ms;
  return m;
}
const auto t0 = std::chrono::system_clock::time_point(1'800'000'000'000ms);
}  // namespace

TEST_CASE("envelope format keeps the metadata with the value") {
  const cachet::EntryCodec<cachet::JsonCodec<Product>> codec;
  const auto d = codec.decode(codec.encode(sample_product(), meta_at(t0)));
  REQUIRE(d.value);
  CHECK(*d.value == sample_product());
  CHECK(d.meta.created_at == t0);
  CHECK(d.meta.fresh_until == t0 + 1min);
  CHECK(d.meta.compute_time == 15ms);
  CHECK_FALSE(d.meta.negative);

  const auto n = codec.decode(codec.encode_negative(meta_at(t0)));
  CHECK_FALSE(n.value);
  CHECK(n.meta.negative);
}

TEST_CASE("plain format is just the codec's bytes") {
  const cachet::EntryCodec<cachet::JsonCodec<Product>> codec(cachet::Format::plain);
  const std::string bytes = codec.encode(sample_product(), meta_at(t0));
  CHECK(bytes == cachet::JsonCodec<Product>{}.encode(sample_product()));  // what redis-cli GET shows
  const auto d = codec.decode(bytes);
  REQUIRE(d.value);
  CHECK(*d.value == sample_product());
  CHECK(d.meta.fresh_until == cachet::EntryMeta::time_point::max());  // Redis' TTL is the only expiry

  const auto n = codec.decode(codec.encode_negative(meta_at(t0)));
  CHECK_FALSE(n.value);
  CHECK(n.meta.negative);
}

TEST_CASE("an entry from another codec or format is a DecodeError") {
  const cachet::EntryCodec<cachet::JsonCodec<Product>> json_entries;
  const cachet::EntryCodec<cachet::MsgPackCodec<Product>> msgpack_entries;
  const cachet::EntryCodec<cachet::JsonCodec<Product>> plain_json(cachet::Format::plain);
  const std::string as_msgpack = msgpack_entries.encode(sample_product(), meta_at(t0));
  CHECK_THROWS_WITH(json_entries.decode(as_msgpack), Catch::Contains("codec 3"));
  CHECK_THROWS_AS(json_entries.decode(plain_json.encode(sample_product(), meta_at(t0))), cachet::DecodeError);
  CHECK_THROWS_AS(plain_json.decode(json_entries.encode(sample_product(), meta_at(t0))), cachet::DecodeError);
  CHECK_THROWS_AS(json_entries.decode(""), cachet::DecodeError);
}

TEST_CASE("the plain negative marker is no valid JSON, MessagePack or CBOR value") {
  const std::string marker(cachet::plain_negative_marker);
  CHECK_THROWS_AS(cachet::JsonCodec<nlohmann::json>{}.decode(marker), cachet::DecodeError);
  CHECK_THROWS_AS(cachet::MsgPackCodec<nlohmann::json>{}.decode(marker), cachet::DecodeError);
  CHECK_THROWS_AS(cachet::CborCodec<nlohmann::json>{}.decode(marker), cachet::DecodeError);
}

TEST_CASE("a deeply nested payload is a DecodeError in either format, and the codec's max_depth applies") {
  const std::string deep = std::string(200'000, '\x91') + '\xc0';  // MessagePack arrays in arrays
  using Codec = cachet::MsgPackCodec<nlohmann::json>;
  const cachet::EntryCodec<Codec> entries;
  CHECK_THROWS_WITH(entries.decode(cachet::envelope::encode(Codec::id, meta_at(t0), deep)),
                    Catch::Contains("nested deeper"));
  CHECK_THROWS_WITH(cachet::EntryCodec<Codec>(cachet::Format::plain).decode(deep), Catch::Contains("nested deeper"));
  const cachet::EntryCodec<Codec> raised(cachet::Format::plain, Codec{.max_depth = 300});
  CHECK(raised.decode(std::string_view(deep).substr(deep.size() - 301)).value->is_array());
}

#ifdef CACHET_HAS_ZSTD
TEST_CASE("the envelope flags compressed payloads, and checks the flag") {
  using Codec = cachet::Compressed<cachet::JsonCodec<Product>>;
  const cachet::EntryCodec<Codec> codec(cachet::Format::envelope, Codec({.threshold = 1}));
  const std::string bytes = codec.encode(sample_product(), meta_at(t0));
  const auto view = cachet::envelope::decode(bytes);
  CHECK(view.compressed);
  CHECK(*codec.decode(bytes).value == sample_product());

  std::string lying = bytes;
  lying[4] = 0;  // clear the compressed flag
  CHECK_THROWS_WITH(codec.decode(lying), Catch::Contains("compressed flag"));
}
#endif

TEST_CASE("entries survive a round trip through Redis byte for byte") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  const cachet::TtlPolicy ttl({.fresh = 1min, .stale = 1min, .jitter = 0.1});
  const auto now = std::chrono::system_clock::now();
  const auto expiry = ttl.expiry("product", now);
  cachet::EntryMeta meta;
  meta.created_at = now;
  meta.fresh_until = expiry.fresh_until;

  const cachet::EntryCodec<cachet::MsgPackCodec<Product>> enveloped;
  conn.command({"SET", "enveloped", enveloped.encode(sample_product(), meta), "PX", expiry.ttl.count()});
  const auto back = enveloped.decode(conn.command({"GET", "enveloped"}).as_string());
  CHECK(*back.value == sample_product());
  CHECK(std::chrono::abs(back.meta.fresh_until - meta.fresh_until) < 1ms);
  const auto pttl = std::chrono::milliseconds(conn.command({"PTTL", "enveloped"}).as_integer());
  CHECK(pttl > 100s);  // fresh + stale, jittered: 108 s .. 132 s
  CHECK(pttl <= 132s);

  // Plain JSON is what redis-cli GET (or a service in another language) sees.
  const cachet::EntryCodec<cachet::JsonCodec<Product>> plain(cachet::Format::plain);
  conn.command({"SET", "plain", plain.encode(sample_product(), meta)});
  const auto text = conn.command({"GET", "plain"}).as_string();
  CHECK(nlohmann::json::parse(text)["id"] == 42);
  CHECK(*plain.decode(text).value == sample_product());

  // Foreign bytes written by someone else are a DecodeError (a miss), not a crash.
  conn.command({"SET", "foreign", "\xCA\xCE garbage"});
  CHECK_THROWS_AS(enveloped.decode(conn.command({"GET", "foreign"}).as_string()), cachet::DecodeError);
}
