#include <cachet/codec/compressed.hpp>
#include <cachet/codec/json.hpp>
#include <cachet/codec/string.hpp>

#include <catch2/catch.hpp>
#include <support/product.hpp>

#include <string>

using cachet::test::Product;
using cachet::test::sample_product;

TEST_CASE("values at or above the threshold are compressed, smaller ones are not") {
  const cachet::Compressed<cachet::JsonCodec<Product>> codec({.threshold = 2048});
  static_assert(cachet::CodecFor<decltype(codec), Product>);

  const Product small = sample_product();
  const std::string small_bytes = codec.encode(small);
  CHECK_FALSE(codec.is_compressed(small_bytes));
  CHECK(small_bytes == cachet::JsonCodec<Product>{}.encode(small));  // plain JSON, still readable
  CHECK(codec.decode(small_bytes) == small);

  Product large = sample_product();
  for (int i = 0; i < 50; ++i) large.images.push_back("https://img.example.com/products/42/extra-" + std::to_string(i));
  const std::string large_bytes = codec.encode(large);
  CHECK(codec.is_compressed(large_bytes));
  CHECK(large_bytes.size() < cachet::JsonCodec<Product>{}.encode(large).size() / 2);
  CHECK(codec.decode(large_bytes) == large);
}

TEST_CASE("compressed and plain entries decode side by side") {
  const cachet::Compressed<cachet::JsonCodec<Product>> reader({.threshold = 1});
  const Product p = sample_product();
  CHECK(reader.decode(cachet::JsonCodec<Product>{}.encode(p)) == p);  // written before compression was on
  const cachet::Compressed<cachet::JsonCodec<Product>> never({.threshold = SIZE_MAX});
  CHECK(never.decode(reader.encode(p)) == p);  // written by a cache with another threshold
}

TEST_CASE("a plain value that starts like a zstd frame is compressed, so it cannot be misread") {
  const cachet::Compressed<cachet::StringCodec> codec({.threshold = 1 << 20});
  const std::string tricky("\x28\xb5\x2f\xfd not really a frame", 24);
  const std::string bytes = codec.encode(tricky);
  CHECK(codec.is_compressed(bytes));
  CHECK(codec.decode(bytes) == tricky);
}

TEST_CASE("corrupt frames are DecodeErrors") {
  const cachet::Compressed<cachet::StringCodec> codec({.threshold = 1});
  const std::string good = codec.encode(std::string(5000, 'z') + "tail");
  REQUIRE(codec.is_compressed(good));

  for (std::size_t n = 4; n < good.size(); ++n) {  // every truncation that keeps the magic
    INFO("prefix of " << n << " bytes");
    CHECK_THROWS_AS(codec.decode(std::string_view(good).substr(0, n)), cachet::DecodeError);
  }
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x5a;
  try {  // zstd may or may not notice a flipped literal byte; either way no UB, no other error
    (void)codec.decode(flipped);
  } catch (const cachet::DecodeError&) {
  }
  CHECK_THROWS_AS(codec.decode(good + "trailing"), cachet::DecodeError);
}

TEST_CASE("a frame claiming more than the limit is refused before allocating") {
  const cachet::Compressed<cachet::StringCodec> writer({.threshold = 1});
  const cachet::Compressed<cachet::StringCodec> reader({.threshold = 1, .max_decompressed = 1000});
  const std::string bytes = writer.encode(std::string(100'000, 'a'));
  CHECK_THROWS_WITH(reader.decode(bytes), Catch::Contains("over the limit"));
}
