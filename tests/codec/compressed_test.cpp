#include <cachet/codec/compressed.hpp>
#include <cachet/codec/json.hpp>
#include <cachet/codec/msgpack.hpp>
#include <cachet/codec/string.hpp>

#include <catch2/catch.hpp>
#include <support/counting_new.hpp>
#include <support/product.hpp>

#include <zstd.h>

#include <cstdint>
#include <memory>
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

namespace {
// A 17-byte frame whose header claims `claimed` bytes: one RLE block of 128 KiB
// that is not the last, and then nothing.
std::string lying_frame(std::uint64_t claimed) {
  std::string f("\x28\xb5\x2f\xfd\xe0", 5);  // magic; single segment, 8-byte content size
  for (int i = 0; i < 8; ++i) f += static_cast<char>((claimed >> (8 * i)) & 0xff);
  return f + std::string("\x02\x00\x10x", 4);  // block header: RLE, 128 KiB, not last; its byte
}

// A frame with no content size in its header, as streaming writers make them.
std::string frame_without_size(std::string_view in) {
  std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> c(ZSTD_createCCtx(), &ZSTD_freeCCtx);
  ZSTD_CCtx_setParameter(c.get(), ZSTD_c_contentSizeFlag, 0);
  std::string out(ZSTD_compressBound(in.size()), '\0');
  const std::size_t n = ZSTD_compress2(c.get(), out.data(), out.size(), in.data(), in.size());
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  REQUIRE(ZSTD_getFrameContentSize(out.data(), out.size()) == ZSTD_CONTENTSIZE_UNKNOWN);
  return out;
}

// Decodes expecting a DecodeError; returns the largest allocation made meanwhile.
template <class Codec>
std::size_t largest_allocation_of_failed_decode(const Codec& codec, const std::string& bytes) {
  return cachet::test::largest_allocation_in([&] { CHECK_THROWS_AS(codec.decode(bytes), cachet::DecodeError); });
}
}  // namespace

TEST_CASE("a tiny frame claiming a huge size is a DecodeError without allocating that size") {
  const cachet::Compressed<cachet::StringCodec> codec;  // the default bound
  CHECK(codec.options().max_decompressed == (64u << 20));
  const std::string over = lying_frame(500u << 20), under = lying_frame(60u << 20);  // vs the old 512 MiB cap
  REQUIRE(over.size() == 17);
  CHECK(largest_allocation_of_failed_decode(codec, over) < (1u << 20));
  CHECK(largest_allocation_of_failed_decode(codec, under) < (1u << 20));  // within the bound, still a lie
  CHECK_THROWS_WITH(codec.decode(under), Catch::Contains("truncated"));
}

TEST_CASE("a frame without a content size decodes, and is held to the bound by its real output") {
  const cachet::Compressed<cachet::StringCodec> codec({.max_decompressed = 100'000});
  const std::string value(100'000, 'a');
  CHECK(codec.decode(frame_without_size(value)) == value);  // exactly the bound
  CHECK_THROWS_WITH(codec.decode(frame_without_size(value + "b")), Catch::Contains("over the limit"));
  const std::string big(50u << 20, 'b');  // 50 MiB from a ~2 KB frame: over the limit after 100,001 bytes
  CHECK(largest_allocation_of_failed_decode(codec, frame_without_size(big)) < (1u << 20));

  const cachet::Compressed<cachet::StringCodec> roomy;
  CHECK(roomy.decode(frame_without_size(big)) == big);  // grows past the first guess, up to the real size
  CHECK(roomy.decode(frame_without_size("")).empty());
}

TEST_CASE("concatenated frames decode as one value") {
  const cachet::Compressed<cachet::StringCodec> codec({.threshold = 1});
  const std::string a = codec.encode(std::string(3000, 'a')), b = codec.encode(std::string(2000, 'b'));
  CHECK(codec.decode(a + b) == std::string(3000, 'a') + std::string(2000, 'b'));
}

TEST_CASE("a compressed value nested too deep is a DecodeError") {
  const std::string deep = std::string(200'000, '\x91') + '\xc0';  // MessagePack, 200,000 arrays deep
  const cachet::Compressed<cachet::MsgPackCodec<nlohmann::json>> codec;
  CHECK_THROWS_WITH(codec.decode(frame_without_size(deep)), Catch::Contains("nested deeper"));
}

TEST_CASE("a frame claiming more than the limit is refused") {
  const cachet::Compressed<cachet::StringCodec> writer({.threshold = 1});
  const cachet::Compressed<cachet::StringCodec> reader({.threshold = 1, .max_decompressed = 1000});
  const std::string bytes = writer.encode(std::string(100'000, 'a'));
  CHECK_THROWS_WITH(reader.decode(bytes), Catch::Contains("over the limit"));
}
