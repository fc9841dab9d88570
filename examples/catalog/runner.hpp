#pragma once
// Runs one mode for a fixed time from N threads, each with its own database
// session and request stream, and measures what the table shows. It also
// checks freshness: once an update of a product has returned, no read that
// starts afterwards may see an older version of it.

#include "database.hpp"
#include "modes.hpp"
#include "workload.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace catalog {

struct RunOptions {
  int threads = 4;
  std::chrono::milliseconds duration{10'000};
  double update_share = 0.01;
  std::uint64_t seed = 7;
};

struct RunResult {
  std::string mode;
  std::vector<double> latency_us;  // every request's, reads and updates
  long long requests = 0, updates = 0, queries = 0, stale_reads = 0;
  double seconds = 0;
  std::optional<CacheCounts> cache;
  std::string first_error;  // empty: none
  long long errors = 0;
};

// The newest version of each product that an update has returned.
class Committed {
 public:
  explicit Committed(std::int64_t products) : versions_(static_cast<std::size_t>(products) + 1) {}
  std::int64_t at_least(std::int64_t id) const { return versions_[static_cast<std::size_t>(id)].load(std::memory_order_acquire); }
  void record(std::int64_t id, std::int64_t version) {
    auto& v = versions_[static_cast<std::size_t>(id)];
    for (std::int64_t seen = v.load(); seen < version && !v.compare_exchange_weak(seen, version);) {
    }
  }

 private:
  std::vector<std::atomic<std::int64_t>> versions_;
};

// `tick(elapsed, requests)` is called about 4 times a second while the mode runs.
inline RunResult run_mode(Mode& mode, Database& db, const Popularity& popularity, Committed& committed,
                          const RunOptions& o, const std::function<void(double, long long)>& tick) {
  RunResult result;
  result.mode = mode.name();
  const std::optional<CacheCounts> counts_before = mode.counts();
  const long long queries_before = db.queries();
  std::atomic<bool> stop{false};
  std::atomic<long long> done{0};
  std::mutex merge;
  auto worker = [&](int t) {
    std::vector<double> latency;
    long long updates = 0, stale = 0, errors = 0;
    std::string first_error;
    std::unique_ptr<Session> session;
    try {
      session = db.session();
    } catch (const std::exception& e) {  // a thread's exception would end the program unexplained
      std::lock_guard lock(merge);
      if (result.errors++ == 0) result.first_error = e.what();
      return;
    }
    RequestStream stream(popularity, o.update_share, o.seed * 1000 + static_cast<std::uint64_t>(t));
    while (!stop.load(std::memory_order_relaxed)) {
      const Request r = stream.next();
      const std::int64_t must_see = committed.at_least(r.id);
      const auto t0 = std::chrono::steady_clock::now();
      try {
        if (r.update) {
          committed.record(r.id, mode.update(*session, r.id, r.price).version);
          ++updates;
        } else if (mode.read(*session, r.id).product.version < must_see) {
          ++stale;
        }
      } catch (const std::exception& e) {
        if (errors++ == 0) first_error = e.what();
      }
      latency.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      done.fetch_add(1, std::memory_order_relaxed);
    }
    std::lock_guard lock(merge);
    result.latency_us.insert(result.latency_us.end(), latency.begin(), latency.end());
    result.updates += updates;
    result.stale_reads += stale;
    result.errors += errors;
    if (result.first_error.empty()) result.first_error = first_error;
  };

  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) threads.emplace_back(worker, t);
  for (auto elapsed = std::chrono::steady_clock::duration::zero(); elapsed < o.duration;
       elapsed = std::chrono::steady_clock::now() - started) {
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(std::chrono::milliseconds(250), o.duration - elapsed));
    tick(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), done.load());
  }
  stop = true;
  for (auto& t : threads) t.join();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.requests = static_cast<long long>(result.latency_us.size());
  result.queries = db.queries() - queries_before;
  if (counts_before) result.cache = *mode.counts() - *counts_before;
  return result;
}

}  // namespace catalog
