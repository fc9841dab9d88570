// The transport cachet owns under a Connection: a peer that answers garbage (not
// Redis, a truncated reply, a length meant to exhaust memory, nesting hiredis
// refuses, a reply over max_reply_bytes, random bytes) is a typed error and a
// discarded connection, never a crash or an unbounded allocation; a silent peer
// is a TimeoutError within command_timeout; and the reply reader survives a
// seeded fuzz loop of mutated replies.

#include <cachet/redis/connection.hpp>
#include <cachet/redis/detail/reply_reader.hpp>
#include <cachet/redis/pool.hpp>
#include <cachet/testing/redis_server.hpp>

#include <catch2/catch.hpp>
#include <support/errors.hpp>
#include <support/fake_peer.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Peer = cachet::test::FakePeer;

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// The message of the ProtocolError `f` throws ("" if it throws another or none).
template <class F>
std::string protocol_error(F&& f) {
  try {
    f();
  } catch (const cachet::ProtocolError& e) {
    return e.what();
  } catch (...) {
  }
  return {};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("garbage from the server is a ProtocolError naming the server, and the connection is dropped") {
  struct Case {
    const char* name;
    std::string answer;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"an HTTP banner", "HTTP/1.1 400 Bad Request\r\n\r\n", "reply type byte"},
      {"a 2 GB bulk string", "$2000000000\r\n", "bulk string of 2000000000 bytes exceeds max_reply_bytes"},
      {"a 2^31-1 element array", "*2147483647\r\n", "array of 2147483647 elements exceeds max_reply_bytes"},
      {"a negative array length", "*-5\r\n", ""},  // hiredis' own check or cachet's, by version
#if HIREDIS_MAJOR < 1
      {"arrays nested deeper than hiredis allows", repeat("*1\r\n", 12) + ":1\r\n", "nested multi bulk"},
#endif
  };
  for (const Case& c : cases) {
    INFO(c.name);
    Peer peer(c.answer, Peer::hold);  // held open: the error is the reply's, not the close's
    const auto o = peer.options();
    cachet::Connection conn(o);
    const std::string what = protocol_error([&] { conn.command({"GET", "k"}); });
    CHECK(contains(what, "GET on 127.0.0.1:" + std::to_string(o.port) + ": protocol error"));
    CHECK(contains(what, c.says));
    CHECK(conn.broken());
  }
}

TEST_CASE("a reply over a small max_reply_bytes is a ProtocolError, however it is made") {
  const std::vector<std::string> answers = {
      "$5000\r\n" + std::string(5000, 'x') + "\r\n",       // one long string: refused at its header
      "*200\r\n" + repeat(":1\r\n", 200),                  // 200 pointers are more than 1000 bytes
      "*100\r\n" + repeat("$9\r\nxxxxxxxxx\r\n", 100),     // each element small, the whole too big
  };
  for (const std::string& answer : answers) {
    Peer peer(answer, Peer::hold);
    auto o = peer.options();
    o.max_reply_bytes = 1000;
    cachet::Connection conn(o);
    const std::string what = protocol_error([&] { conn.command({"GET", "k"}); });
    CHECK(contains(what, "exceeds max_reply_bytes"));
    CHECK(conn.broken());
  }
  // The bound counts one reply: a pipeline of replies each under it passes.
  Peer peer(repeat("$500\r\n" + std::string(500, 'y') + "\r\n", 10), Peer::hold);
  auto o = peer.options();
  o.max_reply_bytes = 1000;
  cachet::Connection conn(o);
  for (int i = 0; i < 10; ++i) conn.append({"GET", "k"});
  for (int i = 0; i < 10; ++i) CHECK(conn.read_reply().as_string() == std::string(500, 'y'));
}

// One budget per reply: nested array headers add up (hiredis allocates a
// pointer slot and a redisReply per element at each header), so a few bytes
// cannot make it allocate gigabytes.
TEST_CASE("nested array headers share one budget per reply") {
  SECTION("three nested 2^26-element headers at the default bound: a ProtocolError, nothing allocated") {
    Peer peer(repeat("*67108863\r\n", 3), Peer::hold);
    cachet::Connection conn(peer.options());
    const std::string what = protocol_error([&] { conn.command({"GET", "k"}); });
    CHECK(contains(what, "array of 67108863 elements exceeds max_reply_bytes"));
    CHECK(conn.broken());
  }
  SECTION("a 10k-element array fits 1 MiB alone, twice in a pipeline, but not nested twice") {
    const std::string array = "*10000\r\n" + repeat(":1\r\n", 10000);
    cachet::detail::ReplyReader reader(std::size_t{1} << 20);
    const std::string two = array + array;
    REQUIRE(reader.feed(two.data(), two.size()));
    for (int i = 0; i < 2; ++i) {
      cachet::detail::ReplyPtr r;
      REQUIRE(reader.next(r));
      REQUIRE(r);
      CHECK(r->elements == 10000);
    }
    const std::string nested = "*1\r\n*10000\r\n*10000\r\n";
    REQUIRE(reader.feed(nested.data(), nested.size()));
    cachet::detail::ReplyPtr r;
    CHECK_FALSE(reader.next(r));
    CHECK(contains(reader.error(), "array of 10000 elements exceeds max_reply_bytes (1048576)"));
  }
}

TEST_CASE("a truncated reply, then a close, is a ConnectionError and the connection is dropped") {
  Peer peer("$10\r\nabc", Peer::close_after);
  cachet::Connection conn(peer.options());
  CHECK(cachet::test::throws_exactly<cachet::ConnectionError>([&] { conn.command({"GET", "k"}); }));
  CHECK(conn.broken());
}

TEST_CASE("random bytes are a ProtocolError or, where the peer just closed, a ConnectionError") {
  std::mt19937 random(16);
  for (int round = 0; round < 20; ++round) {
    std::string bytes(1 + random() % 2048, '\0');
    for (char& b : bytes) b = static_cast<char>(random());
    Peer peer(bytes, Peer::close_after);
    cachet::Connection conn(peer.options());
    bool typed = false;
    try {
      conn.command({"GET", "k"});
    } catch (const cachet::ProtocolError&) {
      typed = true;
    } catch (const cachet::ConnectionError&) {
      typed = true;
    }
    CHECK(typed);
    CHECK(conn.broken());
  }
}

TEST_CASE("a Pool over a peer that answers garbage is a ConfigError at construction") {
  for (const char* answer : {"HTTP/1.1 400 Bad Request\r\n\r\n", "*2147483647\r\n", "$2000000000\r\n"}) {
    Peer peer(answer, Peer::hold);
    CHECK(cachet::test::throws_exactly<cachet::ConfigError>([&] { cachet::Pool pool(peer.options()); }));
  }
}

TEST_CASE("a peer that accepts and never answers is a TimeoutError within command_timeout") {
  Peer peer("", Peer::hold);  // reads the command, writes nothing
  auto o = peer.options();
  o.command_timeout = 200ms;
  cachet::Connection conn(o);
  const auto start = std::chrono::steady_clock::now();
  CHECK(cachet::test::throws_exactly<cachet::TimeoutError>([&] { conn.command({"GET", "k"}); }));
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 190ms);
  CHECK(took < 5s);  // generous: a loaded CI machine
  CHECK(conn.broken());
}

TEST_CASE("TCP by host name, and IPv6") {
  cachet::testing::RedisServer server({.tcp = true});
  auto o = server.tcp_connection_options();
  o.host = "localhost";  // getaddrinfo: may try ::1 first, where nothing listens, then 127.0.0.1
  CHECK(cachet::Connection(o).command({"ECHO", "by name"}).as_string() == "by name");

  Peer v6("+PONG\r\n", Peer::hold, AF_INET6);
  auto o6 = v6.options();
  o6.host = "::1";
  CHECK(cachet::Connection(o6).command({"PING"}).as_status() == "PONG");
}

TEST_CASE("a server that cannot be resolved is a ConnectionError naming it") {
  cachet::ConnectionOptions o;
  o.host = "no-such-host.invalid";
  o.port = 1;
  try {
    cachet::Connection conn(o);
    FAIL("connected to no-such-host.invalid");
  } catch (const cachet::ConnectionError& e) {
    CHECK(contains(e.what(), "connect to no-such-host.invalid:1 failed"));
  }
}

// Valid replies, mutated (bytes flipped, inserted, cut) and fed in random
// pieces: the reader returns replies or an error, and never anything else.
TEST_CASE("fuzz: mutated replies through the bounded reader give replies or a typed error, nothing else") {
  const std::vector<std::string> seeds = {
      "+OK\r\n", "-ERR wrong\r\n", ":-42\r\n", "$5\r\nhello\r\n", "$-1\r\n", "*-1\r\n", "*0\r\n",
      "*3\r\n$3\r\nfoo\r\n:7\r\n*2\r\n+a\r\n$0\r\n\r\n", "*2\r\n*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n$1\r\nz\r\n",
      "$20\r\n" + std::string(20, '\0') + "\r\n"};
  std::mt19937 random(20261206);
  const char alphabet[] = "*$+-:\r\n0123456789-x";
  std::size_t replies = 0, errors = 0;
  const int rounds = 20'000;
  for (int i = 0; i < rounds; ++i) {
    std::string input = seeds[random() % seeds.size()] + seeds[random() % seeds.size()];
    for (int m = 1 + static_cast<int>(random() % 4); m > 0; --m) {
      const std::size_t at = random() % (input.size() + 1);
      switch (random() % 4) {
        case 0: if (at < input.size()) input[at] = alphabet[random() % (sizeof alphabet - 1)]; break;
        case 1: input.insert(at, 1, alphabet[random() % (sizeof alphabet - 1)]); break;
        case 2: input.resize(at); break;
        default: input.insert(at, std::to_string(random())); break;  // a large count or length
      }
    }
    cachet::detail::ReplyReader reader(4096);
    bool failed = false;
    for (std::size_t fed = 0; fed < input.size() && !failed;) {
      const std::size_t piece = std::min<std::size_t>(1 + random() % 8, input.size() - fed);
      failed = !reader.feed(input.data() + fed, piece);
      fed += piece;
      for (cachet::detail::ReplyPtr r; !failed;) {
        failed = !reader.next(r);
        if (!r) break;
        ++replies;
      }
    }
    if (failed) {
      ++errors;
      REQUIRE_FALSE(reader.error().empty());
    }
  }
  CHECK(replies > 0);
  CHECK(errors > 0);
}
