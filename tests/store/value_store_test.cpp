// ValueStore: decoded values shared out of the first tier, and fills that lose
// the race against an invalidation are refused.
#include <cachet/clock.hpp>
#include <cachet/store/value_store.hpp>

#include <catch2/catch.hpp>
#include <support/concurrency.hpp>
#include <support/counting_new.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Store = cachet::BasicValueStore<std::string, cachet::ClockRef<cachet::ManualClock>>;

cachet::Cached<std::string> cached(std::string v) { return {std::make_shared<const std::string>(std::move(v)), {}}; }

}  // namespace

TEST_CASE("a kept value is shared, not copied, and a repeated hit allocates nothing") {
  cachet::ValueStore<std::string> store;
  const std::string key = "a key long enough to be on the heap as a std::string";
  auto entry = cached(std::string(100, 'v'));
  entry.meta.compute_time = 7ms;
  const std::string* original = entry.value.get();
  CHECK(store.fill(key, store.ticket(key), entry, 100, 1min));

  std::optional<cachet::Cached<std::string>> hit;
  CHECK(cachet::test::allocations_in([&] { hit = store.get(key); }) == 0);  // the filling thread holds a handle
  REQUIRE(hit);
  CHECK(hit->value.get() == original);
  CHECK(hit->meta.compute_time == 7ms);
  CHECK(cachet::test::allocations_in([&] { hit = store.get("absent"); }) == 0);
  CHECK_FALSE(hit);

  const auto s = store.stats();
  CHECK(s.size == 1);
  CHECK(s.bytes == key.size() + 100);
  CHECK(s.hits == 0);  // answered by this thread's handle, not the shard
  CHECK(s.misses == 1);

  // Another thread's first hit goes to the shard and takes its own handle; its next allocates nothing.
  const std::string *first = nullptr, *second = nullptr;
  std::size_t allocated = 1;
  cachet::test::Thread([&] {
    first = store.get(key)->value.get();
    allocated = cachet::test::allocations_in([&] { second = store.get(key)->value.get(); });
  }).join();
  CHECK(first == original);
  CHECK(second == original);
  CHECK(allocated == 0);
  CHECK(store.stats().hits == 1);
}

TEST_CASE("a fill whose key was invalidated after its ticket is refused, a later ticket's is kept") {
  cachet::ValueStore<std::string> store;
  const auto early = store.ticket("k");
  CHECK_FALSE(store.invalidate("k"));  // nothing held, the race is still recorded
  CHECK_FALSE(store.fill("k", early, cached("old"), 3, 1min));
  CHECK_FALSE(store.get("k"));
  CHECK(store.stats().refused == 1);

  CHECK(store.fill("k", store.ticket("k"), cached("new"), 3, 1min));
  CHECK(*store.get("k")->value == "new");
  CHECK(store.invalidate("k"));
  CHECK_FALSE(store.get("k"));
}

TEST_CASE("clear drops everything and refuses every fill in flight") {
  cachet::ValueStore<std::string> store({.max_entries = 1024, .shards = 4});
  std::vector<cachet::ValueStore<std::string>::Ticket> tickets;
  for (int i = 0; i < 100; ++i) {
    const std::string k = "k" + std::to_string(i);
    CHECK(store.fill(k, store.ticket(k), cached("v"), 1, 1min));
    tickets.push_back(store.ticket(k));
  }
  store.clear();
  CHECK(store.stats().size == 0);
  int kept = 0;
  for (int i = 0; i < 100; ++i) kept += store.fill("k" + std::to_string(i), tickets[i], cached("stale"), 5, 1min);
  CHECK(kept == 0);
}

TEST_CASE("the TTL counts from the ticket, when the read was not sent yet") {
  cachet::ManualClock clock;
  Store store({}, cachet::ClockRef(clock));
  const auto t = store.ticket("k");
  clock.advance(4s);  // a slow read
  CHECK(store.fill("k", t, cached("v"), 1, 10s));
  clock.advance(5s);
  CHECK(store.get("k"));
  clock.advance(1s);  // 10 s after the ticket
  CHECK_FALSE(store.get("k"));
  CHECK_FALSE(store.fill("k", store.ticket("k"), cached("v"), 1, 0ms));  // nothing to keep
}

TEST_CASE("on the coarse wall clock, an entry is not served once its TTL and the clock's resolution have passed") {
  cachet::ValueStore<std::string> store;  // CoarseSystemClock: behind the system clock by less than its resolution
  const auto t = store.ticket("k");
  REQUIRE(store.fill("k", t, cached("v"), 1, 50ms));
  const auto filled = std::chrono::system_clock::now();  // the TTL counts from the ticket, taken before
  CHECK(store.get("k", t.taken));
  const auto deadline = filled + 50ms + cachet::CoarseSystemClock::resolution();
  while (std::chrono::system_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  CHECK_FALSE(store.get("k"));
  CHECK_FALSE(store.get("k", cachet::CoarseSystemClock::now()));
}

TEST_CASE("a cached \"does not exist\" is kept like a value") {
  cachet::ValueStore<int> store;
  cachet::Cached<int> none;
  none.meta.negative = true;
  CHECK(store.fill("gone", store.ticket("gone"), none, 14, 1min));
  const auto hit = store.get("gone");
  REQUIRE(hit);
  CHECK(hit->value == nullptr);
  CHECK(hit->meta.negative);
}

TEST_CASE("bounded by entries and by weight") {
  cachet::ValueStore<std::string> store({.max_entries = 128, .max_bytes = 128 * 20, .shards = 1});
  for (int i = 0; i < 1000; ++i) {
    const std::string k = "k" + std::to_string(i);
    store.fill(k, store.ticket(k), cached("v"), 10, 1min);
  }
  auto s = store.stats();
  CHECK(s.size <= 128);
  CHECK(s.bytes <= 128 * 20);
  CHECK(s.evictions > 0);
  CHECK_FALSE(store.fill("big", store.ticket("big"), cached("v"), 128 * 20, 1min));  // key + weight over the budget
  CHECK(store.stats().rejected == 1);
}

TEST_CASE("racing fills and reads never see a value older than the last invalidation of its key") {
  // The source of truth is `source[k]`; a writer bumps it and then invalidates
  // the key, as a write to Redis followed by its invalidation message would,
  // and announces it in `invalidated[k]`. Readers take a ticket, read the
  // source, dawdle, and fill; or read the store (through their own handles)
  // and check the value against what had been invalidated before they began.
  constexpr int keys = 8;
  cachet::ValueStore<int> store({.max_entries = 1024, .shards = 2});
  std::array<std::atomic<int>, keys> source{}, invalidated{};
  std::atomic<bool> done{false};
  std::atomic<int> older{0}, checks{0}, read_older{0}, reads{0}, started{0};
  cachet::test::Thread writer([&] {
    const cachet::test::RaiseOnExit stop_readers(done);  // also when a store call throws
    std::mt19937 rng(1);
    while (started < 3) std::this_thread::yield();  // under TSan the rounds could otherwise end before a reader ran
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (int round = 0; round < 5'000 || (checks < 100 && std::chrono::steady_clock::now() < give_up); ++round) {
      const int k = static_cast<int>(rng() % keys);
      const std::string key = "k" + std::to_string(k);
      const int now = ++source[k];
      store.invalidate(key);
      invalidated[k].store(now, std::memory_order_release);
      for (int i = 0; i < 4; ++i) std::this_thread::yield();  // room for the readers' fills
      if (const auto hit = store.get(key)) {  // whatever is kept from here on is at least `now`
        ++checks;
        older += *hit->value < now;
      }
    }
  });
  cachet::test::in_threads(3, [&](int t) {
    std::mt19937 rng(static_cast<unsigned>(t) + 7);
    ++started;
    while (!done) {
      const int k = static_cast<int>(rng() % keys);
      const std::string key = "k" + std::to_string(k);
      if (rng() % 2 == 0) {
        const int floor = invalidated[k].load(std::memory_order_acquire);
        if (const auto hit = store.get(key)) {
          ++reads;
          read_older += *hit->value < floor;
        }
        continue;
      }
      const auto ticket = store.ticket(key);
      const int seen = source[k];
      if (rng() % 4 == 0) std::this_thread::yield();
      store.fill(key, ticket, {std::make_shared<const int>(seen), {}}, 4, 1min);
    }
  });
  writer.join();
  CHECK(older == 0);
  CHECK(read_older == 0);
  CHECK(checks > 0);
  CHECK(reads > 0);
  CHECK(store.stats().refused > 0);
}
