// detail::key_hash and detail::same_key: the in-process tables' hash and key
// compare, with their word-at-a-time paths for keys up to 16 bytes.
#include <cachet/detail/key_hash.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <unordered_set>

using cachet::detail::key_hash;
using cachet::detail::same_key;

TEST_CASE("same_key equals operator== for every length and every differing byte", "[key_hash]") {
  for (std::size_t n = 0; n <= 40; ++n) {
    const std::string a(n, 'k');
    CHECK(same_key(a, std::string(n, 'k')));
    CHECK_FALSE(same_key(a, std::string(n + 1, 'k')));
    for (std::size_t i = 0; i < n; ++i) {
      std::string b = a;
      b[i] = 'j';
      CHECK_FALSE(same_key(a, b));
    }
  }
}

TEST_CASE("same_key reads only the bytes of its keys, wherever they sit", "[key_hash]") {
  const std::string buffer = "xxbench:tiered:12345yy";
  for (std::size_t n = 4; n <= 16; ++n) {
    const std::string_view inside(buffer.data() + 2, n);
    CHECK(same_key(inside, std::string(inside)));
  }
}

TEST_CASE("key_hash differs when any one byte of a key differs, at every length", "[key_hash]") {
  for (std::size_t n = 0; n <= 70; ++n) {
    const std::string a(n, 'a');
    CHECK(key_hash(a) == key_hash(std::string(n, 'a')));
    CHECK(key_hash(a) != key_hash(std::string(n + 1, 'a')));
    for (std::size_t i = 0; i < n; ++i) {
      std::string b = a;
      b[i] = 'b';
      CHECK(key_hash(a) != key_hash(b));
    }
  }
}

TEST_CASE("key_hash spreads sequential keys over the shard bits and the slot bits", "[key_hash]") {
  constexpr int keys = 100'000;
  std::array<int, 64> high{}, low{};
  std::unordered_set<std::uint64_t> seen;
  for (int i = 0; i < keys; ++i) {
    const std::uint64_t h = key_hash("product:" + std::to_string(i));
    seen.insert(h);
    ++high[(h >> 32) & 63];
    ++low[h & 63];
  }
  CHECK(seen.size() == keys);  // no two of them collide in 64 bits
  for (int i = 0; i < 64; ++i) {  // about 1562 each: within 15 %
    CHECK(high[i] > 1330);
    CHECK(high[i] < 1800);
    CHECK(low[i] > 1330);
    CHECK(low[i] < 1800);
  }
}
