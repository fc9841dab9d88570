#include <cachet/codec/string.hpp>
#include <cachet/policy/cache_aside.hpp>
#include <cachet/policy/warm.hpp>
#include <cachet/policy/write_through.hpp>
#include <cachet/store/redis_store.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/server.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;

namespace {

using StringCache = cachet::CacheAside<std::string, cachet::StringCodec>;

cachet::CacheOptions options(std::string name) {
  cachet::CacheOptions o;
  o.ns = "warm";
  o.name = std::move(name);
  o.ttl = cachet::TtlPolicy({.fresh = 1min, .stale = 1min});
  return o;
}

// Ids "0".."n-1", and the views warm() takes.
struct Ids {
  explicit Ids(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) text.push_back(std::to_string(i));
    views.assign(text.begin(), text.end());
  }
  std::vector<std::string> text;
  std::vector<std::string_view> views;
};

std::string row(std::string_view id) { return "row-" + std::string(id); }

// A batch loader that records every id it is asked for, and throws for a batch holding `poison`.
struct RecordingLoader {
  std::mutex mutex;
  std::multiset<std::string> asked;
  std::atomic<int> calls{0};
  std::string poison = "none";
  std::vector<std::optional<std::string>> operator()(std::span<const std::string_view> ids) {
    ++calls;
    std::vector<std::optional<std::string>> out;
    std::lock_guard lock(mutex);
    for (auto id : ids) {
      if (id == poison) throw std::runtime_error("database timeout for " + poison);
      asked.insert(std::string(id));
      out.emplace_back(row(id));
    }
    return out;
  }
};

void check_all_cached(StringCache& cache, const Ids& ids) {
  std::size_t cached = 0;
  for (auto id : ids.views) cached += cache.get(id) == row(id) ? 1 : 0;
  CHECK(cached == ids.views.size());
}

}  // namespace

TEST_CASE("warm loads and caches every id, reporting its progress") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  StringCache cache(cachet::RedisStore(pool), options("all"));
  const Ids ids(1000);
  RecordingLoader loader;
  std::vector<cachet::WarmProgress> seen;  // on_progress runs one call at a time
  const cachet::WarmResult r = cachet::warm(cache, ids.views, loader,
                                            {.batch_size = 64, .concurrency = 4,
                                             .on_progress = [&](const cachet::WarmProgress& p) { seen.push_back(p); }});
  CHECK(r.progress.done == 1000);
  CHECK(r.progress.total == 1000);
  CHECK(r.progress.failed == 0);
  CHECK_FALSE(r.cancelled);
  CHECK(r.checkpoint.done_before == 1000);
  CHECK(r.checkpoint.done_after.empty());
  CHECK(loader.calls == 16);  // ceil(1000 / 64)
  CHECK(loader.asked.size() == 1000);
  REQUIRE(seen.size() == 16);
  CHECK(std::is_sorted(seen.begin(), seen.end(), [](auto& a, auto& b) { return a.done < b.done; }));
  CHECK(seen.back().done == 1000);
  check_all_cached(cache, ids);
  auto conn = server.connect();
  CHECK(conn.command({"PTTL", cache.key("7")}).as_integer() > 60'000);  // the cache's own TTL
}

TEST_CASE("warm respects the batch size and keeps at most `concurrency` loads in flight") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  StringCache cache(cachet::RedisStore(pool), options("bounded"));
  const Ids ids(300);
  constexpr std::size_t concurrency = 3;
  std::mutex mutex;
  std::condition_variable cv;
  int in_flight = 0, most = 0, calls = 0;
  bool gate_open = false;  // once `concurrency` loads were in flight at once
  std::atomic<std::size_t> largest_batch{0};
  std::atomic<bool> gate_timed_out{false};
  auto loader = [&](std::span<const std::string_view> batch) {
    largest_batch = std::max(largest_batch.load(), batch.size());
    {
      std::unique_lock lock(mutex);
      most = std::max(most, ++in_flight);
      // The first calls wait until `concurrency` are in flight: the bound is reached, not just respected.
      if (in_flight == static_cast<int>(concurrency)) gate_open = true, cv.notify_all();
      if (++calls <= static_cast<int>(concurrency) && !cv.wait_for(lock, 30s, [&] { return gate_open; }))
        gate_timed_out = true;
    }
    std::vector<std::optional<std::string>> out;
    for (auto id : batch) out.emplace_back(row(id));
    std::lock_guard lock(mutex);
    --in_flight;
    return out;
  };
  const cachet::WarmResult r = cachet::warm(cache, ids.views, loader, {.batch_size = 7, .concurrency = concurrency});
  CHECK_FALSE(gate_timed_out);
  CHECK(most == static_cast<int>(concurrency));
  CHECK(largest_batch == 7);
  CHECK(calls == 43);  // ceil(300 / 7)
  CHECK(r.progress.done == 300);
  check_all_cached(cache, ids);
}

TEST_CASE("a batch whose load fails is reported, the rest are warmed, and a resume retries it") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  StringCache cache(cachet::RedisStore(pool), options("failing"));
  const Ids ids(100);
  RecordingLoader loader;
  loader.poison = "42";  // in batch [40, 50)
  const cachet::WarmResult r = cachet::warm(cache, ids.views, loader, {.batch_size = 10, .concurrency = 2});
  CHECK(r.progress.done == 100);
  CHECK(r.progress.failed == 10);
  CHECK(r.first_error.find("database timeout for 42") != std::string::npos);
  REQUIRE(r.failed.size() == 10);
  CHECK(r.failed.front() == 40);
  CHECK(r.failed.back() == 49);
  CHECK(r.checkpoint.done_before == 40);
  REQUIRE(r.checkpoint.done_after.size() == 1);
  CHECK(r.checkpoint.done_after[0] == std::pair<std::size_t, std::size_t>(50, 100));
  CHECK_FALSE(cache.get("45").has_value());
  CHECK(cache.get("55") == row("55"));

  RecordingLoader retry;
  const cachet::WarmResult again = cachet::warm(cache, ids.views, retry, {.batch_size = 10, .resume = r.checkpoint});
  CHECK(retry.asked.size() == 10);  // only the failed batch
  CHECK(*retry.asked.begin() == "40");
  CHECK(again.progress.done == 100);
  CHECK(again.progress.failed == 0);
  check_all_cached(cache, ids);
}

TEST_CASE("a cancelled warm resumes from its checkpoint and loads only the rest") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  StringCache cache(cachet::RedisStore(pool), options("resume"));
  const Ids ids(500);
  RecordingLoader first;
  std::stop_source stop;
  const cachet::WarmResult cut = cachet::warm(cache, ids.views, first,
                                              {.batch_size = 20, .concurrency = 3,
                                               .on_progress = [&](const cachet::WarmProgress& p) {
                                                 if (p.done >= 100) stop.request_stop();  // a cancel mid-way
                                               },
                                               .stop = stop.get_token()});
  CHECK(cut.cancelled);
  CHECK(cut.progress.done < 500);
  CHECK(cut.progress.done >= 100);
  CHECK(first.asked.size() == cut.progress.done);

  RecordingLoader rest;
  const cachet::WarmResult r = cachet::warm(cache, ids.views, rest, {.batch_size = 20, .concurrency = 3, .resume = cut.checkpoint});
  CHECK_FALSE(r.cancelled);
  CHECK(r.progress.done == 500);
  CHECK(rest.asked.size() == 500 - first.asked.size());
  std::size_t twice = 0;
  for (const std::string& id : rest.asked) twice += first.asked.count(id);
  CHECK(twice == 0);  // nothing loaded again
  check_all_cached(cache, ids);
}

TEST_CASE("a warm write never replaces a newer value written between the warm's load and its write") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  StringCache cache(cachet::RedisStore(pool), options("race"));
  const Ids ids(20);
  cache.set("3", "cached before the warm");  // already there: kept
  auto loader = [&](std::span<const std::string_view> batch) {
    std::vector<std::optional<std::string>> out;
    for (auto id : batch) out.emplace_back(row(id));  // the rows as the warm read them
    // A writer updates id 5 after the warm's load and before its write.
    if (std::find(batch.begin(), batch.end(), "5") != batch.end()) cache.set("5", "newer, from a writer");
    return out;
  };
  const cachet::WarmResult r = cachet::warm(cache, ids.views, loader, {.batch_size = 10, .concurrency = 1});
  CHECK(r.progress.kept == 2);
  CHECK(r.progress.failed == 0);
  CHECK(cache.get("5") == "newer, from a writer");
  CHECK(cache.get("3") == "cached before the warm");
  CHECK(cache.get("4") == row("4"));
  CHECK(cache.get("15") == row("15"));
}

TEST_CASE("ids the loader finds nothing for are not cached, and bad options are refused") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  StringCache cache(cachet::RedisStore(pool), options("absent"));
  const Ids ids(10);
  auto odd_only = [](std::span<const std::string_view> batch) {
    std::vector<std::optional<std::string>> out;
    for (auto id : batch) out.push_back((id.back() - '0') % 2 ? std::optional(row(id)) : std::nullopt);
    return out;
  };
  const cachet::WarmResult r = cachet::warm(cache, ids.views, odd_only, {.batch_size = 4});
  CHECK(r.progress.done == 10);
  CHECK_FALSE(cache.get("2").has_value());
  CHECK(cache.get("3") == row("3"));
  CHECK_THROWS_AS(cachet::warm(cache, ids.views, odd_only, {.batch_size = 0}), std::invalid_argument);
  CHECK_THROWS_AS(cachet::warm(cache, ids.views, odd_only, {.concurrency = 0}), std::invalid_argument);
  auto wrong_size = [](std::span<const std::string_view>) { return std::vector<std::optional<std::string>>(1); };
  const cachet::WarmResult bad = cachet::warm(cache, ids.views, wrong_size, {.batch_size = 5});
  CHECK(bad.progress.failed == 10);
  CHECK(bad.first_error.find("returned 1 values for 5 ids") != std::string::npos);
}

// Its own server, killed: the same on either target.
TEST_CASE("warming a cache whose Redis is down reports every batch failed, and throws nothing", "[single-server]") {
  cachet::testing::RedisServer dead;
  cachet::ConnectionOptions o = cachet::test::quick_to_fail(dead);
  cachet::Pool pool(o);
  StringCache cache(cachet::RedisStore(pool), options("down"));
  dead.kill();
  const Ids ids(30);
  RecordingLoader loader;
  const cachet::WarmResult r = cachet::warm(cache, ids.views, loader, {.batch_size = 10, .concurrency = 2});
  CHECK(r.progress.failed == 30);
  CHECK(r.checkpoint.done_before == 0);
  CHECK_FALSE(r.first_error.empty());
}

TEST_CASE("in a write-through cache, a put that deleted the entry between the warm's load and write refuses the warm write") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  StringCache cache(cachet::RedisStore(pool), options("watched"));
  std::int64_t version = 0;
  auto writes = cachet::write_through(cache, [&](std::string_view, const std::string&) { return ++version; },
                                      {.on_write = cachet::CacheUpdate::del});
  const Ids ids(10);
  auto loader = [&](std::span<const std::string_view> batch) {
    std::vector<std::optional<std::string>> out;
    for (auto id : batch) out.emplace_back(row(id));
    writes.put("5", "newer row");  // the database updated and the entry deleted: absent, yet the warm's row is old
    return out;
  };
  const cachet::WarmResult r = cachet::warm(cache, ids.views, loader, {.batch_size = 10});
  CHECK(r.progress.kept == 1);
  CHECK_FALSE(cache.get("5").has_value());  // not the old row: the next read loads the new one
  CHECK(cache.get("4") == row("4"));
}

TEST_CASE("a store write only if absent is superseded by any value, and written over none") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  cachet::RedisStore store(pool);
  cachet::StoreWrite w{"k", "warm", 60s};
  w.only_if_absent = true;
  CHECK_FALSE(w.plain());
  CHECK(store.write(w) == cachet::WriteResult::written);
  CHECK(store.get("k") == "warm");
  store.set("k", "newer", 60s);
  CHECK(store.write(w) == cachet::WriteResult::superseded);
  CHECK(store.get("k") == "newer");
  cachet::StoreWrite other{"other", "warm", 60s};
  other.only_if_absent = true;
  const cachet::StoreWrite batch[] = {w, other};
  const cachet::BatchWriteResult b = store.write_many(batch);
  CHECK(b.superseded == 1);
  CHECK(store.get("other") == "warm");
}

// As a load's write: the tags callback runs before the breaker's call, so its
// throw fails its batch (the warm's error report), is no outage, and writes nothing.
TEST_CASE("a tags callback that throws fails its warm batch, writes none of it, and is no outage") {
  auto& server = cachet::test::clean_target();
  cachet::Pool pool(server.connection_options());
  auto o = options("tags-throw");
  o.breaker = {.failure_threshold = 1, .open_for = std::chrono::hours(1)};  // one failure would open it for the test
  StringCache cache(cachet::RedisStore(pool), o);
  cache.tag_loaded_values([](const std::string& v) {
    if (v == row("5")) throw std::domain_error("no tags for 5");
    return std::vector<std::string>{"all"};
  });
  const Ids ids(20);
  RecordingLoader loader;
  const cachet::WarmResult r = cachet::warm(cache, ids.views, loader, {.batch_size = 10, .concurrency = 1});
  CHECK(r.progress.failed == 10);
  CHECK(r.first_error == "no tags for 5");
  REQUIRE(r.failed.size() == 10);
  CHECK(r.failed.front() == 0);
  CHECK(r.checkpoint.done_before == 0);
  CHECK(cache.breaker().state() == cachet::BreakerState::closed);
  CHECK(cache.metrics().value(cachet::Event::redis_error) == 0);
  for (std::size_t i = 0; i < 10; ++i) CHECK_FALSE(cache.get(ids.views[i]));  // nothing of the failed batch
  for (std::size_t i = 10; i < 20; ++i) CHECK(cache.get(ids.views[i]) == row(ids.views[i]));
  cache.invalidate_tags({"all"});  // the other batch was tagged
  CHECK_FALSE(cache.get("15"));
}

namespace {

// Four warm batches read the database, then an update's invalidate_tags runs
// and returns, then the batches write. Each read the tag epoch before its load,
// so each tagged write (even ids) is refused: kept, never cached; the untagged
// ones (odd ids, no tags) of the same batches are written.
void race_warm(cachet::HashTag hash_tag) {
  cachet::Pool pool(cachet::test::target().connection_options());
  cachet::CacheOptions o = options(hash_tag == cachet::HashTag::ns ? "race-ns" : "race-entity");
  o.keys.hash_tag = hash_tag;
  StringCache cache(cachet::RedisStore(pool), o);
  cache.tag_loaded_values([](const std::string& v) {  // v: "row-<id>@<version>"
    return std::stoul(v.substr(4)) % 2 ? std::vector<std::string>{} : std::vector<std::string>{"all"};
  });
  constexpr std::size_t batches = 4, per_batch = 5;
  const Ids ids(batches * per_batch);
  std::atomic<int> version{0};
  cachet::test::Gate read_db, invalidated;
  auto loader = [&](std::span<const std::string_view> batch) {
    std::vector<std::optional<std::string>> out;
    for (auto id : batch) out.emplace_back(row(id) + "@" + std::to_string(version.load()));
    read_db.arrive();
    if (!invalidated.wait_for(1)) throw std::runtime_error("invalidate_tags did not return");
    return out;
  };
  cachet::WarmResult r;
  cachet::test::Thread warming([&] {
    r = cachet::warm(cache, ids.views, loader, {.batch_size = per_batch, .concurrency = batches});
  });
  {
    const cachet::test::ArriveOnExit release(invalidated);  // also when what follows fails
    REQUIRE(read_db.wait_for(batches));
    ++version;
    cache.invalidate_tags({"all"});
  }
  warming.join();
  const std::size_t tagged = ids.views.size() / 2;  // the even ids
  CHECK(r.progress.failed == 0);
  CHECK(r.first_error.empty());
  CHECK(r.progress.kept == tagged);
  CHECK(cache.metrics().value(cachet::Event::stale_write_refused) == tagged);
  std::size_t tagged_cached = 0, untagged_cached = 0;
  for (std::size_t i = 0; i < ids.views.size(); ++i) {
    const std::optional<std::string> cached = cache.get(ids.views[i]);
    if (i % 2 == 0) tagged_cached += cached ? 1 : 0;
    else untagged_cached += cached == row(ids.views[i]) + "@0" ? 1 : 0;
  }
  CHECK(tagged_cached == 0);
  CHECK(untagged_cached == ids.views.size() - tagged);
}

}  // namespace

TEST_CASE("a warm whose batches read the database before an invalidate_tags and write after it stores only their untagged values") {
  cachet::test::clean_target();
  // The default keys (HashTag::entity on a cluster: version counters), then HashTag::ns (the one-server scripts).
  SECTION("default keys") { race_warm(cachet::HashTag::none); }
  SECTION("HashTag::ns") { race_warm(cachet::HashTag::ns); }
}
