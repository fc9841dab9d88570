#include <cachet/detail/hash_slot.hpp>
#include <cachet/detail/escape_scan.hpp>
#include <cachet/keys.hpp>
#include <cachet/policy/detail/key_buffer.hpp>

#include <catch2/catch.hpp>
#include <support/server.hpp>

#include <array>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

TEST_CASE("the documented key layout") {
  const cachet::KeyBuilder keys("shop");
  CHECK(keys.value("product", "42") == "shop:product:42");
  CHECK(keys.value("product", "42", 7) == "shop:product:v7:42");
  CHECK(keys.tag("category:9") == "shop:tag:category%3A9");
  CHECK(keys.lock(keys.value("product", "42")) == "shop:lock:shop:product:42");
  CHECK(keys.version("product") == "shop:ver:product");
  CHECK(keys.write_behind("orders") == "shop:wb:orders");
  CHECK(keys.pattern("product") == "shop:product:*");
}

TEST_CASE("hostile ids stay distinct and printable") {
  const cachet::KeyBuilder keys("ns");
  const std::vector<std::string> ids = {
      "a:b",        "a%3Ab",       "a b",         "a\r\nb",           "a\nb",     std::string("a\0b", 3),
      "a",          "",            ":",           "%",                "%25",      "{tag}",
      "a}b{c",      "\x7f",        "\xc3\xa9",    std::string(1, '\0'), "v1:x",   "%H00",
      std::string(64 * 1024, 'p'), std::string(64 * 1024, 'p') + "q",
  };
  std::set<std::string> built;
  for (const auto& id : ids) {
    const std::string key = keys.value("item", id);
    for (unsigned char c : key.substr(8)) {  // after "ns:item:"
      INFO("id " << id.substr(0, 20) << " -> key " << key.substr(0, 60));
      CHECK(c > 0x20);
      CHECK(c != 0x7f);
      CHECK(c != ':');
      CHECK(c != '{');
      CHECK(c != '}');
    }
    built.insert(key);
  }
  CHECK(built.size() == ids.size());
  // Names are separated from ids: ("a:b", "c") and ("a", "b:c") cannot collide.
  CHECK(keys.value("x", "b:c") != keys.value("x", "b") + ":c");
}

TEST_CASE("long ids are hashed with SHA-256, short ones are not") {
  const cachet::KeyBuilder keys("llm", {.max_id_length = 100});
  const std::string prompt = "model=gpt;temperature=0.2;prompt=" + std::string(64 * 1024, 'w');
  const std::string key = keys.value("completion", prompt);
  CHECK(key.size() == std::string("llm:completion:%H").size() + 64);
  CHECK(key.rfind("llm:completion:%H", 0) == 0);
  CHECK(keys.value("completion", prompt) == key);                   // deterministic
  CHECK(keys.value("completion", prompt + " ") != key);             // sensitive to one byte
  CHECK(keys.value("completion", "short") == "llm:completion:short");
  const std::string exactly(100, 'e');
  CHECK(keys.value("completion", exactly) == "llm:completion:" + exactly);
  CHECK(keys.value("completion", exactly + "e").find("%H") != std::string::npos);
}

TEST_CASE("cluster hash tags put keys used together in one slot") {
  SECTION("entity: a value and its lock") {
    const cachet::KeyBuilder keys("shop", {.hash_tag = cachet::HashTag::entity});
    const std::string value = keys.value("product", "42");
    CHECK(value == "shop:product:{42}");
    CHECK(keys.lock(value) == "shop:lock:shop:product:{42}");
    // A user's braces can never form a tag of their own.
    CHECK(keys.value("product", "{x}") == "shop:product:{%7Bx%7D}");
    // Nor can an empty id leave an empty tag, which Redis would ignore.
    const std::string empty = keys.value("product", "");
    CHECK(empty == "shop:product:{%E}");
    CHECK(cachet::detail::hash_slot(keys.lock(empty)) == cachet::detail::hash_slot(empty));
    CHECK(cachet::detail::hash_slot(keys.write_version(empty)) == cachet::detail::hash_slot(empty));
    CHECK(empty != keys.value("product", "%E"));  // "%E" as an id is escaped
    // Only the entity tag changed: the other layouts key the empty id as before.
    CHECK(cachet::KeyBuilder("shop").value("product", "") == "shop:product:");
    CHECK(cachet::KeyBuilder("shop", {.hash_tag = cachet::HashTag::ns}).value("product", "") == "{shop}:product:");
  }
  SECTION("ns: the whole namespace") {
    const cachet::KeyBuilder keys("shop", {.hash_tag = cachet::HashTag::ns});
    CHECK(keys.value("product", "42") == "{shop}:product:42");
    CHECK(keys.tag("red") == "{shop}:tag:red");
    CHECK(keys.version("product") == "{shop}:ver:product");
    CHECK(keys.pattern("product") == "{shop}:product:*");  // braces are not glob syntax
  }
}

TEST_CASE("namespaces and names must be plain constants") {
  CHECK_THROWS_AS(cachet::KeyBuilder(""), std::invalid_argument);
  CHECK_THROWS_AS(cachet::KeyBuilder("a:b"), std::invalid_argument);
  CHECK_THROWS_AS(cachet::KeyBuilder("a b"), std::invalid_argument);
  const cachet::KeyBuilder keys("ok");
  CHECK_THROWS_AS(keys.value("bad:name", "1"), std::invalid_argument);
  CHECK_THROWS_AS(keys.value("", "1"), std::invalid_argument);
  CHECK_THROWS_AS(keys.version("{x}"), std::invalid_argument);
}

TEST_CASE("keys from hostile ids work in a real Redis, and SCAN with pattern() finds exactly them") {
  auto& server = cachet::test::clean_server();
  cachet::Connection conn = cachet::test::connect(server);
  const cachet::KeyBuilder keys("shop*[x]", {.max_id_length = 80});  // glob characters in the namespace
  const std::vector<std::string> ids = {"1", "a b", "a:b", "x\r\ny", std::string("n\0l", 3), "{t}", "*", "?",
                                        std::string(5000, 'p')};
  for (const auto& id : ids) conn.command({"SET", keys.value("item", id), id});
  conn.command({"SET", keys.value("itemx", "1"), "other name"});
  conn.command({"SET", "shopX[x]:item:1", "another namespace that the unescaped glob would match"});

  std::set<std::string> found;
  std::string cursor = "0";
  do {
    auto r = conn.command({"SCAN", cursor, "MATCH", keys.pattern("item"), "COUNT", 1000});
    cursor = std::string(r[0].as_string());
    for (auto k : r[1]) found.insert(std::string(k.as_string()));
  } while (cursor != "0");
  CHECK(found.size() == ids.size());
  for (const auto& id : ids) {
    CHECK(found.count(keys.value("item", id)) == 1);
    CHECK(conn.command({"GET", keys.value("item", id)}).as_string() == id);
  }
}

TEST_CASE("exactly ':', '%', '{', '}', controls, space and DEL are escaped, each as %XX") {
  for (unsigned b = 0; b < 256; ++b) {
    const auto c = static_cast<unsigned char>(b);
    const bool escaped = c == ':' || c == '%' || c == '{' || c == '}' || c <= 0x20 || c == 0x7f;
    const std::string id(1, static_cast<char>(c));
    CHECK(cachet::KeyBuilder::needs_escape(c) == escaped);
    const std::string hex = "0123456789ABCDEF";
    CHECK(cachet::KeyBuilder::escape(id) == (escaped ? std::string{'%', hex[b >> 4], hex[b & 0xf]} : id));
  }
}

// The scan reads ids sixteen bytes at a time: every byte value, at every place
// of a block and beside bytes of every value, is judged as needs_escape judges it.
TEST_CASE("the block-at-a-time escape scan agrees with the byte table") {
  int wrong = 0;
  for (unsigned a = 0; a < 256; ++a)
    for (unsigned b = 0; b < 256; ++b)
      for (std::size_t at = 0; at < 15; ++at) {
        std::array<char, 16> block;
        block.fill('a');
        block[at] = static_cast<char>(a);
        block[at + 1] = static_cast<char>(b);
        const bool expected = cachet::KeyBuilder::needs_escape(static_cast<unsigned char>(a)) ||
                              cachet::KeyBuilder::needs_escape(static_cast<unsigned char>(b));
        wrong += cachet::detail::block_needs_escape(block.data()) != expected;
      }
  CHECK(wrong == 0);
  // Through escape(): one escaped byte at each place of a 40-byte id, the rest plain.
  for (std::size_t at = 0; at < 40; ++at)
    for (const char c : {':', '%', '{', '}', ' ', '\x7f', '\0'}) {
      std::string id(40, 'x');
      id[at] = c;
      const std::string hex = "0123456789ABCDEF";
      const auto u = static_cast<unsigned char>(c);
      const std::string expected = id.substr(0, at) + '%' + hex[u >> 4] + hex[u & 0xf] + id.substr(at + 1);
      CHECK(cachet::KeyBuilder::escape(id) == expected);
    }
  CHECK(cachet::KeyBuilder::escape(std::string(40, 'x')) == std::string(40, 'x'));
  // Two escapes side by side, and one in a block with another in the tail: the scan restarts after each.
  CHECK(cachet::KeyBuilder::escape("ab::cd") == "ab%3A%3Acd");
  std::string id(40, 'y');
  id[3] = ':', id[38] = '{';
  CHECK(cachet::KeyBuilder::escape(id) == std::string(3, 'y') + "%3A" + std::string(34, 'y') + "%7By");
}

// Keys over the KeyBuffer's inline bytes move to the heap and go on there.
TEST_CASE("a key longer than the inline buffer spills to the heap whole") {
  cachet::detail::KeyBuffer k;
  const std::string a(200, 'a'), b(100, 'b');
  k.append(a).append(b);
  CHECK(k.view() == a + b);
  k.resize(150);
  k.append("c");  // would fit inline again: stays on the heap, after what is kept
  CHECK(k.view() == a.substr(0, 150) + "c");
  CHECK(k.size() == 151);
}
