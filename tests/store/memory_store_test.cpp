#include <cachet/clock.hpp>
#include <cachet/store/detail/flat_index.hpp>
#include <cachet/store/detail/spin_mutex.hpp>
#include <cachet/store/memory_store.hpp>

#include <support/zipf.hpp>
#include <catch2/catch.hpp>
#include <support/concurrency.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

using namespace std::chrono_literals;

namespace {

using cachet::test::Lru;
using cachet::test::zipf_stream;

using TestStore = cachet::BasicMemoryStore<cachet::ClockRef<cachet::ManualClock>>;

static_assert(cachet::Store<cachet::MemoryStore>);
static_assert(cachet::Store<TestStore>);

std::string key_of(std::size_t i) { return "key:" + std::to_string(i); }



}  // namespace

TEST_CASE("get, set and del") {
  cachet::MemoryStore store;
  CHECK_FALSE(store.get("a"));
  store.set("a", "apple", 1min);
  store.set(std::string_view("b\0\r\n", 4), std::string_view("x\0y", 3), 1min);  // bytes are bytes
  CHECK(store.get("a") == "apple");
  CHECK(store.get(std::string_view("b\0\r\n", 4)) == std::string("x\0y", 3));
  CHECK_FALSE(store.get(std::string_view("b\0\r", 3)));
  CHECK(store.del("a"));
  CHECK_FALSE(store.del("a"));
  CHECK_FALSE(store.get("a"));

  const cachet::MemoryStoreStats s = store.stats();
  CHECK(s.size == 1);
  CHECK(s.bytes == 7);
  CHECK(s.hits == 2);
  CHECK(s.misses == 3);
}

TEST_CASE("batches: get_many, set_many and del_many") {
  cachet::MemoryStore store;
  const std::array<cachet::StoreEntry, 3> entries{{{"k1", "v1", 1min}, {"k2", "v2", 1min}, {"k3", "", 1min}}};
  store.set_many(entries);

  const std::array<std::string_view, 4> keys{"k3", "missing", "k1", "k2"};
  const auto values = store.get_many(keys);
  REQUIRE(values.size() == 4);
  CHECK(values[0] == "");  // an empty value is a value
  CHECK_FALSE(values[1]);
  CHECK(values[2] == "v1");
  CHECK(values[3] == "v2");

  CHECK(store.del_many(keys) == 3);
  CHECK(store.del_many(keys) == 0);
  CHECK(store.stats().size == 0);
  CHECK(store.get_many(std::span<const std::string_view>{}).empty());
}

TEST_CASE("an entry expires at its TTL, without sleeping") {
  cachet::ManualClock clock;
  TestStore store({}, cachet::ClockRef(clock));
  store.set("k", "v", 100ms);
  clock.advance(99ms);
  CHECK(store.get("k") == "v");
  clock.advance(1ms);
  CHECK_FALSE(store.get("k"));  // now >= expiry: gone
  CHECK(store.stats().expirations == 1);
  CHECK(store.stats().size == 0);  // reclaimed when met

  store.set("k", "v", 10ms);
  clock.advance(10ms);
  CHECK_FALSE(store.del("k"));  // an expired key does not exist
  store.set("k", "v", 10ms);
  store.set("k", "w", 1h);  // a rewrite sets a new expiry
  clock.advance(30min);
  CHECK(store.get("k") == "w");
}

TEST_CASE("a TTL of zero or less stores nothing and drops the old value") {
  cachet::MemoryStore store;
  store.set("k", "v", 1min);
  store.set("k", "new", 0ms);
  CHECK_FALSE(store.get("k"));
  store.set("k", "new", -5ms);
  CHECK_FALSE(store.get("k"));
  CHECK(store.stats().size == 0);
  CHECK(store.stats().rejected == 0);
  store.set("forever", "v", std::chrono::milliseconds::max());  // saturates, no overflow
  CHECK(store.get("forever") == "v");
}

TEST_CASE("expired entries are reclaimed before live ones are evicted") {
  cachet::ManualClock clock;
  TestStore store({.max_entries = 3, .shards = 1}, cachet::ClockRef(clock));
  store.set("long1", "v", 1h);
  store.set("short", "v", 10ms);
  store.set("long2", "v", 1h);
  REQUIRE(store.get("long1"));  // all hit, so only expiry singles one out
  REQUIRE(store.get("short"));
  REQUIRE(store.get("long2"));
  clock.advance(20ms);
  store.set("new", "v", 1h);
  CHECK(store.get("long1") == "v");
  CHECK(store.get("long2") == "v");
  CHECK(store.get("new") == "v");
  CHECK(store.stats().expirations == 1);
  CHECK(store.stats().evictions == 0);
}

TEST_CASE("bounded by entries") {
  SECTION("one shard holds exactly max_entries") {
    cachet::MemoryStore store({.max_entries = 100, .shards = 1});
    for (std::size_t i = 0; i < 1000; ++i) store.set(key_of(i), "v", 1min);
    CHECK(store.stats().size == 100);
    CHECK(store.stats().evictions == 900);
    CHECK(store.get(key_of(999)) == "v");  // the newest is never the one evicted
  }
  SECTION("shards share max_entries") {
    cachet::MemoryStore store({.max_entries = 1000, .shards = 4});
    REQUIRE(store.options().shards == 4);
    std::size_t most = 0;
    for (std::size_t i = 0; i < 20'000; ++i) {
      store.set(key_of(i), "v", 1min);
      most = std::max(most, store.stats().size);
    }
    CHECK(most <= 1000);
    CHECK(most >= 900);  // every shard fills up
  }
}

TEST_CASE("shards are a power of two, halved until each holds 64 entries") {
  CHECK(cachet::MemoryStore({.max_entries = 1'000'000, .shards = 5}).options().shards == 8);
  CHECK(cachet::MemoryStore({.max_entries = 1'000'000, .shards = 0}).options().shards == 1);
  CHECK(cachet::MemoryStore({.max_entries = 1000, .shards = 64}).options().shards == 8);  // 125 each
  CHECK(cachet::MemoryStore({.max_entries = 100, .shards = 16}).options().shards == 1);
}

TEST_CASE("SIEVE: entries hit since the hand passed survive a burst of new keys") {
  cachet::MemoryStore store({.max_entries = 100, .shards = 1});
  for (std::size_t i = 0; i < 100; ++i) store.set(key_of(i), "v", 1min);
  for (std::size_t i = 0; i < 50; ++i) REQUIRE(store.get(key_of(i)));
  for (std::size_t i = 100; i < 150; ++i) store.set(key_of(i), "v", 1min);  // a scan of one-off keys
  std::size_t hot = 0, cold = 0;
  for (std::size_t i = 0; i < 50; ++i) hot += store.get(key_of(i)).has_value();
  for (std::size_t i = 50; i < 100; ++i) cold += store.get(key_of(i)).has_value();
  CHECK(hot == 50);
  CHECK(cold == 0);
}

TEST_CASE("under 1M inserts of random sizes stays within its byte limit") {
  const std::size_t max_bytes = std::size_t{1} << 20;
  cachet::MemoryStore store({.max_entries = 1'000'000, .max_bytes = max_bytes, .shards = 4});
  const std::size_t shard_bytes = max_bytes / store.options().shards;
  std::mt19937 rng(42);
  std::uniform_int_distribution<std::size_t> key(0, 199'999), size(0, 2000), rare(0, 9999);
  const std::string big(shard_bytes + 1, 'x'), filler(2000, 'v');
  std::size_t most_bytes = 0, most_entries = 0;
  for (std::size_t i = 0; i < 1'000'000; ++i) {
    const std::string_view value = rare(rng) == 0 ? big : std::string_view(filler).substr(0, size(rng));
    store.set(key_of(key(rng)), value, 1h);
    const auto s = store.stats();
    most_bytes = std::max(most_bytes, s.bytes);
    most_entries = std::max(most_entries, s.size);
  }
  const auto s = store.stats();
  CHECK(most_bytes <= max_bytes);
  CHECK(s.bytes > max_bytes * 9 / 10);  // it did fill up
  CHECK(most_entries < 10'000);         // the byte limit was the one that bound (~1 KB entries)
  CHECK(s.rejected > 50);               // the oversize values, one in 10,000
  CHECK(s.evictions > 900'000);
}

TEST_CASE("an entry larger than a shard's byte budget is not stored, and set does not throw") {
  cachet::MemoryStore store({.max_entries = 1000, .max_bytes = 1000, .shards = 1});
  store.set("k", std::string(999, 'v'), 1min);  // key + value = 1000: fits exactly
  CHECK(store.get("k"));
  CHECK_NOTHROW(store.set("k", std::string(1000, 'v'), 1min));
  CHECK_FALSE(store.get("k"));  // and the old value is not served either
  const auto s = store.stats();
  CHECK(s.rejected == 1);
  CHECK(s.size == 0);
  CHECK(s.bytes == 0);
}

TEST_CASE("overwriting a key updates its bytes") {
  cachet::MemoryStore store({.max_entries = 1000, .max_bytes = 1000, .shards = 1});
  store.set("key", std::string(10, 'a'), 1min);
  CHECK(store.stats().bytes == 13);
  store.set("key", std::string(100, 'b'), 1min);
  CHECK(store.stats().bytes == 103);
  store.set("key", "", 1min);
  CHECK(store.stats().bytes == 3);
  CHECK(store.stats().size == 1);
  CHECK(store.get("key") == "");

  // Growing an entry evicts others to make room, never the entry itself.
  store.set("other", std::string(500, 'o'), 1min);
  store.set("key", std::string(600, 'c'), 1min);
  CHECK(store.get("key") == std::string(600, 'c'));
  CHECK_FALSE(store.get("other"));
  CHECK(store.stats().bytes == 603);
}

TEST_CASE("clear empties every shard") {
  cachet::MemoryStore store({.max_entries = 1000, .shards = 4});
  for (std::size_t i = 0; i < 500; ++i) store.set(key_of(i), "v", 1min);
  store.clear();
  CHECK(store.stats().size == 0);
  CHECK(store.stats().bytes == 0);
  CHECK_FALSE(store.get(key_of(1)));
  store.set(key_of(1), "v", 1min);
  CHECK(store.get(key_of(1)) == "v");
}

TEST_CASE("on a Zipf(0.99) stream the hit ratio beats an LRU of the same capacity") {
  const std::size_t keys = 100'000, capacity = 1000;
  const auto stream = zipf_stream(keys, 0.99, 300'000, 7);
  std::vector<std::string> names(keys);
  for (std::size_t i = 0; i < keys; ++i) names[i] = key_of(i);

  cachet::MemoryStore store({.max_entries = capacity, .max_bytes = std::size_t{1} << 30});
  Lru lru(capacity);
  std::size_t store_hits = 0, lru_hits = 0;
  for (const std::uint32_t k : stream) {
    if (store.get(names[k])) ++store_hits;
    else store.set(names[k], "value", 1h);
    lru_hits += lru.access(k);
  }
  const double store_ratio = static_cast<double>(store_hits) / static_cast<double>(stream.size());
  const double lru_ratio = static_cast<double>(lru_hits) / static_cast<double>(stream.size());
  INFO("MemoryStore " << store_ratio << " vs LRU " << lru_ratio << " (" << store.options().shards << " shards)");
  CHECK(store.stats().size <= capacity);
  CHECK(store_ratio > lru_ratio + 0.05);
}

TEST_CASE("two threads hammering one store") {
  cachet::ManualClock clock;
  TestStore store({.max_entries = 512, .max_bytes = 32 * 1024, .shards = 4}, cachet::ClockRef(clock));
  const std::size_t ops = 100'000;
  std::array<std::size_t, 2> gets{}, wrong{};

  auto work = [&](std::size_t t) {
    std::mt19937 rng(static_cast<unsigned>(t));
    std::uniform_int_distribution<std::size_t> key(0, 2047), pct(0, 99), len(0, 200), ttl(1, 50);
    for (std::size_t i = 0; i < ops; ++i) {
      const std::string k = key_of(key(rng));
      const std::size_t p = pct(rng);
      if (p < 60) {
        const auto v = store.get(k);
        ++gets[t];
        wrong[t] += v && v->compare(0, k.size() + 1, k + "=") != 0;  // a value belongs to its key
      } else if (p < 90) {
        store.set(k, k + "=" + std::string(len(rng), 'v'), std::chrono::milliseconds(ttl(rng)));
      } else if (p < 95) {
        store.del(k);
      } else {
        const std::string k2 = key_of(key(rng));
        const std::array<std::string_view, 2> ks{k, k2};
        const auto vs = store.get_many(ks);
        gets[t] += 2;
        for (std::size_t j = 0; j < 2; ++j)
          wrong[t] += vs[j] && vs[j]->compare(0, ks[j].size() + 1, std::string(ks[j]) + "=") != 0;
      }
      if (t == 0 && i % 100 == 0) clock.advance(1ms);
    }
  };
  cachet::test::Thread other(work, 1);
  work(0);
  other.join();

  const auto s = store.stats();
  CHECK(wrong[0] + wrong[1] == 0);
  CHECK(s.hits + s.misses == gets[0] + gets[1]);
  CHECK(s.size <= 512);
  CHECK(s.bytes <= 32 * 1024);
  CHECK(s.hits > 0);
  CHECK(s.evictions > 0);
  CHECK(s.expirations > 0);

  // What the counters say is what is there: read every key back (reclaiming the expired).
  std::size_t size = 0, bytes = 0;
  for (std::size_t i = 0; i < 2048; ++i) {
    const std::string k = key_of(i);
    if (const auto v = store.get(k)) {
      ++size;
      bytes += k.size() + v->size();
    }
  }
  CHECK(store.stats().size == size);
  CHECK(store.stats().bytes == bytes);
}

// The building blocks, where a bug would hide behind the store's averages.

TEST_CASE("detail::FlatIndex: erasing from colliding clusters keeps every other item findable") {
  // Few distinct hashes, some at the top of the range so clusters wrap past the last slot.
  std::vector<int> items(3000);
  std::unordered_map<const int*, std::uint32_t> present;
  cachet::detail::FlatIndex<int> index(items.size());
  std::mt19937 rng(3);
  std::uniform_int_distribution<std::size_t> pick(0, items.size() - 1);
  std::uniform_int_distribution<std::uint32_t> top(0xFFFF'FF00, 0xFFFF'FFFF), any(1, 0xFFFF'FFFF);
  for (int round = 0; round < 20'000; ++round) {
    int* item = &items[pick(rng)];
    if (const auto it = present.find(item); it != present.end()) {
      index.erase(it->second, item);
      present.erase(it);
    } else {
      const std::uint32_t h = round % 2 ? top(rng) : any(rng);
      index.insert(h, item);
      present.emplace(item, h);
    }
  }
  REQUIRE(index.size() == present.size());
  std::size_t found = 0;
  for (const auto& [item, h] : present) found += index.find(h, [item = item](const int* e) { return e == item; }) == item;
  CHECK(found == present.size());
  CHECK(index.capacity() <= items.size() * 5 / 4 + 1);  // never bigger than max_items needs
}

TEST_CASE("detail::SpinMutex: two threads, no lost update") {
  cachet::detail::SpinMutex mutex;
  long long counter = 0;  // plain: only the mutex protects it (ThreadSanitizer checks)
  auto add = [&] {
    for (int i = 0; i < 200'000; ++i) {
      std::lock_guard lock(mutex);
      ++counter;
    }
  };
  cachet::test::Thread other(add);
  add();
  other.join();
  CHECK(counter == 400'000);
}

TEST_CASE("MemoryStore::write: plain writes, and a condition, tag or invalidation refused (typed)") {
  cachet::MemoryStore store;
  using cachet::StoreWrite;
  CHECK(store.write({.key = "k", .bytes = "v", .ttl = std::chrono::minutes(1)}) == cachet::WriteResult::written);
  CHECK(store.get("k") == "v");
  const cachet::LockCheck lock{"lock", "token"};
  CHECK_THROWS_AS(store.write({.key = "k", .bytes = "w", .ttl = std::chrono::minutes(1), .lock_check = &lock}),
                  cachet::UnsupportedWriteError);
  CHECK(store.get("k") == "v");
  const std::vector<std::string> sets{"tag"};
  const std::vector<StoreWrite> batch{{.key = "a", .bytes = "1", .ttl = std::chrono::minutes(1)},
                                      {.key = "b", .bytes = "2", .ttl = std::chrono::minutes(1), .tag_sets = sets}};
  CHECK_THROWS_AS(store.write_many(batch), cachet::UnsupportedWriteError);
  CHECK_FALSE(store.get("a"));  // nothing of a refused batch is written
  CHECK(store.write_many(std::span(batch).first(1)).failed == 0);
  CHECK(store.get("a") == "1");
  STATIC_REQUIRE(cachet::WritingStore<cachet::MemoryStore>);
  STATIC_REQUIRE_FALSE(cachet::ConditionalStore<cachet::MemoryStore>);
}
