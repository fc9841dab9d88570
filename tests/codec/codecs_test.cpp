// Round trips and corruption for every codec: JsonCodec, MsgPackCodec, CborCodec
// (json.hpp, msgpack.hpp) and StringCodec (string.hpp).
#include <cachet/codec/json.hpp>
#include <cachet/codec/msgpack.hpp>
#include <cachet/codec/string.hpp>

#include <catch2/catch.hpp>
#include <support/product.hpp>

#include <limits>
#include <random>
#include <string>

using cachet::test::Product;
using cachet::test::sample_product;
using nlohmann::json;

TEMPLATE_TEST_CASE("structured codecs round-trip nested, unicode, empty and 10 MB values", "",
                   cachet::JsonCodec<Product>, cachet::MsgPackCodec<Product>, cachet::CborCodec<Product>) {
  static_assert(cachet::CodecFor<TestType, Product>);
  const TestType codec;

  const Product p = sample_product();
  CHECK(codec.decode(codec.encode(p)) == p);

  const Product empty{};
  CHECK(codec.decode(codec.encode(empty)) == empty);

  Product big = sample_product(7);
  big.description.assign(10u << 20, 'x');  // 10 MiB
  big.description[12345] = '\n';
  const std::string bytes = codec.encode(big);
  CHECK(bytes.size() > (10u << 20));
  CHECK(codec.decode(bytes) == big);
}

TEMPLATE_TEST_CASE("structured codecs carry any JSON value", "", cachet::JsonCodec<json>, cachet::MsgPackCodec<json>,
                   cachet::CborCodec<json>) {
  const TestType codec;
  const json values[] = {
      json::object(),
      json::array(),
      json(""),
      json(nullptr),
      json::parse(R"({"a":{"b":{"c":[1,2,{"d":"\u00e9\u4e2d\ud83d\ude00"}]}},"n":-1.5e300,"t":true})"),
      json(std::string("nul\0inside", 10)),
  };
  for (const auto& v : values) CHECK(codec.decode(codec.encode(v)) == v);
}

TEMPLATE_TEST_CASE("structured codecs reject truncated, random and foreign bytes with DecodeError", "",
                   cachet::JsonCodec<Product>, cachet::MsgPackCodec<Product>, cachet::CborCodec<Product>) {
  const TestType codec;
  const std::string good = codec.encode(sample_product());

  for (std::size_t n = 0; n < good.size(); ++n) {  // every truncation
    INFO("prefix of " << n << " bytes");
    CHECK_THROWS_AS(codec.decode(std::string_view(good).substr(0, n)), cachet::DecodeError);
  }

  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string junk(rng() % 64, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    try {
      (void)codec.decode(junk);
    } catch (const cachet::DecodeError&) {
    }  // anything but DecodeError escapes and fails the test
  }

  // Valid encoding, wrong shape: a JSON array where a Product is expected.
  CHECK_THROWS_AS(codec.decode(cachet::JsonCodec<json>{}.encode(json::array({1, 2}))), cachet::DecodeError);
  CHECK_THROWS_WITH(codec.decode(std::string("\xff\xfe", 2)), Catch::Contains("invalid"));
}

TEST_CASE("another codec's output is a DecodeError, not a wrong value") {
  const Product p = sample_product();
  const std::string as_json = cachet::JsonCodec<Product>{}.encode(p);
  const std::string as_msgpack = cachet::MsgPackCodec<Product>{}.encode(p);
  const std::string as_cbor = cachet::CborCodec<Product>{}.encode(p);
  CHECK_THROWS_AS(cachet::JsonCodec<Product>{}.decode(as_msgpack), cachet::DecodeError);
  CHECK_THROWS_AS(cachet::JsonCodec<Product>{}.decode(as_cbor), cachet::DecodeError);
  CHECK_THROWS_AS(cachet::MsgPackCodec<Product>{}.decode(as_json), cachet::DecodeError);
  CHECK_THROWS_AS(cachet::MsgPackCodec<Product>{}.decode(as_cbor), cachet::DecodeError);
  CHECK_THROWS_AS(cachet::CborCodec<Product>{}.decode(as_json), cachet::DecodeError);
  CHECK_THROWS_AS(cachet::CborCodec<Product>{}.decode(as_msgpack), cachet::DecodeError);
}

TEST_CASE("JSON stays readable text") {
  const std::string text = cachet::JsonCodec<Product>{}.encode(sample_product());
  CHECK(text.front() == '{');
  CHECK(json::parse(text)["price"]["currency"] == "EUR");
}

TEST_CASE("a value JSON cannot hold is an EncodeError") {
  const json invalid_utf8 = std::string("\xff\xfe bad", 6);
  CHECK_THROWS_AS(cachet::JsonCodec<json>{}.encode(invalid_utf8), cachet::EncodeError);
}

namespace {
struct Strict {
  int v = 0;
};
void to_json(json& j, const Strict& s) { j = s.v; }
void from_json(const json& j, Strict& s) {
  s.v = j.get<int>();
  if (s.v < 0) throw std::domain_error("negative");
}
}  // namespace

TEST_CASE("a user's from_json that throws becomes a DecodeError") {
  const cachet::JsonCodec<Strict> codec;
  CHECK(codec.decode(codec.encode(Strict{5})).v == 5);
  CHECK_THROWS_AS(codec.decode("-3"), cachet::DecodeError);
}

namespace {
// Product reads its integers with a check (support/product.hpp): each of these
// would otherwise reach nlohmann's unchecked float-to-integer cast.
template <template <class> class Codec>
void refuses_numbers_that_do_not_fit_an_integer_field() {
  json j = sample_product();
  for (const json& bad : {json(2.2e88), json(-1e300), json(42.5), json(std::numeric_limits<std::uint64_t>::max())}) {
    INFO(bad.dump());
    j["id"] = bad;
    CHECK_THROWS_AS(Codec<Product>{}.decode(Codec<json>{}.encode(j)), cachet::DecodeError);
  }
}
}  // namespace

TEST_CASE("a number that does not fit an integer field is a DecodeError when from_json checks, as the README shows") {
  refuses_numbers_that_do_not_fit_an_integer_field<cachet::JsonCodec>();
  refuses_numbers_that_do_not_fit_an_integer_field<cachet::MsgPackCodec>();
  refuses_numbers_that_do_not_fit_an_integer_field<cachet::CborCodec>();
}

TEST_CASE("StringCodec keeps bytes as they are") {
  static_assert(cachet::CodecFor<cachet::StringCodec, std::string>);
  const cachet::StringCodec codec;
  const std::string bytes("\0\r\n%s\xff", 6);
  CHECK(codec.encode(bytes) == bytes);
  CHECK(codec.decode(bytes) == bytes);
  CHECK(codec.decode("").empty());
  const std::string big(10u << 20, 'b');
  CHECK(codec.decode(codec.encode(big)) == big);
}

TEST_CASE("codec ids are distinct") {
  CHECK(cachet::StringCodec::id != cachet::JsonCodec<json>::id);
  CHECK(cachet::JsonCodec<json>::id != cachet::MsgPackCodec<json>::id);
  CHECK(cachet::MsgPackCodec<json>::id != cachet::CborCodec<json>::id);
}
