#include <cachet/session/session_store.hpp>

#include <cachet/codec/encrypted.hpp>
#include <cachet/codec/json.hpp>
#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {
// The Redis key of a session id (white box: the store's documented layout).
std::string key_of(std::string_view id) {
  return "session:{" + std::string(id.substr(0, 16)) + "}:" + cachet::detail::sha256_hex(id.substr(17, 64));
}
}  // namespace

TEST_CASE("a session keeps its attributes, names starting with ':' are the store's") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto sessions = cachet::make_session_store(pool, {.idle = 60s, .absolute = 1h});
  const std::string id = sessions.create("", {{"cart", "3 items"}});
  CHECK(id.size() == 16 + 1 + 64);
  CHECK(sessions.set(id, "theme", "dark") == 2);
  sessions.set_as(id, "prefs", nlohmann::json{{"lang", "fr"}}, cachet::JsonCodec<nlohmann::json>{});
  sessions.erase(id, "cart");
  const auto s = sessions.load(id);
  REQUIRE(s);
  CHECK(s->get("theme") == "dark");
  CHECK_FALSE(s->get("cart"));
  CHECK(s->get_as("prefs", cachet::JsonCodec<nlohmann::json>{})->at("lang") == "fr");
  CHECK(s->version() == 4);
  CHECK(s->user().empty());
  CHECK(s->attributes().size() == 2);
  CHECK(s->absolute_deadline() - s->created() == 1h);
  CHECK_THROWS_AS(sessions.set(id, ":user", "mallory"), cachet::InvalidAttribute);
  CHECK_THROWS_AS(sessions.set(id, "", "x"), cachet::InvalidAttribute);
  CHECK_THROWS_AS(cachet::make_session_store(pool, {.renew_after = 2}), cachet::SessionError);
}

TEST_CASE("concurrent requests changing different attributes all keep their change") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options(), {.size = 8});
  auto sessions = cachet::make_session_store(pool, {.idle = 60s});
  const std::string id = sessions.create();
  constexpr int threads = 8;
  const int writes = cachet::test::sized(200, 40);
  cachet::test::in_threads(threads, [&](int t) {
    for (int n = 1; n <= writes; ++n) sessions.set(id, "attr" + std::to_string(t), std::to_string(n));
  });
  const auto s = sessions.load(id);
  REQUIRE(s);
  for (int t = 0; t < threads; ++t) CHECK(s->get("attr" + std::to_string(t)) == std::to_string(writes));
  CHECK(s->version() == 1 + static_cast<std::uint64_t>(threads * writes));
}

TEST_CASE("compare-and-set: a whole-session replace loses to a write made since its read") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto sessions = cachet::make_session_store(pool);
  const std::string id = sessions.create("", {{"a", "1"}, {"b", "2"}});
  const auto read = sessions.load(id);
  REQUIRE(read);
  sessions.set(id, "b", "3");  // another request
  CHECK_FALSE(sessions.replace(id, {{"c", "4"}}, read->version()));
  CHECK(sessions.load(id)->get("b") == "3");
  CHECK(sessions.replace(id, {{"c", "4"}}, sessions.load(id)->version()));
  const auto now = sessions.load(id);
  CHECK(now->attributes() == cachet::SessionAttributes{{"c", "4"}});
}

TEST_CASE("logout wins: an update that read the session before the logout cannot bring it back") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  auto sessions = cachet::make_session_store(pool);
  const std::string id = sessions.create("alice", {{"cart", "1"}});
  std::promise<void> has_read, logged_out;
  std::atomic<int> ended{0}, other{0};
  cachet::test::Thread request([&] {  // the slow request: read, (logout happens), write
    const auto s = sessions.load(id);
    has_read.set_value();
    logged_out.get_future().wait();
    try {
      sessions.set(id, "cart", s ? "2" : "lost");
    } catch (const cachet::SessionEnded&) {
      ++ended;
    } catch (...) {
      ++other;
    }
    try {
      sessions.replace(id, {{"cart", "3"}}, s->version());
    } catch (const cachet::SessionEnded&) {
      ++ended;
    }
  });
  has_read.get_future().wait();
  CHECK(sessions.destroy(id));
  logged_out.set_value();
  request.join();
  CHECK(ended == 2);
  CHECK(other == 0);
  CHECK(conn.command({"EXISTS", key_of(id)}).as_integer() == 0);
  CHECK_FALSE(sessions.load(id));
  CHECK(sessions.list("alice").empty());
  CHECK_FALSE(sessions.destroy(id));
}

TEST_CASE("a write to an expired session does not recreate it") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  auto sessions = cachet::make_session_store(pool);
  const std::string id = sessions.create();
  conn.command({"DEL", key_of(id)});  // as if it idled out
  CHECK_THROWS_AS(sessions.set(id, "a", "1"), cachet::SessionNotFound);
  CHECK_THROWS_AS(sessions.erase(id, "a"), cachet::SessionNotFound);
  CHECK(conn.command({"EXISTS", key_of(id)}).as_integer() == 0);
}

TEST_CASE("regeneration under concurrent requests: the old id fails cleanly, data and TTL are kept, same slot") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options(), {.size = 8});
  auto conn = server.connect();
  auto sessions = cachet::make_session_store(pool, {.idle = 60s});
  const std::string old_id = sessions.create("", {{"seed", "x"}});
  constexpr int threads = 4;
  std::atomic<int> started{0}, unclean{0};
  std::vector<std::atomic<int>> last_ok(threads);
  std::promise<std::string> regenerated;
  auto new_id_future = regenerated.get_future().share();
  std::vector<cachet::test::Thread> requests;
  for (int t = 0; t < threads; ++t)
    requests.emplace_back([&, t] {
      bool counted = false;
      for (int n = 1;; ++n) {
        try {
          sessions.set(old_id, "t" + std::to_string(t), std::to_string(n));
          last_ok[t] = n;
          if (!std::exchange(counted, true)) ++started;
          if (!sessions.load(old_id)) return;
        } catch (const cachet::SessionEnded&) {
          return;  // the clean failure
        } catch (...) {
          ++unclean;
          return;
        }
      }
    });
  while (started < threads) std::this_thread::sleep_for(1ms);
  const std::string new_id = sessions.regenerate(old_id);
  for (auto& r : requests) r.join();
  CHECK(unclean == 0);
  CHECK(new_id.substr(0, 16) == old_id.substr(0, 16));  // same anchor, same hash tag: same slot
  CHECK(new_id != old_id);
  const auto s = sessions.load(new_id);
  REQUIRE(s);
  CHECK(s->get("seed") == "x");
  for (int t = 0; t < threads; ++t) CHECK(s->get("t" + std::to_string(t)) == std::to_string(last_ok[t].load()));
  CHECK_FALSE(sessions.load(old_id));
  CHECK_THROWS_AS(sessions.set(old_id, "a", "1"), cachet::SessionEnded);
  CHECK_THROWS_AS(sessions.regenerate(old_id), cachet::SessionEnded);
  // The TTL moves with the data (the requests' writes renewed it, so set one they would not give).
  conn.command({"PEXPIRE", key_of(new_id), 45'000});
  const std::string newer = sessions.regenerate(new_id);
  const long long ttl = conn.command({"PTTL", key_of(newer)}).as_integer();
  CHECK(ttl <= 45'000);
  CHECK(ttl > 30'000);
  CHECK(sessions.load(newer)->get("seed") == "x");
}

TEST_CASE("reads within the renew fraction do not write, a read past it renews") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  auto sessions = cachet::make_session_store(pool, {.idle = 60s, .renew_after = 0.5});
  const std::string id = sessions.create();
  conn.command({"CONFIG", "RESETSTAT"});
  for (int i = 0; i < 20; ++i) REQUIRE(sessions.load(id));
  CHECK(cachet::test::command_calls(conn, "pexpire") == 0);
  CHECK(cachet::test::command_calls(conn, "hgetall") == 20);
  conn.command({"PEXPIRE", key_of(id), 25'000});  // as if 35 s had passed: more than half the window
  const auto s = sessions.load(id);
  REQUIRE(s);
  CHECK(cachet::test::command_calls(conn, "pexpire") == 2);  // ours, then the read's renewal
  CHECK(conn.command({"PTTL", key_of(id)}).as_integer() > 55'000);
  CHECK(s->idle_left() > 55s);
}

// [single-server]: one key's expiry, the same on a cluster, where its 3 s would add to the CI time.
TEST_CASE("the absolute timeout caps every renewal", "[single-server]") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  auto sessions = cachet::make_session_store(pool, {.idle = 60s, .absolute = 1500ms, .renew_after = 0});
  const std::string id = sessions.create();
  for (int i = 0; i < 5; ++i) REQUIRE(sessions.load(id));  // every read may renew: still capped
  sessions.set(id, "a", "1");
  CHECK(conn.command({"PTTL", key_of(id)}).as_integer() <= 1500);
  std::this_thread::sleep_for(3s);  // twice the absolute timeout
  CHECK_FALSE(sessions.load(id));
  CHECK_THROWS_AS(sessions.set(id, "a", "2"), cachet::SessionNotFound);
}

// [single-server]: one key's expiry, the same on a cluster, where its 5 s would add to the CI time.
TEST_CASE("idle timeout: unused it expires, used it slides", "[single-server]") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto sessions = cachet::make_session_store(pool, {.idle = 2s, .absolute = 1h, .renew_after = 0.25});
  const std::string unused = sessions.create(), used = sessions.create();
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 5s) {  // 2.5 idle windows, a read every 200 ms
    REQUIRE(sessions.load(used));
    std::this_thread::sleep_for(200ms);
  }
  CHECK(sessions.load(used));
  CHECK_FALSE(sessions.load(unused));
}

TEST_CASE("a user's sessions: listed, capped (oldest ended), ended together") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto sessions = cachet::make_session_store(pool, {.max_per_user = 2});
  const std::string first = sessions.create("alice");
  std::this_thread::sleep_for(5ms);  // distinct creation times: "oldest" is well defined
  const std::string anonymous = sessions.create();
  const std::string second = sessions.regenerate(anonymous, "alice");  // a login
  std::this_thread::sleep_for(5ms);
  const std::string bob = sessions.create("bob");
  CHECK(sessions.list("alice").size() == 2);
  const std::string third = sessions.create("alice");  // over the maximum: `first` ends
  CHECK_FALSE(sessions.load(first));
  CHECK_THROWS_AS(sessions.set(first, "a", "1"), cachet::SessionEnded);
  REQUIRE(sessions.load(second));
  CHECK(sessions.load(second)->user() == "alice");
  const auto listed = sessions.list("alice");
  REQUIRE(listed.size() == 2);
  CHECK_FALSE(sessions.destroy_listed("bob", listed[0].handle));  // not bob's
  CHECK(sessions.destroy_listed("alice", listed[0].handle));
  CHECK_FALSE(sessions.load(second));
  CHECK(sessions.create("alice").size() > 0);
  CHECK(sessions.destroy_all("alice") == 2);
  CHECK_FALSE(sessions.load(third));
  CHECK(sessions.list("alice").empty());
  CHECK(sessions.load(bob));
  CHECK_THROWS_AS(sessions.destroy_listed("alice", "session:*"), cachet::InvalidSessionId);
}

TEST_CASE("an ended session is forgotten by its user's index once found gone") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  auto sessions = cachet::make_session_store(pool);
  const std::string id = sessions.create("carol");
  conn.command({"DEL", key_of(id)});  // idled out
  CHECK(sessions.list("carol").empty());
  CHECK(conn.command({"ZCARD", "session:user:{carol}"}).as_integer() == 1);  // younger than the grace: kept
  conn.command({"ZINCRBY", "session:user:{carol}", -120'000, key_of(id).substr(8)});  // as if 2 min old
  CHECK(sessions.list("carol").empty());
  CHECK(conn.command({"ZCARD", "session:user:{carol}"}).as_integer() == 0);
}

TEST_CASE("signed ids: forged ones are refused before Redis is asked, a rotated secret still verifies") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  auto old_key = cachet::make_session_store(pool, {.secrets = {"k1"}});
  const std::string id = old_key.create("", {{"a", "1"}});
  CHECK(id.size() == 16 + 1 + 64 + 1 + 64);
  auto rotated = cachet::make_session_store(pool, {.secrets = {"k2", "k1"}});
  CHECK(rotated.load(id)->get("a") == "1");
  CHECK(rotated.create().size() == id.size());
  auto retired = cachet::make_session_store(pool, {.secrets = {"k2"}});
  CHECK_THROWS_AS(retired.load(id), cachet::InvalidSessionId);

  std::string forged = id;
  forged[20] = forged[20] == 'a' ? 'b' : 'a';  // another secret, the old signature
  std::string bad_mac = id;
  bad_mac.back() = bad_mac.back() == '0' ? '1' : '0';
  conn.command({"CONFIG", "RESETSTAT"});
  for (const std::string& bad : {forged, bad_mac, id.substr(0, 81), id + "0", std::string("x"), std::string()}) {
    CHECK_THROWS_AS(rotated.load(bad), cachet::InvalidSessionId);
    CHECK_THROWS_AS(rotated.set(bad, "a", "2"), cachet::InvalidSessionId);
    CHECK_THROWS_AS(rotated.destroy(bad), cachet::InvalidSessionId);
  }
  CHECK(cachet::test::command_calls(conn, "evalsha") == 0);
  CHECK(cachet::test::command_calls(conn, "eval") == 0);
  CHECK(rotated.load(id)->get("a") == "1");
}

// Its own server, killed.
TEST_CASE("a dead Redis is a typed error, and a forged id is refused without it", "[single-server]") {
  cachet::testing::RedisServer own;
  cachet::Pool pool(cachet::test::quick_to_fail(own));
  auto sessions = cachet::make_session_store(pool, {.secrets = {"k"}});
  const std::string id = sessions.create("dave");
  own.kill();
  CHECK_THROWS_AS(sessions.load(id), cachet::ConnectionError);
  CHECK_THROWS_AS(sessions.set(id, "a", "1"), cachet::ConnectionError);
  CHECK_THROWS_AS(sessions.create("dave"), cachet::ConnectionError);
  CHECK_THROWS_AS(sessions.destroy_all("dave"), cachet::ConnectionError);
  CHECK_THROWS_AS(sessions.load(id.substr(0, 90) + "x"), cachet::InvalidSessionId);
}

namespace {
// A login between its two steps: its handle is in `user`'s index, its hash not written yet.
std::string login_in_flight(cachet::Pool& pool, std::string_view user) {
  const std::string handle = "{0123456789abcdef}:" + cachet::detail::sha256_hex("in flight");
  const std::string index = "session:user:{" + std::string(user) + "}";
  pool.run(index, [&](cachet::Connection& conn) {
    cachet::detail::SessionScripts::shared().index_add.run(conn, {index}, {handle, 43'200'000LL});  // the default absolute
  });
  return handle;
}
// That login's second step: the create script for its handle (-1: tombstoned, refused).
long long finish_login(cachet::Pool& pool, const std::string& handle, std::string_view user) {
  const std::vector<std::string> keys{"session:" + handle, "session:" + handle + ":ended"};
  return pool.run(keys[0], [&](cachet::Connection& conn) {
    return cachet::detail::SessionScripts::shared()
        .create.run(conn, keys, std::vector<std::string>{"60000", "3600000", std::string(user)})
        .as_integer();
  });
}
}  // namespace

TEST_CASE("a login between its index entry and its session does not survive log out everywhere") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  auto sessions = cachet::make_session_store(pool);
  const std::string live = sessions.create("alice");
  const std::string handle = login_in_flight(pool, "alice");
  CHECK(sessions.destroy_all("alice") == 1);  // the in-flight login is not counted live
  CHECK(finish_login(pool, handle, "alice") == -1);
  CHECK(conn.command({"EXISTS", "session:" + handle}).as_integer() == 0);
  CHECK_FALSE(sessions.load(live));
  CHECK(sessions.list("alice").empty());
}

TEST_CASE("max_per_user evicting a login between its two steps ends that login") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  auto sessions = cachet::make_session_store(pool, {.max_per_user = 1});
  const std::string handle = login_in_flight(pool, "alice");
  conn.command({"ZINCRBY", "session:user:{alice}", -10'000, handle});  // the older of the two
  const std::string kept = sessions.create("alice");  // over the maximum: the in-flight one is evicted
  CHECK(finish_login(pool, handle, "alice") == -1);
  CHECK(sessions.load(kept));
  const auto listed = sessions.list("alice");
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].handle == key_of(kept).substr(8));
}

TEST_CASE("destroy_listed does not end a present session of another user") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto sessions = cachet::make_session_store(pool);
  const std::string bobs = sessions.create("bob");
  CHECK_FALSE(sessions.destroy_listed("alice", key_of(bobs).substr(8)));
  CHECK(sessions.load(bobs));
  CHECK_NOTHROW(sessions.set(bobs, "a", "1"));
}

TEST_CASE("an encrypted attribute is bound to its session and name, and survives regeneration") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto sessions = cachet::make_session_store(pool);
  const cachet::Encrypted<cachet::JsonCodec<nlohmann::json>> sealed(
      std::make_shared<cachet::KeyRing>(1, std::string(32, 'k')));
  const std::string id = sessions.create("", {}), other = sessions.create("", {});
  sessions.set_as(id, "card", nlohmann::json{{"last4", "4242"}}, sealed);
  const std::string bytes(*sessions.load(id)->get("card"));
  sessions.set(id, "name", bytes);      // copied to another attribute
  sessions.set(other, "card", bytes);   // copied to another session, same name
  CHECK_THROWS_AS(sessions.load(id)->get_as("name", sealed), cachet::DecodeError);
  CHECK_THROWS_AS(sessions.load(other)->get_as("card", sealed), cachet::DecodeError);
  CHECK(sessions.load(id)->get_as("card", sealed)->at("last4") == "4242");
  const std::string renewed = sessions.regenerate(id, "alice");
  CHECK(sessions.load(renewed)->get_as("card", sealed)->at("last4") == "4242");
}

TEST_CASE("regeneration without a user refuses when the session's user is not the one indexed under") {
  // White box: regenerate() reads the user, indexes the new handle under it, then
  // runs this script; a user changed in between must not leave a stale entry.
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto conn = server.connect();
  auto sessions = cachet::make_session_store(pool);
  const std::string id = sessions.create("alice");
  const std::string to = "{" + id.substr(0, 16) + "}:" + cachet::detail::sha256_hex("new secret");
  const std::vector<std::string> keys{key_of(id), key_of(id) + ":ended", "session:" + to, "session:" + to + ":ended"};
  const long long r = pool.run(keys[0], [&](cachet::Connection& c) {
    const cachet::Reply reply = cachet::detail::SessionScripts::shared().regenerate.run(
        c, keys, std::vector<std::string>{"300000", "0", "bob"});  // read "bob": stale
    return reply.is_integer() ? reply.as_integer() : 0;
  });
  CHECK(r == -5);
  CHECK(conn.command({"EXISTS", "session:" + to}).as_integer() == 0);
  const std::string renewed = sessions.regenerate(id);  // the real owner: indexed under alice
  CHECK(sessions.load(renewed)->user() == "alice");
  const auto listed = sessions.list("alice");
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].handle == key_of(renewed).substr(8));
}
