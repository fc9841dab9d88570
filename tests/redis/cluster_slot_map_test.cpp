#include <cachet/redis/detail/cluster_node_ring.hpp>
#include <cachet/redis/detail/cluster_redirect.hpp>
#include <cachet/redis/detail/cluster_slot_map.hpp>
#include <cachet/redis/detail/reply_reader.hpp>
#include <cachet/testing/redis_cluster.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

using cachet::detail::ClusterRedirect;
using cachet::detail::ClusterSlotMap;
using cachet::detail::Endpoint;
using cachet::detail::parse_cluster_redirect;

namespace {
cachet::Reply parse_resp(const std::string& resp) {
  cachet::detail::ReplyReader reader(1 << 20);
  REQUIRE(reader.feed(resp.data(), resp.size()));
  cachet::detail::ReplyPtr reply;
  REQUIRE(reader.next(reply));
  REQUIRE(reply);
  return cachet::Reply(std::move(reply));
}
// One CLUSTER SLOTS range in RESP: [first, last, [host, port, id], replicas...].
std::string range(int first, int last, const std::string& host, int port, const std::string& replicas = "", int n = 0) {
  return "*" + std::to_string(3 + n) + "\r\n:" + std::to_string(first) + "\r\n:" + std::to_string(last) + "\r\n*3\r\n$" +
         std::to_string(host.size()) + "\r\n" + host + "\r\n:" + std::to_string(port) + "\r\n$2\r\nid\r\n" + replicas;
}
std::string node(const std::string& host, int port) {
  return "*2\r\n$" + std::to_string(host.size()) + "\r\n" + host + "\r\n:" + std::to_string(port) + "\r\n";
}
ClusterSlotMap map_of(const std::string& resp) { return ClusterSlotMap::from_slots_reply(parse_resp(resp), "10.0.0.9"); }
}  // namespace

TEST_CASE("the slot map of a live cluster: every slot served by the master the cluster names, with its replica") {
  cachet::testing::RedisCluster cluster;
  for (const auto& n : cluster.nodes()) {
    const auto map = ClusterSlotMap::from_slots_reply(n->connect().command({"CLUSTER", "SLOTS"}), "127.0.0.1");
    CHECK(map.covers_all());
    CHECK(map.shards().size() == 3);
    for (int slot = 0; slot < 16384; slot += 97) {
      const auto* shard = map.shard_of(static_cast<std::uint16_t>(slot));
      REQUIRE(shard != nullptr);
      CHECK(shard->master == Endpoint{"127.0.0.1", cluster.master_of(slot)});
      REQUIRE(shard->replicas.size() == 1);
      CHECK(shard->replicas[0].port == cluster.replicas_of(shard->master.port).front());
    }
  }
}

TEST_CASE("CLUSTER SLOTS answers: an empty host is the node asked, an unknown one leaves its range unserved") {
  const auto map = map_of("*2\r\n" + range(0, 99, "", 7000, node("", 7003), 1) + range(100, 16383, "?", 7001));
  REQUIRE(map.shard_of(0) != nullptr);
  CHECK(map.shard_of(99)->master == Endpoint{"10.0.0.9", 7000});
  CHECK(map.shard_of(99)->replicas == std::vector<Endpoint>{{"10.0.0.9", 7003}});
  CHECK(map.shard_of(100) == nullptr);
  CHECK_FALSE(map.covers_all());

  // Redis 7's unknown-endpoint: a nil host, the port of the node.
  const auto nil_host = map_of("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$-1\r\n:7005\r\n");
  CHECK(nil_host.covers_all());
  CHECK(nil_host.shard_of(5)->master == Endpoint{"10.0.0.9", 7005});
}

TEST_CASE("a malformed CLUSTER SLOTS answer is a ProtocolError, the server's own error a ReplyError") {
  using cachet::ProtocolError;
  CHECK_THROWS_AS(map_of("*1\r\n" + range(0, 16384, "h", 7000)), ProtocolError);          // past the last slot
  CHECK_THROWS_AS(map_of("*1\r\n" + range(10, 5, "h", 7000)), ProtocolError);             // backwards
  CHECK_THROWS_AS(map_of("*2\r\n" + range(0, 10, "h", 7000) + range(10, 20, "h", 7001)), ProtocolError);  // overlap
  CHECK_THROWS_AS(map_of("*1\r\n" + range(0, 10, "h", 0)), ProtocolError);                // port 0
  CHECK_THROWS_AS(map_of("*1\r\n" + range(0, 10, "h", 70000)), ProtocolError);            // port too big
  CHECK_THROWS_AS(map_of("*1\r\n*2\r\n:0\r\n:10\r\n"), ProtocolError);                     // no master
  CHECK_THROWS_AS(map_of("*1\r\n*3\r\n:0\r\n:10\r\n$1\r\nx\r\n"), ProtocolError);          // master not an array
  CHECK_THROWS_AS(map_of("*1\r\n*3\r\n$1\r\n0\r\n:10\r\n" + node("h", 1)), ProtocolError); // slot as a string
  CHECK_THROWS_AS(map_of("*1\r\n*3\r\n:0\r\n:10\r\n-ERR inside\r\n"), ProtocolError);     // an error nested
  CHECK_THROWS_AS(map_of(":5\r\n"), ProtocolError);
  CHECK_THROWS_AS(map_of("*1\r\n" + range(0, 10, "h\xff", 7000)), ProtocolError);                  // not ASCII
  CHECK_THROWS_AS(map_of("*1\r\n" + range(0, 10, "h", 7000, node("r\x01", 7001), 1)), ProtocolError);  // a replica too
  CHECK_THROWS_AS(map_of("-ERR This instance has cluster support disabled\r\n"), cachet::ReplyError);
}

TEST_CASE("MOVED moves one slot to its new master, adding the master if it is new") {
  auto map = map_of("*1\r\n" + range(0, 16383, "h", 7000));
  map.move_slot(42, {"h", 7001});
  CHECK(map.shard_of(42)->master == Endpoint{"h", 7001});
  CHECK(map.shard_of(41)->master == Endpoint{"h", 7000});
  CHECK(map.shard_of(43)->master == Endpoint{"h", 7000});
  CHECK(map.shards().size() == 2);
  map.move_slot(43, {"h", 7001});
  CHECK(map.shards().size() == 2);
}

TEST_CASE("redirections parsed: MOVED and ASK, an empty host, IPv6, and anything else is not one") {
  auto r = parse_cluster_redirect("MOVED 3999 127.0.0.1:6381", "h");
  REQUIRE(r);
  CHECK(r->kind == ClusterRedirect::moved);
  CHECK(r->slot == 3999);
  CHECK(r->to == Endpoint{"127.0.0.1", 6381});
  r = parse_cluster_redirect("ASK 0 :7000", "10.1.1.1");
  REQUIRE(r);
  CHECK(r->kind == ClusterRedirect::ask);
  CHECK(r->to == Endpoint{"10.1.1.1", 7000});
  r = parse_cluster_redirect("MOVED 16383 ::1:7000", "h");
  REQUIRE(r);
  CHECK(r->to == Endpoint{"::1", 7000});
  for (const char* bad : {"MOVED 16384 h:1", "MOVED -1 h:1", "MOVED 1 h:0", "MOVED 1 h", "MOVED 1", "MOVED x h:1",
                          "ASK 1 h:65536", "ERR MOVED 1 h:1", "TRYAGAIN Multiple keys request during rehashing", ""})
    CHECK_FALSE(parse_cluster_redirect(bad, "h"));
  // A host that is not printable ASCII would throw from a metrics label later (on the refresher's thread).
  CHECK_THROWS_AS(parse_cluster_redirect("MOVED 1 \xff:7000", "h"), cachet::ProtocolError);
  CHECK_THROWS_AS(parse_cluster_redirect("ASK 1 a b:7000", "h"), cachet::ProtocolError);
}

TEST_CASE("a cluster subscriber's node ring: seeds first, then the nodes learned, deduplicated and capped") {
  using cachet::detail::ClusterNodeRing;
  ClusterNodeRing ring({{"s", 7000}});
  CHECK(ring.next() == Endpoint{"s", 7000});
  CHECK(ring.next() == Endpoint{"s", 7000});  // nothing learned yet
  // The seed again (as a replica) is not learned twice; masters first, then replicas.
  REQUIRE(ring.learn(parse_resp("*2\r\n" + range(0, 99, "m", 7001, node("s", 7000), 1) +
                                range(100, 16383, "", 7002, node("r", 7003), 1)),
                     "10.0.0.9"));
  CHECK(ring.learned() == std::vector<Endpoint>{{"m", 7001}, {"10.0.0.9", 7002}, {"r", 7003}});
  std::vector<Endpoint> turn;
  for (int i = 0; i < 4; ++i) turn.push_back(ring.next());
  CHECK(turn.size() == 4);
  CHECK(std::count(turn.begin(), turn.end(), Endpoint{"s", 7000}) == 1);  // each once per round
  CHECK(std::count(turn.begin(), turn.end(), Endpoint{"r", 7003}) == 1);

  // Hundreds of masters: only the first max_learned are kept.
  std::string many = "*300\r\n";
  for (int slot = 0; slot < 300; ++slot) many += range(slot, slot, "h", 1 + slot);
  REQUIRE(ring.learn(parse_resp(many), "10.0.0.9"));
  CHECK(ring.learned().size() == ClusterNodeRing::max_learned);
}

TEST_CASE("a malformed, hostile or refused CLUSTER SLOTS answer leaves a subscriber's learned nodes as they were") {
  using cachet::detail::ClusterNodeRing;
  ClusterNodeRing ring({{"s", 7000}});
  REQUIRE(ring.learn(parse_resp("*1\r\n" + range(0, 16383, "m", 7001)), "10.0.0.9"));
  const std::vector<Endpoint> known{{"m", 7001}};
  const std::vector<std::string> answers{
      "*1\r\n" + range(0, 16384, "h", 7000),                     // past the last slot
      "*1\r\n" + range(0, 10, "h", 0),                           // port 0
      "*1\r\n*3\r\n:0\r\n:10\r\n-ERR inside\r\n",                 // an error nested
      ":5\r\n",                                                  // not an array
      "*1\r\n" + range(0, 10, "h\xff", 7000),                    // a host not ASCII
      "*0\r\n",                                                  // no node yet
      "*1\r\n" + range(0, 16383, "?", 7001),                     // only unknown endpoints
      "*2\r\n" + range(0, 10, "n", 7002) + range(11, 20, "h", 7000, node("r\x01", 7001), 1),  // half good: none kept
      "-NOPERM this user has no permissions to run the 'cluster' command\r\n"};
  for (const std::string& bad : answers) {
    CHECK_FALSE(ring.learn(parse_resp(bad), "10.0.0.9"));
    CHECK(ring.learned() == known);
  }
}
