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
#include <type_traits>
#include <vector>

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

namespace {
// A value nested `levels` deep in each format: arrays of one element around a null.
std::string nested(cachet::JsonCodec<json>, std::size_t levels) {
  return std::string(levels, '[') + "null" + std::string(levels, ']');
}
std::string nested(cachet::MsgPackCodec<json>, std::size_t levels) { return std::string(levels, '\x91') + '\xc0'; }
std::string nested(cachet::CborCodec<json>, std::size_t levels) { return std::string(levels, '\x81') + '\xf6'; }
// CBOR's indefinite-length arrays, each closed by a break (0xff).
std::string nested_indefinite_cbor(std::size_t levels) {
  return std::string(levels, '\x9f') + '\xf6' + std::string(levels, '\xff');
}
// Maps {"k": {"k": ... null}}: objects nest as deep as arrays.
std::string nested_maps(cachet::JsonCodec<json>, std::size_t levels) {
  std::string s;
  for (std::size_t i = 0; i < levels; ++i) s += R"({"k":)";
  return s + "null" + std::string(levels, '}');
}
std::string nested_maps(cachet::MsgPackCodec<json>, std::size_t levels) {
  std::string s;
  for (std::size_t i = 0; i < levels; ++i) s += "\x81\xa1k";
  return s + '\xc0';
}
std::string nested_maps(cachet::CborCodec<json>, std::size_t levels) {
  std::string s;
  for (std::size_t i = 0; i < levels; ++i) s += "\xa1\x61k";
  return s + '\xf6';
}
}  // namespace

// 200,000 levels overflow the stack in nlohmann's recursive reader (or in the
// DOM's copy) in every build, unless the depth is checked first.
TEMPLATE_TEST_CASE("bytes nested deeper than max_depth are a DecodeError, not a stack overflow", "",
                   cachet::JsonCodec<json>, cachet::MsgPackCodec<json>, cachet::CborCodec<json>) {
  const TestType codec;
  REQUIRE(codec.max_depth == cachet::default_max_depth);
  for (const std::string& bytes : {nested(codec, 200'000), nested_maps(codec, 200'000)})
    CHECK_THROWS_WITH(codec.decode(bytes), Catch::Contains("nested deeper than 256 levels"));

  // The limit is exact, and a codec that needs more can raise it.
  for (std::size_t levels : {std::size_t{256}, std::size_t{1000}}) {
    INFO(levels << " levels");
    const json expected = json::parse(nested(cachet::JsonCodec<json>{}, levels));
    const json expected_maps = json::parse(nested_maps(cachet::JsonCodec<json>{}, levels));
    TestType enough;
    enough.max_depth = levels;
    CHECK(enough.decode(nested(codec, levels)) == expected);
    CHECK(enough.decode(nested_maps(codec, levels)) == expected_maps);
    CHECK(enough.decode(codec.encode(expected)) == expected);
    enough.max_depth = levels - 1;
    CHECK_THROWS_AS(enough.decode(nested(codec, levels)), cachet::DecodeError);
    CHECK_THROWS_AS(enough.decode(nested_maps(codec, levels)), cachet::DecodeError);
  }
}

TEST_CASE("deep bytes are a DecodeError for a user type's codec too") {
  CHECK_THROWS_AS(cachet::JsonCodec<Product>{}.decode(nested(cachet::JsonCodec<json>{}, 200'000)), cachet::DecodeError);
  CHECK_THROWS_AS(cachet::MsgPackCodec<Product>{}.decode(nested_maps(cachet::MsgPackCodec<json>{}, 200'000)),
                  cachet::DecodeError);
  CHECK_THROWS_AS(cachet::CborCodec<Product>{}.decode(nested(cachet::CborCodec<json>{}, 200'000)), cachet::DecodeError);
}

TEST_CASE("CBOR's indefinite-length containers count toward the depth") {
  const cachet::CborCodec<json> codec;
  CHECK_THROWS_WITH(codec.decode(nested_indefinite_cbor(200'000)), Catch::Contains("nested deeper"));
  CHECK(codec.decode(nested_indefinite_cbor(256)) == json::parse(nested(cachet::JsonCodec<json>{}, 256)));
  CHECK_THROWS_AS(codec.decode(nested_indefinite_cbor(257)), cachet::DecodeError);
  // An indefinite string's chunks and an indefinite map are walked over, not into.
  CHECK(codec.decode(std::string("\x9f\x7f\x61" "a\x62" "bc\xff\xbf\x61k\xf6\xff\xff")) ==
        json::parse(R"(["abc",{"k":null}])"));
}

namespace {
// One of every header kind the format's writer emits (string, array and map
// widths, integers, floats, binaries), then `levels` of nesting: the depth
// walk must step over each of them exactly to see that nesting.
json every_kind(bool binary_subtypes, std::size_t levels) {
  json v = json::array();
  for (std::size_t len : {0u, 5u, 31u, 32u, 255u, 256u, 65535u, 65536u}) v.push_back(std::string(len, '['));
  v.push_back("quote \" and [{ brackets ]} in a string");
  v.push_back(json::array());
  v.push_back(json(std::vector<int>(16, 1)));
  v.push_back(json(std::vector<int>(70'000, -1)));
  json m = json::object();
  for (int i = 0; i < 20; ++i) m["k" + std::to_string(i)] = i;
  v.push_back(m);
  for (json n : {json(0), json(-1), json(-33), json(200), json(-200), json(70'000), json(-70'000), json(5'000'000'000),
                 json(-5'000'000'000), json(std::numeric_limits<std::uint64_t>::max()), json(1.5), json(0.1),
                 json(true), json(false), json(nullptr)})
    v.push_back(n);
  if (binary_subtypes) {
    for (std::size_t len : {1u, 2u, 4u, 8u, 16u, 3u, 300u, 70'000u})
      v.push_back(json::binary(std::vector<std::uint8_t>(len, 0x91), 7));  // ext and fixext
  }
  for (std::size_t len : {0u, 3u, 300u, 70'000u}) v.push_back(json::binary(std::vector<std::uint8_t>(len, 0x81)));
  v.push_back(json::parse(nested(cachet::JsonCodec<json>{}, levels)));
  return v;
}
}  // namespace

TEMPLATE_TEST_CASE("the depth check steps over every kind of item", "", cachet::MsgPackCodec<json>,
                   cachet::CborCodec<json>) {
  const bool subtypes = std::is_same_v<TestType, cachet::MsgPackCodec<json>>;  // CBOR writes a subtype as a tag
  const json v = every_kind(subtypes, 300);
  TestType codec;
  const std::string bytes = codec.encode(v);
  CHECK_THROWS_WITH(codec.decode(bytes), Catch::Contains("nested deeper than 256"));
  codec.max_depth = 301;  // the outer array, then 300
  CHECK(codec.decode(bytes) == v);
}

TEST_CASE("the JSON depth check skips brackets in strings") {
  json v = every_kind(false, 300);
  v.erase(v.end() - 5, v.end() - 1);  // JSON has no binary values
  const std::string text = v.dump();
  cachet::JsonCodec<json> codec;
  CHECK_THROWS_WITH(codec.decode(text), Catch::Contains("nested deeper than 256"));
  codec.max_depth = 301;
  CHECK(codec.decode(text) == v);
  CHECK(codec.decode(R"(["\\", "\"[[[", [[]]])") == json::parse(R"(["\\", "\"[[[", [[]]])"));
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
