#include <cachet/codec/envelope.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <random>
#include <string>

using namespace std::chrono_literals;
namespace envelope = cachet::envelope;

namespace {
cachet::EntryMeta sample_meta() {
  cachet::EntryMeta m;
  m.created_at = std::chrono::system_clock::time_point(1'700'000'000'123ms);
  m.fresh_until = m.created_at + 5min;
  m.compute_time = 2345us;
  return m;
}
}  // namespace

TEST_CASE("the envelope round-trips its header and payload") {
  const auto meta = sample_meta();
  const std::string bytes = envelope::encode(7, meta, "payload", true);
  REQUIRE(bytes.size() == envelope::header_size + 7);
  const auto v = envelope::decode(bytes);
  CHECK(v.codec_id == 7);
  CHECK(v.compressed);
  CHECK_FALSE(v.meta.negative);
  CHECK(v.meta.created_at == meta.created_at);
  CHECK(v.meta.fresh_until == meta.fresh_until);
  CHECK(v.meta.compute_time == meta.compute_time);
  CHECK(v.payload == "payload");

  const auto empty = envelope::decode(envelope::encode(2, meta, ""));
  CHECK(empty.payload.empty());
  CHECK_FALSE(empty.compressed);
}

TEST_CASE("the byte layout is the documented one") {
  const std::string b = envelope::encode(2, sample_meta(), "xy");
  CHECK(static_cast<unsigned char>(b[0]) == 0xCA);
  CHECK(static_cast<unsigned char>(b[1]) == 0xCE);
  CHECK(b[2] == 1);  // version
  CHECK(b[3] == 2);  // codec id
  CHECK(b[4] == 0);  // flags
  std::uint64_t created = 0;
  for (int i = 7; i >= 0; --i) created = (created << 8) | static_cast<unsigned char>(b[8 + i]);
  CHECK(created == 1'700'000'000'123ULL);  // ms since epoch, little-endian
  CHECK(static_cast<unsigned char>(b[24]) == (2345 & 0xff));  // compute time in us
  CHECK(static_cast<unsigned char>(b[28]) == 2);  // payload length
  CHECK(b.substr(32) == "xy");
}

TEST_CASE("negative entries carry no payload") {
  auto meta = sample_meta();
  meta.negative = true;
  const auto v = envelope::decode(envelope::encode(2, meta, ""));
  CHECK(v.meta.negative);
  CHECK_THROWS_AS(envelope::encode(2, meta, "x"), cachet::EncodeError);
}

TEST_CASE("compute time saturates instead of wrapping") {
  auto meta = sample_meta();
  meta.compute_time = std::chrono::hours(2);  // more than 2^32 us
  CHECK(envelope::decode(envelope::encode(1, meta, "")).meta.compute_time.count() == UINT32_MAX);
}

TEST_CASE("every corruption of the envelope is a DecodeError") {
  const std::string good = envelope::encode(2, sample_meta(), "{\"id\":1}");
  auto corrupt = [&](std::size_t offset, char value) {
    std::string b = good;
    b[offset] = value;
    return b;
  };

  SECTION("truncated anywhere") {
    for (std::size_t n = 0; n < good.size(); ++n) {
      INFO("prefix of " << n << " bytes");
      CHECK_THROWS_AS(envelope::decode(std::string_view(good).substr(0, n)), cachet::DecodeError);
    }
  }
  SECTION("oversized: bytes after the declared payload") {
    CHECK_THROWS_WITH(envelope::decode(good + "x"), Catch::Contains("payload length"));
  }
  SECTION("declared payload longer than what follows") {
    CHECK_THROWS_AS(envelope::decode(corrupt(28, 100)), cachet::DecodeError);
    CHECK_THROWS_AS(envelope::decode(corrupt(31, '\x7f')), cachet::DecodeError);
  }
  SECTION("wrong magic") {
    CHECK_THROWS_WITH(envelope::decode(corrupt(0, 'x')), Catch::Contains("magic"));
    CHECK_THROWS_AS(envelope::decode(corrupt(1, 'x')), cachet::DecodeError);
  }
  SECTION("another format version") {
    CHECK_THROWS_WITH(envelope::decode(corrupt(2, 2)), Catch::Contains("version 2"));
    CHECK_THROWS_AS(envelope::decode(corrupt(2, 0)), cachet::DecodeError);
  }
  SECTION("unknown flags or reserved bytes") {
    CHECK_THROWS_AS(envelope::decode(corrupt(4, 4)), cachet::DecodeError);
    CHECK_THROWS_AS(envelope::decode(corrupt(6, 1)), cachet::DecodeError);
  }
  SECTION("negative flag with a payload") {
    CHECK_THROWS_AS(envelope::decode(corrupt(4, 2)), cachet::DecodeError);
  }
  SECTION("times beyond the clock's range") {
    std::string b = good;
    for (int i = 8; i < 16; ++i) b[static_cast<std::size_t>(i)] = '\xff';
    CHECK_THROWS_WITH(envelope::decode(b), Catch::Contains("created_at"));
  }
  SECTION("random buffers and plain JSON") {
    CHECK_THROWS_AS(envelope::decode("{\"id\":1,\"name\":\"a plain JSON value, not an envelope\"}"),
                    cachet::DecodeError);
    std::mt19937 rng(3);
    int rejected = 0;
    for (int i = 0; i < 2000; ++i) {
      std::string junk(rng() % 80, '\0');
      for (auto& c : junk) c = static_cast<char>(rng());
      if (junk.size() >= 2) junk[0] = '\xCA', junk[1] = '\xCE';  // get past the magic
      try {
        (void)envelope::decode(junk);
      } catch (const cachet::DecodeError&) {
        ++rejected;  // any other exception escapes and fails the test
      }
    }
    CHECK(rejected == 2000);  // none of these seeded buffers is a valid envelope
  }
}
