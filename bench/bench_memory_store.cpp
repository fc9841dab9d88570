// MemoryStore::get next to a std::unordered_map<std::string, std::string>
// behind a std::shared_mutex (shared_lock on get), on one Zipf(0.99) key stream
// over 100k keys with 100-byte values, 1 and 2 threads; then, once, the hit
// ratio of MemoryStore against a plain LRU of the same capacity on that stream,
// and the memory each entry costs beyond its key and value bytes. As in
// bench/README.md, single-thread figures pinned:
//   taskset -c 0 build/bench/bench/bench_memory_store --benchmark_filter=threads:1$ --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true --benchmark_enable_random_interleaving=true
// and 2-thread figures unpinned (--benchmark_filter=threads:2$).

#include "ratio_reporter.hpp"

#include <cachet/store/memory_store.hpp>

#include <support/zipf.hpp>
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

// Every allocation carries its size in a 16-byte prefix, so that the bytes
// allocated while `counting` is on can be tallied exactly, frees included. Off
// while timing: the gate is one relaxed load on a line nobody writes.
namespace {

using cachet::test::Lru;
using cachet::test::zipf_stream;
struct alignas(16) Prefix {
  std::size_t size;
  bool counted;
};
std::atomic<bool> counting{false};
std::atomic<long long> counted_bytes{0}, counted_blocks{0};

void* allocate(std::size_t n) {
  void* p = std::malloc(n + sizeof(Prefix));
  if (!p) throw std::bad_alloc();
  const bool counted = counting.load(std::memory_order_relaxed);
  ::new (p) Prefix{n, counted};
  if (counted) {
    counted_bytes += static_cast<long long>(n);
    ++counted_blocks;
  }
  return static_cast<char*>(p) + sizeof(Prefix);
}
void release(void* p) noexcept {
  if (!p) return;
  auto* prefix = reinterpret_cast<Prefix*>(static_cast<char*>(p) - sizeof(Prefix));
  if (prefix->counted) {
    counted_bytes -= static_cast<long long>(prefix->size);
    --counted_blocks;
  }
  std::free(prefix);
}
}  // namespace

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }

namespace {

constexpr std::size_t key_count = 100'000;
constexpr std::size_t stream_length = std::size_t{1} << 21;  // a power of two: indices wrap with a mask
constexpr double zipf_s = 0.99;


struct Data {
  std::vector<std::string> keys;
  std::string value = std::string(100, 'v');
  std::vector<std::uint32_t> stream = zipf_stream(key_count, zipf_s, stream_length, 1);
  Data() {
    for (std::size_t i = 0; i < key_count; ++i) keys.push_back("product:" + std::to_string(i));
  }
};
const Data& data() {
  static const Data d;
  return d;
}

// The baseline: one map, readers share the lock.
struct SharedMutexMap {
  std::optional<std::string> get(const std::string& key) {
    std::shared_lock lock(mutex);
    const auto it = map.find(key);
    return it == map.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  std::shared_mutex mutex;
  std::unordered_map<std::string, std::string> map;
};

// Both hold every key, so every get is a hit and the two do the same work.
cachet::MemoryStore& memory_store() {
  static cachet::MemoryStore store({.max_entries = 2 * key_count, .max_bytes = std::size_t{1} << 30});
  return store;
}
SharedMutexMap& shared_mutex_map() {
  static SharedMutexMap m;
  return m;
}
void fill() {
  for (const std::string& k : data().keys) {
    memory_store().set(k, data().value, std::chrono::hours(1));
    shared_mutex_map().map.emplace(k, data().value);
  }
}

template <class Store>
void get_zipf(benchmark::State& state, Store& store) {
  const Data& d = data();
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * (stream_length / 2);  // threads read apart
  for (auto _ : state) {
    auto v = store.get(d.keys[d.stream[i++ & (stream_length - 1)]]);
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}
void memory_store_get(benchmark::State& state) { get_zipf(state, memory_store()); }
void shared_mutex_map_get(benchmark::State& state) { get_zipf(state, shared_mutex_map()); }


// Cache-aside over the stream (get; on a miss, set), after a first quarter to warm up.
void print_hit_ratios() {
  const Data& d = data();
  std::printf("\nhit ratio on Zipf(%.2f) over %zu keys, %zu requests (first quarter warms up):\n", zipf_s, key_count,
              stream_length);
  for (const std::size_t capacity : {key_count / 1000, key_count / 100, key_count / 10}) {
    cachet::MemoryStore store({.max_entries = capacity, .max_bytes = std::size_t{1} << 30});
    Lru lru(capacity);
    std::size_t store_hits = 0, lru_hits = 0;
    for (std::size_t i = 0; i < stream_length; ++i) {
      const std::uint32_t k = d.stream[i];
      const bool hit = store.get(d.keys[k]).has_value();
      if (!hit) store.set(d.keys[k], d.value, std::chrono::hours(1));
      const bool lru_hit = lru.access(k);
      if (i >= stream_length / 4) {
        store_hits += hit;
        lru_hits += lru_hit;
      }
    }
    const double n = static_cast<double>(stream_length - stream_length / 4);
    std::printf("  capacity %6zu (%4.1f %%, %2zu shards): MemoryStore %.4f  LRU %.4f  (+%.4f)\n", capacity,
                100.0 * static_cast<double>(capacity) / key_count, store.options().shards,
                static_cast<double>(store_hits) / n, static_cast<double>(lru_hits) / n,
                (static_cast<double>(store_hits) - static_cast<double>(lru_hits)) / n);
  }
}

struct Overhead {
  std::size_t entries;
  double requested;  // what the store asked operator new for, per entry
  double heap;       // what the heap spent (mallinfo2, less this program's 16-byte prefixes), per entry
};

// Bytes a store of `max_entries` takes beyond its keys and values once `inserts`
// distinct keys went in.
Overhead overhead(std::size_t max_entries, std::size_t inserts) {
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < inserts; ++i) keys.push_back("product:" + std::to_string(i));
  const auto heap_before = static_cast<long long>(mallinfo2().uordblks);
  counted_bytes = counted_blocks = 0;
  counting = true;
  auto store = std::make_unique<cachet::MemoryStore>(
      cachet::MemoryStoreOptions{.max_entries = max_entries, .max_bytes = std::size_t{1} << 34});
  for (const std::string& k : keys) store->set(k, data().value, std::chrono::hours(1));
  counting = false;
  const long long heap = static_cast<long long>(mallinfo2().uordblks) - heap_before -
                         counted_blocks * static_cast<long long>(sizeof(Prefix));
  const cachet::MemoryStoreStats s = store->stats();
  const auto per_entry = [&s](long long total) {
    return static_cast<double>(total - static_cast<long long>(s.bytes)) / static_cast<double>(s.size);
  };
  return {s.size, per_entry(counted_bytes), per_entry(heap)};
}

void print_overhead() {
  std::printf("\nmemory beyond key + value bytes (%zu + 100 B), per entry:\n", data().keys[key_count - 1].size());
  const auto print = [](const char* what, Overhead o) {
    std::printf("  %-44s requested %5.1f B, heap %5.1f B  (%zu entries)\n", what, o.requested, o.heap, o.entries);
  };
  print("full, evicting (2x max_entries inserted)", overhead(key_count, 2 * key_count));
  print("the benchmark's store (half full)", overhead(2 * key_count, key_count));
  // The index grows by 1.5x, so the overhead depends on how full it is: sweep.
  Overhead low{0, 1e9, 1e9}, high{0, 0, 0};
  for (std::size_t pct = 5; pct <= 100; pct += 5) {
    const Overhead o = overhead(key_count, key_count * pct / 100);
    if (o.heap < low.heap) low = o;
    if (o.heap > high.heap) high = o;
  }
  print("fill 5-100 % of max_entries: lowest", low);
  print("fill 5-100 % of max_entries: highest", high);
}

}  // namespace

BENCHMARK(memory_store_get)->Threads(1)->Threads(2);
BENCHMARK(shared_mutex_map_get)->Threads(1)->Threads(2);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  fill();  // before timing starts
  cachet::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratios({{"memory_store_get/threads:1", "shared_mutex_map_get/threads:1"},
                         {"memory_store_get/threads:2", "shared_mutex_map_get/threads:2"}});
  print_hit_ratios();
  print_overhead();
  benchmark::Shutdown();
}
